/**
 * The resume cursor: the highest seq of an account that has been handed to the app. The connection sends it
 * as `hello.since`, so a restart of the app resumes where it stopped and never hands over a seq twice.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalServer } from './api.js';

/** What the connection needs from a cursor store: the last delivered seq of its account. */
export interface Cursor {
  /** The last seq handed to the app, or undefined on a device that has none yet. */
  get(): number | undefined;
  /** Records `seq` as handed over; called only after the app received the notification. */
  set(seq: number): void;
}

/** One signed-in account: cursors of different servers or users never mix. */
export interface Account {
  /** The server's base URL, e.g. `https://herald.example.com`. */
  server: string;
  /** The user name on that server. */
  user: string;
}

export interface CursorStore {
  /** The cursor of one account; reads its file once, then keeps the value in memory. */
  cursorFor(account: Account): Cursor;
  /** Deletes an account's cursor (the account was removed); its next connect is a first one. */
  remove(account: Account): void;
}

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`a cursor is a non-negative integer seq, not ${seq}`);
}

/** A cursor that lives only as long as the process: for tests, and accounts nobody wants to resume. */
export function memoryCursor(initial?: number): Cursor {
  if (initial !== undefined) checkSeq(initial);
  let value = initial;
  return {
    get: () => value,
    set(seq) {
      checkSeq(seq);
      value = seq;
    },
  };
}

/** `https://Host.example.com/herald/` and `https://host.example.com/herald` are one server. */
function serverKey(server: string): string {
  return canonicalServer(new URL(server));
}

const fileFormat = 1;

interface CursorFile {
  v: typeof fileFormat;
  server: string;
  user: string;
  seq: number;
}

function parseCursorFile(text: string, server: string, user: string): number | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null) return undefined;
  const file = data as Partial<Record<keyof CursorFile, unknown>>;
  if (file.v !== fileFormat || file.server !== server || file.user !== user) return undefined;
  return typeof file.seq === 'number' && Number.isSafeInteger(file.seq) && file.seq >= 0 ? file.seq : undefined;
}

/**
 * Cursors kept as one small JSON file per account in `directory` (created 0700 if missing).
 * Each write goes to a temporary file that is then renamed over the old one, so a crash leaves either the
 * old cursor or the new one, never a torn file. The write is not fsynced: a process crash keeps it (the page
 * cache survives), and after a power loss the worst case is an older cursor, whose replay the app dedupes
 * by notification id. An unreadable or foreign file counts as no cursor.
 */
export function openCursorStore(directory: string): CursorStore {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const fileOf = (server: string, user: string) =>
    join(directory, `cursor-${createHash('sha256').update(`${server}\n${user}`).digest('hex').slice(0, 32)}.json`);

  return {
    cursorFor(account) {
      const server = serverKey(account.server);
      const { user } = account;
      const file = fileOf(server, user);
      let loaded = false;
      let value: number | undefined;
      return {
        get() {
          if (!loaded) {
            let text: string | undefined;
            try {
              text = readFileSync(file, 'utf8');
            } catch (error) {
              if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
            }
            value = text === undefined ? undefined : parseCursorFile(text, server, user);
            loaded = true;
          }
          return value;
        },
        set(seq) {
          checkSeq(seq);
          const body: CursorFile = { v: fileFormat, server, user, seq };
          const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
          try {
            writeFileSync(temp, JSON.stringify(body) + '\n', { mode: 0o600 });
            renameSync(temp, file);
          } catch (error) {
            rmSync(temp, { force: true });
            throw error;
          }
          value = seq;
          loaded = true;
        },
      };
    },
    remove(account) {
      rmSync(fileOf(serverKey(account.server), account.user), { force: true });
    },
  };
}
