import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memoryCursor, openCursorStore } from '../../main/cursor.js';
import { tempDir } from '../helpers.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function directory(): string {
  const dir = tempDir();
  dirs.push(dir);
  return join(dir, 'cursors');
}

const alice = { server: 'https://herald.example.com', user: 'alice' };

describe('memory cursor', () => {
  it('starts empty or at the given seq and keeps what it is set to', () => {
    const cursor = memoryCursor();
    expect(cursor.get()).toBeUndefined();
    cursor.set(0);
    expect(cursor.get()).toBe(0);
    cursor.set(42);
    expect(cursor.get()).toBe(42);
    expect(memoryCursor(7).get()).toBe(7);
  });

  it('refuses values that are not seqs', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => {
        memoryCursor().set(bad);
      }).toThrow(RangeError);
    }
    expect(() => memoryCursor(-3)).toThrow(RangeError);
  });
});

describe('file cursor store', () => {
  it('survives a restart: a new store over the same directory reads the last seq', () => {
    const dir = directory();
    const first = openCursorStore(dir).cursorFor(alice);
    expect(first.get()).toBeUndefined();
    first.set(3);
    first.set(17);
    expect(first.get()).toBe(17);
    expect(openCursorStore(dir).cursorFor(alice).get()).toBe(17);
  });

  it('keeps accounts apart by server and user, and treats URL spellings of one server as one', () => {
    const store = openCursorStore(directory());
    store.cursorFor(alice).set(5);
    store.cursorFor({ ...alice, user: 'bob' }).set(9);
    store.cursorFor({ server: 'https://other.example.com', user: 'alice' }).set(11);
    expect(store.cursorFor(alice).get()).toBe(5);
    expect(store.cursorFor({ server: 'https://HERALD.example.com/', user: 'alice' }).get()).toBe(5);
    expect(store.cursorFor({ ...alice, user: 'bob' }).get()).toBe(9);
    expect(store.cursorFor({ server: 'https://other.example.com', user: 'alice' }).get()).toBe(11);
    expect(store.cursorFor({ server: 'http://herald.example.com', user: 'alice' }).get()).toBeUndefined();
    expect(store.cursorFor({ server: 'https://herald.example.com/sub', user: 'alice' }).get()).toBeUndefined();
  });

  it('writes atomically: one readable 0600 file per account and no temporary files left', () => {
    const dir = directory();
    const cursor = openCursorStore(dir).cursorFor(alice);
    for (let seq = 1; seq <= 200; seq++) cursor.set(seq);
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^cursor-[0-9a-f]{32}\.json$/);
    const file = join(dir, files[0] ?? '');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ v: 1, server: 'https://herald.example.com', user: 'alice', seq: 200 });
    if (process.platform !== 'win32') {
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(dir).mode & 0o777).toBe(0o700);
    }
  });

  it('keeps the previous cursor when a write fails, and leaves no temporary file', () => {
    const dir = directory();
    const cursor = openCursorStore(dir).cursorFor(alice);
    cursor.set(4);
    const [name = ''] = readdirSync(dir);
    // A directory in the file's place makes the rename fail.
    rmSync(join(dir, name));
    mkdirSync(join(dir, name, 'blocker'), { recursive: true });
    expect(() => {
      cursor.set(5);
    }).toThrow();
    expect(cursor.get()).toBe(4);
    expect(readdirSync(dir)).toEqual([name]);
  });

  it('treats a corrupt or foreign file as no cursor, and replaces it on the next write', () => {
    const dir = directory();
    const store = openCursorStore(dir);
    store.cursorFor(alice).set(8);
    const [name = ''] = readdirSync(dir);
    for (const content of ['', '{"v":1,"server":"https://herald.example.com","us', 'null', '{"v":1,"server":"https://herald.example.com","user":"mallory","seq":8}', '{"v":1,"server":"https://herald.example.com","user":"alice","seq":-2}', '{"v":2,"server":"https://herald.example.com","user":"alice","seq":8}']) {
      writeFileSync(join(dir, name), content);
      expect(openCursorStore(dir).cursorFor(alice).get()).toBeUndefined();
    }
    const cursor = openCursorStore(dir).cursorFor(alice);
    cursor.set(9);
    expect(openCursorStore(dir).cursorFor(alice).get()).toBe(9);
  });

  it('forgets a removed account', () => {
    const dir = directory();
    const store = openCursorStore(dir);
    store.cursorFor(alice).set(12);
    store.remove(alice);
    expect(readdirSync(dir)).toEqual([]);
    expect(openCursorStore(dir).cursorFor(alice).get()).toBeUndefined();
    store.remove(alice); // removing twice is fine
  });
});
