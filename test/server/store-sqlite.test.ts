import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteStore, type SqliteStoreOptions } from '../../server/src/store/sqlite.js';
import type { Store } from '../../server/src/store/store.js';
import { describeStore } from './store-suite.js';

/** Reads a database file through a second, read-only connection. */
function peekAt(file: string, sql: string): unknown {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).pluck().get();
  } finally {
    db.close();
  }
}

describeStore('sqlite store', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-'));
  const file = path.join(dir, 'herald.db');
  return Promise.resolve({
    open: (options = {}) => Promise.resolve(openSqliteStore({ file, ...options })),
    count: (sql) => Promise.resolve(Number(peekAt(file, sql))),
    destroy: () => {
      fs.rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  });
});

describe('sqlite file: opening, schema versions, the two inbox tables', () => {
  let dir: string;
  let file: string;
  let store: Store;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-'));
    file = path.join(dir, 'herald.db');
    store = openSqliteStore({ file });
  });

  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  async function reopen(options: Partial<SqliteStoreOptions> = {}): Promise<void> {
    await store.close();
    store = openSqliteStore({ file, ...options });
  }

  const peek = (sql: string): unknown => peekAt(file, sql);

  it('creates the schema in WAL mode with a schema version, and reopens an existing file', async () => {
    expect(peek('PRAGMA journal_mode')).toBe('wal');
    expect(peek('PRAGMA user_version')).toBe(2);
    const alice = await store.createUser('alice', null, 1);
    await reopen();
    expect((await store.userByName('alice'))?.id).toBe(alice?.id);
    expect(await store.ping()).toBe(true);
  });

  it('accepts synchronous normal', async () => {
    await reopen({ synchronous: 'normal' });
    expect(await store.ping()).toBe(true);
  });

  it('rejects contradictory options at construction', () => {
    expect(() => openSqliteStore({ file: path.join(dir, 'x.db'), groupCommitMax: 0 })).toThrow(RangeError);
    expect(() => openSqliteStore({ file: path.join(dir, 'y.db'), groupCommitMax: 1.5 })).toThrow(RangeError);
  });

  it('refuses a file with a newer schema', async () => {
    await store.close();
    const db = new Database(file);
    db.pragma('user_version = 99');
    db.close();
    expect(() => openSqliteStore({ file })).toThrow(/schema version 99/);
    store = openSqliteStore({ file: path.join(dir, 'other.db') });
  });

  it('commits a full group as soon as it fills, without waiting for the next event-loop turn', async () => {
    await reopen({ groupCommitMax: 64 });
    const alice = await store.createUser('a', null, 1);
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 100; i += 1) pending.push(store.publish({ id: `n${i}`, request: { to: { users: ['a'] }, title: `#${i}` }, publisher: 'app-1', now: 1_000 }));
    // One full group of 64 committed as it filled; the last 36 wait for the next event-loop turn.
    expect(peek('SELECT count(*) FROM inbox')).toBe(64);
    await Promise.all(pending);
    expect(await store.head(alice?.id ?? 0)).toBe(100);
  });

  const publisher = 'app-1';
  const seqsOf = async (user: number, since = 0, limit = 10_000): Promise<number[]> => (await store.replay(user, since, limit, 1_000)).items.map((item) => item.seq);

  it('upgrades a version-1 file: its one inbox table becomes inbox_settled, and new rows land beside its rows', async () => {
    const alice = await store.createUser('alice', null, 1);
    const user = alice?.id ?? 0;
    for (const id of ['n1', 'n2']) await store.publish({ id, request: { to: { users: ['alice'] }, title: id }, publisher, now: 1_000 });
    await store.close();
    // Version 1's layout: the same rows in one table named inbox, with the index names inbox_settled keeps.
    const db = new Database(file);
    db.exec(`DROP VIEW inbox; ALTER TABLE inbox_settled RENAME TO inbox; INSERT INTO inbox SELECT * FROM inbox_recent; DROP TABLE inbox_recent;
      PRAGMA user_version = 1;`);
    db.close();
    expect(peek("SELECT count(*) FROM sqlite_schema WHERE name LIKE 'inbox_recent%'")).toBe(0);

    store = openSqliteStore({ file });
    expect(peek('PRAGMA user_version')).toBe(2);
    expect(peek("SELECT type FROM sqlite_schema WHERE name = 'inbox'")).toBe('view');
    expect(peek('SELECT count(*) FROM inbox_settled')).toBe(2);
    await store.publish({ id: 'n3', request: { to: { users: ['alice'] }, title: 'n3' }, publisher, now: 1_000 });
    // A publish to a few users writes where its rows will stay.
    expect(peek('SELECT count(*) FROM inbox_settled')).toBe(3);
    expect(peek('SELECT count(*) FROM inbox_recent')).toBe(0);
    expect(await seqsOf(user)).toEqual([1, 2, 3]);
    expect((await store.inbox(user, { limit: 10 }, 1_000)).items.map((item) => item.notification.title)).toEqual(['n3', 'n2', 'n1']);
  });

  it('settles rows once inbox_recent fills, and every read and change sees both tables', async () => {
    const names = Array.from({ length: 100 }, (_, i) => `u${i}`);
    for (const name of names) await store.createUser(name, null, 1);
    const u0 = (await store.userByName('u0'))?.id ?? 0;
    // Users with no history yet: a broadcast's rows go where they stay.
    await store.publish({ id: 'first', request: { to: { all: true }, title: 'first' }, publisher, now: 1_000 });
    expect(peek('SELECT count(*) FROM inbox_settled')).toBe(100);
    expect(await store.deleteItem(u0, 1)).toBe(true);
    // Users with a history: from here on, publishes to 64 users or more write to inbox_recent.
    await store.close();
    const db = new Database(file);
    db.exec('UPDATE users SET head = 1000');
    db.close();
    store = openSqliteStore({ file });
    const h = 1000;
    const keyed = (id: string) => store.publish({ id, request: { to: { users: names }, title: id, key: 'k' }, publisher, now: 1_000 });
    const broadcasts = (from: number, count: number) =>
      store.publishBatch(Array.from({ length: count }, (_, i) => ({ id: `b${from + i}`, request: { to: { all: true as const }, title: `b${from + i}` }, publisher, now: 1_000 })));

    // seq h+1: a keyed row for everyone; h+2..h+701: 700 broadcasts, 70,000 rows, over the 65,536 that start a settle.
    await keyed('k1');
    for (let i = 0; i < 7; i++) await broadcasts(i * 100, 100);
    expect(peek('SELECT count(*) FROM inbox_settled')).toBe(99);
    // The settle runs on the next event-loop turn, ahead of this publish's group commit (h+702..h+705).
    await broadcasts(700, 4);
    const settled = Number(peek('SELECT count(*) FROM inbox_settled'));
    expect(settled).toBeGreaterThanOrEqual(99 + 70_100 - 65_536);
    expect(Number(peek('SELECT count(*) FROM inbox_recent')) + settled).toBe(99 + 70_500);
    expect(peek(`SELECT count(*) FROM inbox_settled WHERE user_id = 1 AND seq = ${h + 1}`)).toBe(1);

    // h+706 replaces the settled keyed row.
    await keyed('k2');
    expect(peek("SELECT count(*) FROM inbox WHERE key = 'k'")).toBe(100);
    expect(peek("SELECT count(*) FROM inbox_recent WHERE key = 'k'")).toBe(100);
    const all = Array.from({ length: 705 }, (_, i) => h + i + 2);
    expect(await seqsOf(u0)).toEqual(all);
    expect(await seqsOf(u0, h + 690, 20)).toEqual(all.slice(689, 705));
    const page = await store.inbox(u0, { before: h + 704, limit: 5 }, 1_000);
    expect(page.items.map((item) => item.seq)).toEqual([h + 703, h + 702, h + 701, h + 700, h + 699]);
    expect(page.unread).toBe(705);

    expect(await store.markRead(u0, { upTo: h + 703 }, 1_000)).toEqual({ unread: 3, changed: true });
    expect(await store.markRead(u0, { seqs: [h + 2, h + 704] }, 1_000)).toEqual({ unread: 2, changed: true });
    expect(await store.deleteItem(u0, h + 3)).toBe(true);
    expect(await store.deleteItem(u0, h + 705)).toBe(true);
    expect(await store.deleteItem(u0, h + 705)).toBe(false);

    const settledOnes = await store.retract('b0', undefined);
    expect(settledOnes?.size).toBe(100);
    expect(settledOnes?.get(u0)).toEqual([h + 2]);
    expect((await store.retract('b702', undefined))?.get(u0)).toEqual([h + 704]);
    expect(await seqsOf(u0)).toEqual(all.filter((seq) => ![2, 3, 704, 705].includes(seq - h)));

    // Retention by count keeps each user's 10 newest, wherever they are.
    await store.sweep(1_000, { maxAgeMs: 24 * 60 * 60 * 1000, maxPerUser: 10 });
    expect(await seqsOf(u0)).toEqual([695, 696, 697, 698, 699, 700, 701, 702, 703, 706].map((seq) => h + seq));
    expect(peek('SELECT count(*) FROM inbox')).toBe(1_000);
  });

  it('two stores on one file (--workers) both settle, and every row is in exactly one table', async () => {
    const names = Array.from({ length: 200 }, (_, i) => `u${i}`);
    for (const name of names) await store.createUser(name, null, 1);
    await store.close();
    const db = new Database(file);
    db.exec('UPDATE users SET head = 100');
    db.close();
    store = openSqliteStore({ file });
    const other = openSqliteStore({ file });
    try {
      const broadcasts = (into: Store, tag: string, count: number) =>
        into.publishBatch(Array.from({ length: count }, (_, i) => ({ id: `${tag}${i}`, request: { to: { all: true as const }, title: tag }, publisher, now: 1_000 })));
      // 2 × 4 × 100 broadcasts to 200 users: 160,000 rows, each store over the 65,536 that start a settle on its own count.
      for (let round = 0; round < 4; round++) await Promise.all([broadcasts(store, `a${round}-`, 100), broadcasts(other, `b${round}-`, 100)]);
      await Promise.all([broadcasts(store, 'a-last-', 1), broadcasts(other, 'b-last-', 1)]);
      expect(Number(peek('SELECT count(*) FROM inbox_settled'))).toBeGreaterThan(0);
      expect(peek('SELECT count(*) FROM (SELECT user_id, seq FROM inbox GROUP BY user_id, seq HAVING count(*) > 1)')).toBe(0);
      expect(peek('SELECT count(*) FROM inbox')).toBe(200 * 802);
      expect(peek('SELECT count(*) FROM users WHERE head <> 902')).toBe(0);
      const u = (await store.userByName('u199'))?.id ?? 0;
      expect(await seqsOf(u)).toEqual(Array.from({ length: 802 }, (_, i) => 101 + i));
    } finally {
      await other.close();
    }
  });
});
