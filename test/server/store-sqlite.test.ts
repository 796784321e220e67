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

describe('sqlite opening', () => {
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
    expect(peek('PRAGMA user_version')).toBe(1);
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
});
