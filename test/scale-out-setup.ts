/** vitest globalSetup: after the run, drops the PostgreSQL schemas the scale-out project's servers made. */
import pg from 'pg';

export default function setup(): () => Promise<void> {
  return async () => {
    const client = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE 'herald\\_t\\_%'");
      for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
    } finally {
      await client.end();
    }
  };
}
