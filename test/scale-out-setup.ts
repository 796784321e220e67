/**
 * vitest globalSetup: names this test run (HERALD_TEST_RUN, which the workers inherit), and after the run drops the
 * PostgreSQL schemas the scale-out project's servers made in it, and only those: another run on the same machine
 * keeps its own.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The PostgreSQL schemas of this test run start with this, so two runs on one machine (a developer's and CI's)
 * never drop each other's.
 */
export function testSchemaPrefix(): string {
  return `herald_t_${process.env.HERALD_TEST_RUN ?? 'norun'}_`;
}

export default function setup(): () => Promise<void> {
  process.env.HERALD_TEST_RUN = randomBytes(4).toString('hex');
  const prefix = testSchemaPrefix().replace(/_/g, '\\_');
  return async () => {
    const client = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>('SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1', [`${prefix}%`]);
      for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
    } finally {
      await client.end();
    }
  };
}
