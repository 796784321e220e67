import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openPostgresStore, postgresSchemaVersion, type PostgresStoreOptions } from '../../server/src/store/postgres.js';
import type { Delivery, PublishOutcome, Store } from '../../server/src/store/store.js';
import { describeStore } from './store-suite.js';

// The real PostgreSQL on loopback (trust auth); every test works in a schema of its own, dropped afterwards.
const url = process.env.HERALD_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let admin: pg.Pool;

beforeAll(() => {
  admin = new pg.Pool({ connectionString: url, max: 2 });
});

afterAll(async () => {
  await admin.end();
});

function freshSchema(): string {
  return `herald_test_${randomBytes(6).toString('hex')}`;
}

async function countIn(schema: string, sql: string): Promise<number> {
  const client = await admin.connect();
  try {
    await client.query(`SET search_path TO ${pg.escapeIdentifier(schema)}`);
    const { rows } = await client.query<{ count: string }>(sql);
    return Number(Object.values(rows[0] ?? {})[0]);
  } finally {
    await client.query('RESET search_path');
    client.release();
  }
}

async function dropSchema(schema: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(schema)} CASCADE`);
}

describeStore('postgres store', () => {
  const schema = freshSchema();
  return Promise.resolve({
    open: (options = {}) => openPostgresStore({ url, schema, pool: { max: 4 }, ...options }),
    count: (sql) => countIn(schema, sql),
    destroy: () => dropSchema(schema),
  });
});

describe('postgres store on several nodes', () => {
  let schema: string;
  const stores: Store[] = [];

  async function node(options: Partial<PostgresStoreOptions> = {}): Promise<Store> {
    const store = await openPostgresStore({ url, schema, ...options });
    stores.push(store);
    return store;
  }

  beforeEach(() => {
    schema = freshSchema();
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await dropSchema(schema);
  });

  it('migrates a fresh schema once, records its version, keeps data across a reopen and refuses a newer schema', async () => {
    const first = await node();
    expect(await countIn(schema, 'SELECT count(*) FROM herald_migrations')).toBe(postgresSchemaVersion);
    const alice = await first.createUser('alice', null, 1);
    const again = await node();
    expect((await again.userByName('alice'))?.id).toBe(alice?.id);
    await admin.query(`INSERT INTO ${pg.escapeIdentifier(schema)}.herald_migrations (version) VALUES (99)`);
    await expect(openPostgresStore({ url, schema })).rejects.toThrow(/version 99/);
  });

  it('upgrades a version 1 schema: the inbox loses its foreign keys, users get half-full pages, and the data stays', async () => {
    const first = await node();
    const alice = await first.createUser('alice', null, 1);
    const outcome = await first.publish({ id: 'n-1', request: { to: { users: ['alice'] }, title: 'kept' }, publisher: 'app', now: 2 });
    expect(outcome.ok).toBe(true);
    // Back to version 1 as it was created: the foreign keys, default pages, one migration recorded.
    const S = pg.escapeIdentifier(schema);
    await admin.query(`ALTER TABLE ${S}.inbox ADD CONSTRAINT inbox_user_id_fkey FOREIGN KEY (user_id) REFERENCES ${S}.users(id) ON DELETE CASCADE,
                         ADD CONSTRAINT inbox_nid_fkey FOREIGN KEY (nid) REFERENCES ${S}.notifications(nid)`);
    await admin.query(`ALTER TABLE ${S}.users RESET (fillfactor)`);
    await admin.query(`DELETE FROM ${S}.herald_migrations WHERE version > 1`);
    const constraints = `SELECT count(*) FROM pg_constraint WHERE conrelid = '${S}.inbox'::regclass AND contype = 'f'`;
    expect(await countIn(schema, constraints)).toBe(2);

    const upgraded = await node();
    expect(await countIn(schema, 'SELECT count(*) FROM herald_migrations')).toBe(postgresSchemaVersion);
    expect(await countIn(schema, constraints)).toBe(0);
    const { rows } = await admin.query<{ reloptions: string[] }>(`SELECT reloptions FROM pg_class WHERE oid = '${S}.users'::regclass`);
    expect(rows[0]?.reloptions).toEqual(['fillfactor=50']);
    const page = await upgraded.replay(alice?.id ?? 0, 0, 10, 3);
    expect(page.items.map((item) => item.notification.title)).toEqual(['kept']);
  });

  it('lets two nodes sign in the same 5,000 new users at once, in opposite orders, without a deadlock or a second row', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    const names = Array.from({ length: 5000 }, (_, i) => `user-${i}`);
    const [fromA, fromB] = await Promise.all([Promise.all(names.map((name) => a.ensureUser(name, 1))), Promise.all(names.toReversed().map((name) => b.ensureUser(name, 2)))]);
    expect(fromB.toReversed().map((user) => user.id)).toEqual(fromA.map((user) => user.id));
    expect(await countIn(schema, 'SELECT count(*) FROM users')).toBe(5000);
  });

  it('finds a user another node created after this one looked the name up and missed, and keeps finding known ones', async () => {
    const [a, b] = await Promise.all([node(), node()]);
    const publishTo = (store: Store, name: string, n: number) =>
      store.publish({ id: `late-${n}`, request: { to: { users: [name] }, title: `n${n}` }, publisher: 'app', now: n });
    expect(await publishTo(a, 'late', 1)).toEqual({ ok: false, code: 'unknown_user', users: ['late'] });
    const late = await b.createUser('late', null, 2);
    for (const n of [3, 4]) expect(await publishTo(a, 'late', n)).toMatchObject({ ok: true, deliveries: [{ user: late?.id, seq: n - 2, topic: null }] });
  });

  it('rejects contradictory options before connecting', async () => {
    await expect(openPostgresStore({ url, schema, groupCommitMax: 0 })).rejects.toThrow(RangeError);
    await expect(openPostgresStore({ url, schema, groupCommitMax: 1.5 })).rejects.toThrow(RangeError);
    await expect(openPostgresStore({ url, schema, commitConcurrency: 0 })).rejects.toThrow(RangeError);
    await expect(openPostgresStore({ url, schema: '' })).rejects.toThrow(RangeError);
  });

  it('fails to open when the server cannot be reached', async () => {
    await expect(openPostgresStore({ url: 'postgres://postgres@127.0.0.1:1/test', schema, pool: { connectionTimeoutMillis: 2_000 } })).rejects.toThrow();
  });

  it('lets several nodes migrate the same fresh schema at once', async () => {
    const opened = await Promise.all([node(), node(), node(), node()]);
    expect(await countIn(schema, 'SELECT count(*) FROM herald_migrations')).toBe(postgresSchemaVersion);
    const [a, b] = opened;
    const user = await a.createUser('alice', null, 1);
    expect((await b.userByName('alice'))?.id).toBe(user?.id);
  });

  it('keeps every user’s seqs 1..N without gaps or duplicates under concurrent publishes from 2 nodes × 8 connections', async () => {
    // Small groups, so each node runs several group commits at once on separate connections.
    const options = { pool: { max: 8 }, commitConcurrency: 8, groupCommitMax: 2 };
    const [a, b] = [await node(options), await node(options)];
    const names = Array.from({ length: 12 }, (_, i) => `u${i}`);
    const ids: number[] = [];
    for (const name of names) {
      const user = await a.createUser(name, null, 1);
      if (user === undefined) throw new Error(`user ${name} exists`);
      ids.push(user.id);
      if (ids.length % 2 === 0) await b.subscribe(user.id, 'hot');
    }
    const delivered: Delivery[] = [];
    let nextId = 0;
    /** One publisher: a sequence of awaited publishes, each to overlapping users, a topic, or everyone. */
    const publisher = async (store: Store, seed: number): Promise<void> => {
      for (let i = 0; i < 60; i += 1) {
        const pick = (seed * 31 + i * 7) % 10;
        const to =
          pick === 0 ? { all: true as const } : pick < 4 ? { topics: ['hot'] } : { users: [names[pick % 12] ?? 'u0', names[(pick + seed) % 12] ?? 'u1', names[(i + seed) % 12] ?? 'u2'] };
        nextId += 1;
        const outcome: PublishOutcome = await store.publish({ id: `p${nextId}`, request: { to, title: `#${nextId}`, key: i % 9 === 0 ? `k${seed % 3}` : undefined }, publisher: 'app', now: 1_000 });
        if (!outcome.ok) throw new Error(JSON.stringify(outcome));
        delivered.push(...outcome.deliveries);
      }
    };
    await Promise.all([...Array.from({ length: 8 }, (_, s) => publisher(a, s)), ...Array.from({ length: 8 }, (_, s) => publisher(b, s + 8))]);

    for (const user of ids) {
      const mine = delivered.filter((d) => d.user === user).map((d) => d.seq).sort((x, y) => x - y);
      expect(mine).toEqual(Array.from({ length: mine.length }, (_, i) => i + 1));
      expect(await a.head(user)).toBe(mine.length);
    }
    // Keyed publishes replaced earlier rows; every row still stored holds a seq handed out exactly once.
    const rows = await admin.query<{ user_id: string; seq: string }>(`SELECT user_id, seq FROM ${pg.escapeIdentifier(schema)}.inbox`);
    const handedOut = new Set(delivered.map((d) => `${d.user}:${d.seq}`));
    expect(handedOut.size).toBe(delivered.length);
    for (const row of rows.rows) expect(handedOut.has(`${row.user_id}:${row.seq}`)).toBe(true);
  });

  it('releases a scheduled notification once when two nodes release at the same moment', async () => {
    const [a, b] = [await node(), await node()];
    const at = Date.parse('2030-01-01T00:00:00Z');
    const alice = await a.createUser('alice', null, 1);
    const bob = await a.createUser('bob', null, 1);
    await a.subscribe(bob?.id ?? 0, 'ops');
    for (let i = 0; i < 20; i += 1) {
      const outcome = await (i % 2 === 0 ? a : b).publish({
        id: `s${i}`,
        request: { to: { users: ['alice'], topics: ['ops'] }, title: `#${i}`, deliverAt: new Date(at + i).toISOString() },
        publisher: 'app',
        now: at - 10_000,
      });
      expect(outcome).toMatchObject({ ok: true, scheduledFor: at + i, deliveries: [] });
    }
    const released = (await Promise.all([a.releaseDue(at + 100), b.releaseDue(at + 100), a.releaseDue(at + 100), b.releaseDue(at + 100)])).flat();
    expect(released.map((fanout) => fanout.id).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `s${i}`).sort());
    expect(await a.head(alice?.id ?? 0)).toBe(20);
    expect(await a.head(bob?.id ?? 0)).toBe(20);
    const replay = await b.replay(alice?.id ?? 0, 0, 100, at + 100);
    expect(replay.items.map((item) => item.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await a.releaseDue(at + 1_000)).toEqual([]);
  });
});
