import Database from 'better-sqlite3';
import { defaults } from '../defaults.js';
import type { Target } from '@herald/protocol';
import {
  buildNotification,
  likePattern,
  notificationColumns,
  scheduledTime,
  toNotification,
  toToken,
  toUser,
  type NotificationRow,
  type TokenRow,
  type UserRow,
} from './common.js';
import type {
  Delivery,
  Fanout,
  InboxItem,
  InboxQuery,
  PublishInput,
  PublishOutcome,
  ReadTarget,
  ReplayPage,
  RetentionPolicy,
  StoredNotification,
  Store,
  TokenKind,
} from './store.js';

/** Options of {@link openSqliteStore}. */
export interface SqliteStoreOptions {
  /** Path of the database file (string). Its parent directory must exist; the file and its `-wal`/`-shm` companions are created next to it. */
  file: string;
  /**
   * SQLite `synchronous` level. Default `'full'`: every commit fsyncs the WAL, so an acknowledged publish survives power loss.
   * `'normal'` survives a crash of the process but not of the machine.
   */
  synchronous?: 'full' | 'normal';
  /**
   * WAL size (pages of 4 KiB) at which a commit also checkpoints. Default `defaults.walAutocheckpointPages` (16 MiB).
   * The threaded store raises it to a safety valve and checkpoints on a thread of its own.
   */
  walAutocheckpointPages?: number;
  /** Largest number of publishes (count) committed in one group-commit transaction. Default 512; a full group commits at once instead of at the next event-loop turn. */
  groupCommitMax?: number;
}

const { groupCommitMax: defaultGroupCommitMax, sqliteBusyTimeoutMs: busyTimeoutMs, idempotencyWindowMs } = defaults;
/** Version of the schema below, kept in `PRAGMA user_version`. Version 1 had one inbox table, now `inbox_settled`. */
const schemaVersion = 2;

/**
 * The inbox is two tables of the same rows, read together through the view `inbox`. The rows of a publish to many
 * users go to `inbox_recent`, small enough that a publish to thousands of users touches a few hundred of its pages;
 * they move to `inbox_settled` in slices in key order (`settleSlice`), so several rows of a user at once. With one
 * table clustered by (user, seq), a broadcast wrote one 4 KiB page per recipient to the WAL once users had a page of
 * history: 20 MB for 5,000 users. A publish to a few users, or to users with little history (defaults.ts,
 * `inboxRecentFanOut`), writes to `inbox_settled` at once: moving its rows later would cost more than it saves.
 * `indexPrefix` keeps version 1's index names on the settled table.
 */
function inboxTable(name: string, indexPrefix: string): string {
  return `CREATE TABLE IF NOT EXISTS ${name} (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  nid INTEGER NOT NULL REFERENCES notifications(nid),
  read INTEGER NOT NULL DEFAULT 0,
  topic TEXT,
  key TEXT,
  expires_at INTEGER,
  PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ${indexPrefix}_notification ON ${name}(nid);
CREATE UNIQUE INDEX IF NOT EXISTS ${indexPrefix}_key ON ${name}(user_id, key) WHERE key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ${indexPrefix}_expires ON ${name}(expires_at) WHERE expires_at IS NOT NULL;`;
}

const schema = `
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  password_hash TEXT,
  created_at INTEGER NOT NULL,
  head INTEGER NOT NULL DEFAULT 0,
  expired_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('admin', 'app', 'device')),
  hash TEXT NOT NULL UNIQUE,
  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
  name TEXT,
  label TEXT,
  topics TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_kind ON tokens(kind);
CREATE TABLE IF NOT EXISTS subscriptions (
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  topic TEXT NOT NULL,
  PRIMARY KEY (user_id, topic)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS subscriptions_topic ON subscriptions(topic, user_id);
-- nid: compact, ascending key for inbox rows (an id is a 36-character UUIDv7 string).
CREATE TABLE IF NOT EXISTS notifications (
  nid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  priority INTEGER NOT NULL,
  tags TEXT,
  url TEXT,
  icon TEXT,
  actions TEXT,
  key TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  publisher TEXT NOT NULL,
  deliver_at INTEGER,
  target TEXT
);
CREATE INDEX IF NOT EXISTS notifications_created ON notifications(created_at);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications(deliver_at) WHERE deliver_at IS NOT NULL;
${inboxTable('inbox_settled', 'inbox')}
${inboxTable('inbox_recent', 'inbox_recent')}
CREATE VIEW IF NOT EXISTS inbox AS SELECT * FROM inbox_settled UNION ALL SELECT * FROM inbox_recent;
CREATE TABLE IF NOT EXISTS idempotency (
  publisher TEXT NOT NULL,
  key TEXT NOT NULL,
  hash TEXT NOT NULL,
  notification_id TEXT NOT NULL,
  recipients INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (publisher, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency(created_at);
`;

interface ScheduledRow extends NotificationRow {
  nid: number;
  deliver_at: number | null;
  target: string | null;
}

interface ItemRow extends NotificationRow {
  seq: number;
  read: number;
  via: string | null;
}

interface IdempotencyRow {
  hash: string;
  notification_id: string;
  recipients: number;
  created_at: number;
}

interface RemovedRow {
  user_id: number;
  seq: number;
  nid: number;
}

interface InboxParams {
  user: number;
  before: number;
  limit: number;
  now: number;
  unreadOnly: number;
  topic: string | null;
  minPriority: number | null;
  q: string | null;
}

/** Queued `publish` or `publishBatch` call, waiting for the next group commit. */
interface Pending {
  inputs: PublishInput[];
  /** All-or-nothing: runs in its own savepoint. */
  atomic: boolean;
  resolve: (outcomes: PublishOutcome[]) => void;
  reject: (error: unknown) => void;
}

/** Recipients of one publish: user id → the topic through which they get it (null when named or through `all`). */
type Recipients = Map<number, string | null>;

/** Unwinds a `publishBatch` savepoint; carries the failure that caused it. */
class BatchFailure extends Error {
  constructor(readonly outcome: Exclude<PublishOutcome, { ok: true }>) {
    super('batch failed');
  }
}

/** Runs synchronous store work as a promise; a throw becomes a rejection. */
function settle<T>(work: () => T): Promise<T> {
  return new Promise<T>((resolve) => {
    resolve(work());
  });
}

function toItem(row: ItemRow): InboxItem {
  return { seq: row.seq, read: row.read !== 0, topic: row.via, notification: toNotification(row) };
}

/**
 * Opens (creating if needed) the SQLite store at `options.file`.
 * Publishes are group-committed: concurrent calls share one transaction and resolve once it is committed.
 */
export function openSqliteStore(options: SqliteStoreOptions): Store {
  const groupCommitMax = options.groupCommitMax ?? defaultGroupCommitMax;
  if (!Number.isInteger(groupCommitMax) || groupCommitMax < 1) {
    throw new RangeError(`groupCommitMax must be a positive integer, got ${String(options.groupCommitMax)}`);
  }
  // Widened: options may come from an untyped config file.
  const synchronous: string = options.synchronous ?? 'full';
  if (synchronous !== 'full' && synchronous !== 'normal') {
    throw new RangeError(`synchronous must be 'full' or 'normal', got ${synchronous}`);
  }

  const db = new Database(options.file, { timeout: busyTimeoutMs });
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    db.pragma('foreign_keys = ON');
    // Statement and savepoint journals in memory: past 64 KiB SQLite spills them to a temporary file, and a
    // publishBatch savepoint then wrote every page it touched there once more (44% of the writer's time in batches).
    db.pragma('temp_store = MEMORY');
    db.pragma(`wal_autocheckpoint = ${Math.trunc(options.walAutocheckpointPages ?? defaults.walAutocheckpointPages)}`);
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > schemaVersion) {
      throw new Error(`${options.file} has schema version ${version}; this server knows up to ${schemaVersion}`);
    }
    db.transaction(() => {
      // Read again under the write lock: another process (`--workers`) may have upgraded the file meanwhile.
      if (db.pragma('user_version', { simple: true }) === 1) db.exec('ALTER TABLE inbox RENAME TO inbox_settled');
      db.exec(schema);
      db.pragma(`user_version = ${schemaVersion}`);
    }).immediate();
  } catch (error) {
    db.close();
    throw error;
  }

  // Users, tokens, subscriptions.
  const insertUser = db.prepare<[string, string | null, number], UserRow>(
    'INSERT INTO users (name, password_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id, name, password_hash, created_at',
  );
  const userByNameStmt = db.prepare<[string], UserRow>('SELECT id, name, password_hash, created_at FROM users WHERE name = ?');
  const userByIdStmt = db.prepare<[number], UserRow>('SELECT id, name, password_hash, created_at FROM users WHERE id = ?');
  const userIdByName = db.prepare<[string], number>('SELECT id FROM users WHERE name = ?').pluck();
  const allUserIds = db.prepare<[], number>('SELECT id FROM users ORDER BY id').pluck();
  const headOf = db.prepare<[number], number>('SELECT head FROM users WHERE id = ?').pluck();
  const headsOf = db.prepare<[string], { id: number; head: number }>('SELECT id, head FROM users WHERE id IN (SELECT value FROM json_each(?))');
  const cursorOf = db.prepare<[number], { head: number; expired_seq: number }>('SELECT head, expired_seq FROM users WHERE id = ?');
  // No RETURNING on the publish path (here, the notification's insert, a keyed publish's delete): SQLite runs RETURNING
  // as a trigger, and a statement with a trigger first copies every page it writes into a statement journal (with the
  // journal's walks, 20% of the writer thread under batches).
  const bumpHead = db.prepare<[number]>('UPDATE users SET head = head + 1 WHERE id = ?');
  const raiseExpired = db.prepare<[number, number]>('UPDATE users SET expired_seq = max(expired_seq, ?) WHERE id = ?');
  // Rows all above head - max fit in max slots, so only a user with a row at or below it can hold too many: one index probe each.
  const usersOverLimit = db.prepare<{ max: number }, number>(
    'SELECT u.id FROM users u WHERE u.head > @max AND EXISTS (SELECT 1 FROM inbox i WHERE i.user_id = u.id AND i.seq <= u.head - @max)',
  ).pluck();

  const insertTokenStmt = db.prepare<[string, TokenKind, string, number | null, string | null, string | null, string | null, number, number | null]>(
    'INSERT INTO tokens (id, kind, hash, user_id, name, label, topics, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const tokenByHashStmt = db.prepare<[string], TokenRow>('SELECT * FROM tokens WHERE hash = ?');
  const listTokensStmt = db.prepare<[], TokenRow>('SELECT * FROM tokens ORDER BY created_at, id');
  const deleteToken = db.prepare<[string], TokenRow>('DELETE FROM tokens WHERE id = ? RETURNING *');
  const anyAdmin = db.prepare<[], number>("SELECT EXISTS (SELECT 1 FROM tokens WHERE kind = 'admin')").pluck();

  const insertSubscription = db.prepare<[number, string]>('INSERT INTO subscriptions (user_id, topic) VALUES (?, ?) ON CONFLICT DO NOTHING');
  const deleteSubscription = db.prepare<[number, string]>('DELETE FROM subscriptions WHERE user_id = ? AND topic = ?');
  const topicsOf = db.prepare<[number], string>('SELECT topic FROM subscriptions WHERE user_id = ? ORDER BY topic').pluck();
  const subscribersOf = db.prepare<[string], number>('SELECT user_id FROM subscriptions WHERE topic = ?').pluck();

  // Notifications and inboxes.
  const insertNotification = db.prepare<
    [string, string, string, number, string | null, string | null, string | null, string | null, string | null, number, number | null, string, number | null, string | null]
  >(
    'INSERT INTO notifications (id, title, body, priority, tags, url, icon, actions, key, created_at, expires_at, publisher, deliver_at, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const notificationById = db.prepare<[string], ScheduledRow>(`SELECT n.nid, ${notificationColumns}, n.deliver_at, n.target FROM notifications n WHERE n.id = ?`);
  const dueNotifications = db.prepare<[number], ScheduledRow>(
    `SELECT n.nid, ${notificationColumns}, n.deliver_at, n.target FROM notifications n WHERE n.deliver_at IS NOT NULL AND n.deliver_at <= ? ORDER BY n.deliver_at, n.nid`,
  );
  const clearSchedule = db.prepare<[number]>('UPDATE notifications SET deliver_at = NULL, target = NULL WHERE nid = ?');
  const deleteNotification = db.prepare<[number]>('DELETE FROM notifications WHERE nid = ?');
  const deleteIfOrphan = db.prepare<{ nid: number }>(
    'DELETE FROM notifications WHERE nid = @nid AND deliver_at IS NULL AND NOT EXISTS (SELECT 1 FROM inbox WHERE nid = @nid)',
  );
  const deleteOldNotifications = db.prepare<[number]>('DELETE FROM notifications WHERE created_at < ? AND deliver_at IS NULL');

  // Reads go through the view `inbox`; writes name a table (see inboxTable): changes go to both.
  type OnBoth<P extends unknown[], R = unknown> = readonly [Database.Statement<P, R>, Database.Statement<P, R>];
  const onBoth = <P extends unknown[], R = unknown>(sql: string): OnBoth<P, R> => [
    db.prepare<P, R>(sql.replace('{inbox}', 'inbox_settled')),
    db.prepare<P, R>(sql.replace('{inbox}', 'inbox_recent')),
  ];
  const changesOnBoth = <P extends unknown[]>([settled, recent]: OnBoth<P>, ...params: P): number => settled.run(...params).changes + recent.run(...params).changes;
  const rowsOnBoth = <P extends unknown[], R>([settled, recent]: OnBoth<P, R>, ...params: P): R[] => [...settled.all(...params), ...recent.all(...params)];
  const [insertSettled, insertRecent] = onBoth<[number, number, number, string | null, string | null, number | null]>(
    'INSERT INTO {inbox} (user_id, seq, nid, topic, key, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  // A publish to `all` without a key, set-based: every head moves up one, then every user gets a row at its new head.
  const bumpAllHeads = db.prepare<[], [number, number]>('UPDATE users SET head = head + 1 RETURNING id, head').raw();
  const insertItemsForAll = onBoth<[number, number | null]>(
    'INSERT INTO {inbox} (user_id, seq, nid, topic, key, expires_at) SELECT id, head, ?, NULL, NULL, ? FROM users',
  );
  const nidOf = db.prepare<[number, number], number>('SELECT nid FROM inbox WHERE user_id = ? AND seq = ?').pluck();
  const itemByKey = db.prepare<[number, string], { seq: number; nid: number }>('SELECT seq, nid FROM inbox WHERE user_id = ? AND key = ?');
  const deleteItem = onBoth<[number, number]>('DELETE FROM {inbox} WHERE user_id = ? AND seq = ?');
  const deleteItemsOf = onBoth<[number], { user_id: number; seq: number }>('DELETE FROM {inbox} WHERE nid = ? RETURNING user_id, seq');
  const deleteExpired = onBoth<[number], RemovedRow>('DELETE FROM {inbox} WHERE expires_at <= ? RETURNING user_id, seq, nid');
  const deleteOlderThan = onBoth<[number], RemovedRow>(
    'DELETE FROM {inbox} WHERE nid IN (SELECT nid FROM notifications WHERE created_at < ? AND deliver_at IS NULL) RETURNING user_id, seq, nid',
  );
  const nthNewestSeq = db.prepare<[number, number], number>('SELECT seq FROM inbox WHERE user_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?').pluck();
  const deleteUpTo = onBoth<[number, number], RemovedRow>('DELETE FROM {inbox} WHERE user_id = ? AND seq <= ? RETURNING user_id, seq, nid');

  const inboxPage = db.prepare<InboxParams, ItemRow>(
    `SELECT i.seq, i.read, i.topic AS via, ${notificationColumns}
     FROM inbox i JOIN notifications n ON n.nid = i.nid
     WHERE i.user_id = @user AND i.seq < @before
       AND (i.expires_at IS NULL OR i.expires_at > @now)
       AND (@unreadOnly = 0 OR i.read = 0)
       AND (@topic IS NULL OR i.topic = @topic)
       AND (@minPriority IS NULL OR n.priority >= @minPriority)
       AND (@q IS NULL OR n.title LIKE @q ESCAPE '\\' OR n.body LIKE @q ESCAPE '\\')
     ORDER BY i.seq DESC LIMIT @limit`,
  );
  const replayPage = db.prepare<[number, number, number, number], ItemRow>(
    `SELECT i.seq, i.read, i.topic AS via, ${notificationColumns}
     FROM inbox i JOIN notifications n ON n.nid = i.nid
     WHERE i.user_id = ? AND i.seq > ? AND (i.expires_at IS NULL OR i.expires_at > ?)
     ORDER BY i.seq LIMIT ?`,
  );
  const expiredBetween = db.prepare<[number, number, number, number], number>(
    'SELECT EXISTS (SELECT 1 FROM inbox WHERE user_id = ? AND seq > ? AND seq <= ? AND expires_at <= ?)',
  ).pluck();
  const unreadCount = db.prepare<[number, number], number>(
    'SELECT count(*) FROM inbox WHERE user_id = ? AND read = 0 AND (expires_at IS NULL OR expires_at > ?)',
  ).pluck();
  const markSeqs = onBoth<[number, number, string]>(
    'UPDATE {inbox} SET read = 1 WHERE user_id = ? AND read = 0 AND (expires_at IS NULL OR expires_at > ?) AND seq IN (SELECT value FROM json_each(?))',
  );
  const markUpTo = onBoth<[number, number, number]>(
    'UPDATE {inbox} SET read = 1 WHERE user_id = ? AND read = 0 AND (expires_at IS NULL OR expires_at > ?) AND seq <= ?',
  );

  // Settling (see inboxTable): rows move from inbox_recent to inbox_settled in key order, from a cursor that wraps.
  const inboxColumns = 'user_id, seq, nid, read, topic, key, expires_at';
  const countRecent = db.prepare<[], number>('SELECT count(*) FROM inbox_recent').pluck();
  const highestUserId = db.prepare<[], number | null>('SELECT max(id) FROM users').pluck();
  const averageHead = db.prepare<[], number | null>('SELECT avg(head) FROM users').pluck();
  const recentAfter = db.prepare<[number, number, number], [number, number]>(
    'SELECT user_id, seq FROM inbox_recent WHERE (user_id, seq) > (?, ?) ORDER BY user_id, seq LIMIT 1 OFFSET ?',
  ).raw();
  const lastRecent = db.prepare<[], [number, number]>('SELECT user_id, seq FROM inbox_recent ORDER BY user_id DESC, seq DESC LIMIT 1').raw();
  const settleRange = db.prepare<[number, number, number, number]>(
    `INSERT INTO inbox_settled (${inboxColumns}) SELECT ${inboxColumns} FROM inbox_recent WHERE (user_id, seq) > (?, ?) AND (user_id, seq) <= (?, ?)`,
  );
  const dropRange = db.prepare<[number, number, number, number]>('DELETE FROM inbox_recent WHERE (user_id, seq) > (?, ?) AND (user_id, seq) <= (?, ?)');

  const idempotencyOf = db.prepare<[string, string], IdempotencyRow>(
    'SELECT hash, notification_id, recipients, created_at FROM idempotency WHERE publisher = ? AND key = ?',
  );
  const insertIdempotency = db.prepare<[string, string, string, string, number, number]>(
    'INSERT INTO idempotency (publisher, key, hash, notification_id, recipients, created_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const deleteOldIdempotency = db.prepare<[number]>('DELETE FROM idempotency WHERE created_at < ?');
  const selectOne = db.prepare<[], number>('SELECT 1').pluck();

  /** Who a target reaches now; names that match no user are returned apart. Direct address wins over a topic. */
  function resolveTarget(to: Target): { recipients: Recipients; missing: string[] } {
    const recipients: Recipients = new Map();
    const missing: string[] = [];
    for (const name of to.users ?? []) {
      const id = userIdByName.get(name);
      if (id === undefined) {
        if (!missing.includes(name)) missing.push(name);
      } else {
        recipients.set(id, null);
      }
    }
    if (to.all === true) {
      for (const id of allUserIds.all()) if (!recipients.has(id)) recipients.set(id, null);
    } else {
      for (const topic of to.topics ?? []) {
        for (const id of subscribersOf.all(topic)) if (!recipients.has(id)) recipients.set(id, topic);
      }
    }
    return { recipients, missing };
  }

  /** Inserts the body once; returns its nid. */
  function insertStored(n: StoredNotification, deliverAt: number | null, target: Target | null): number {
    const { lastInsertRowid } = insertNotification.run(
      n.id,
      n.title,
      n.body,
      n.priority,
      n.tags.length === 0 ? null : JSON.stringify(n.tags),
      n.url,
      n.icon,
      n.actions.length === 0 ? null : JSON.stringify(n.actions),
      n.key,
      n.createdAt,
      n.expiresAt,
      n.publisher,
      deliverAt,
      target === null ? null : JSON.stringify(target),
    );
    return Number(lastInsertRowid);
  }

  /**
   * Writes one inbox row per recipient, replacing each one's earlier row with the same key. `all` says the recipients
   * are every user, which two statements cover when there is no key to replace.
   */
  function fanOut(nid: number, n: StoredNotification, recipients: Recipients, orphans: Set<number>, all: boolean): Delivery[] {
    const toRecent = recipients.size >= defaults.inboxRecentFanOut && usersHaveHistory();
    if (all && n.key === null) {
      const deliveries = bumpAllHeads.all().map(([user, seq]): Delivery => ({ user, seq, topic: null }));
      insertItemsForAll[toRecent ? 1 : 0].run(nid, n.expiresAt);
      if (toRecent) wroteRecent(deliveries.length);
      return deliveries;
    }
    const insertItem = toRecent ? insertRecent : insertSettled;
    const deliveries: Delivery[] = [];
    for (const [user, topic] of recipients) {
      if (n.key !== null) {
        const replaced = itemByKey.get(user, n.key);
        if (replaced !== undefined) {
          changesOnBoth(deleteItem, user, replaced.seq);
          orphans.add(replaced.nid);
        }
      }
      bumpHead.run(user);
      const seq = headOf.get(user);
      if (seq === undefined) throw new Error(`user ${user} vanished during a publish`);
      insertItem.run(user, seq, nid, topic, n.key, n.expiresAt);
      deliveries.push({ user, seq, topic });
    }
    if (toRecent) wroteRecent(deliveries.length);
    return deliveries;
  }

  let historyCheckedAt = Number.NEGATIVE_INFINITY;
  let historyFound = false;
  /** Whether users average `inboxRecentHistory` seqs or more, checked every `inboxHistoryCheckMs` (one scan of users). */
  function usersHaveHistory(): boolean {
    const now = performance.now();
    if (now - historyCheckedAt >= defaults.inboxHistoryCheckMs) {
      historyFound = (averageHead.get() ?? 0) >= defaults.inboxRecentHistory;
      historyCheckedAt = now;
    }
    return historyFound;
  }

  /** Rows in inbox_recent as this process counts them: its own inserts since the last count, less what it settled. */
  let recentRows = countRecent.get() ?? 0;
  /** Rows this process wrote to inbox_recent since its last slice: the next slice moves at least as many. */
  let sinceSlice = 0;
  const wroteRecent = (rows: number): void => {
    recentRows += rows;
    sinceSlice += rows;
  };
  /** The key after which the next slice starts; [0, 0] is before every row. */
  let settled: [number, number] = [0, 0];
  let settling: NodeJS.Immediate | undefined;

  /** Moves up to `limit` rows from the cursor on, to the end of the table at most; returns how many moved. */
  const settleSlice = db.transaction((limit: number): number => {
    const end = recentAfter.get(...settled, limit - 1);
    const last = end ?? lastRecent.get();
    let moved = 0;
    if (last !== undefined) {
      moved = settleRange.run(...settled, ...last).changes;
      dropRange.run(...settled, ...last);
    }
    // Past the end of the table, the next slice starts from the first row again.
    settled = end ?? [0, 0];
    return moved;
  });

  /**
   * Once inbox_recent holds more rows than its target, settles slices, each its own transaction on a later turn, so
   * publishes commit in between, until a quarter of the target is free again: a settle runs once per many commits.
   * A slice moves at least the rows written since the last one, so a stream of broadcasts cannot outgrow it.
   */
  function settleWhenFull(): void {
    // Most commits write nothing to inbox_recent: decide those without a query.
    if (settling !== undefined || closed || recentRows <= defaults.inboxRecentMin) return;
    const target = Math.max(defaults.inboxRecentMin, defaults.inboxRecentPerUser * (highestUserId.get() ?? 0));
    if (recentRows <= target) return;
    const step = (): void => {
      settling = undefined;
      if (closed) return;
      let moved: number;
      try {
        moved = settleSlice.immediate(Math.max(defaults.inboxSettleSlice, sinceSlice));
      } catch {
        // Busy past the timeout (another process), or a full disk: the rows stay where reads find them; the next commit retries.
        return;
      }
      sinceSlice = 0;
      // Nothing to move: other processes (--workers) settled rows this one counted; count again.
      recentRows = moved === 0 ? (countRecent.get() ?? 0) : recentRows - moved;
      if (recentRows > (target * 3) / 4) settling = setImmediate(step);
    };
    settling = setImmediate(step);
  }

  /** Drops notifications that no inbox row references any more (pending scheduled ones stay). */
  function dropOrphans(candidates: Set<number>): void {
    for (const nid of candidates) deleteIfOrphan.run({ nid });
  }

  function duplicateOf(record: IdempotencyRow, input: PublishInput): PublishOutcome {
    const row = notificationById.get(record.notification_id);
    // The original may have been retracted or swept since; the request is the same (same hash), so rebuild it.
    const notification = row === undefined ? buildNotification(record.notification_id, input.request, input.publisher, record.created_at) : toNotification(row);
    const pending = row?.deliver_at ?? null;
    return {
      ok: true,
      id: record.notification_id,
      recipients: record.recipients,
      ...(pending === null ? {} : { scheduledFor: pending }),
      duplicate: true,
      notification,
      deliveries: [],
    };
  }

  /** One publish inside the caller's transaction. Every check comes before the first write, so a failure writes nothing. */
  function publishOne(input: PublishInput, orphans: Set<number>): PublishOutcome {
    const { request, publisher, now, idempotency } = input;
    if (idempotency !== undefined) {
      const record = idempotencyOf.get(publisher, idempotency.key);
      if (record !== undefined) {
        return record.hash === idempotency.hash ? duplicateOf(record, input) : { ok: false, code: 'idempotency_key_reused' };
      }
    }
    const { recipients, missing } = resolveTarget(request.to);
    if (missing.length > 0) return { ok: false, code: 'unknown_user', users: missing };

    const notification = buildNotification(input.id, request, publisher, now);
    const scheduledFor = scheduledTime(request, now);
    let deliveries: Delivery[] = [];
    if (scheduledFor === undefined) {
      deliveries = fanOut(insertStored(notification, null, null), notification, recipients, orphans, request.to.all === true);
    } else {
      insertStored(notification, scheduledFor, request.to);
    }
    if (idempotency !== undefined) {
      insertIdempotency.run(publisher, idempotency.key, idempotency.hash, notification.id, recipients.size, now);
    }
    return {
      ok: true,
      id: notification.id,
      recipients: recipients.size,
      ...(scheduledFor === undefined ? {} : { scheduledFor }),
      duplicate: false,
      notification,
      deliveries,
    };
  }

  /** A `publishBatch` inside the group transaction: a savepoint, rolled back on the first failure. */
  const publishAtomically = db.transaction((inputs: PublishInput[], orphans: Set<number>): PublishOutcome[] =>
    inputs.map((input, index) => {
      const outcome = publishOne(input, orphans);
      if (!outcome.ok) throw new BatchFailure({ ...outcome, index });
      return outcome;
    }),
  );

  // Every write transaction is run with `.immediate()`: several processes (`--workers`) may share the file, and
  // a deferred transaction that read first cannot upgrade to the write lock when another process wrote meanwhile
  // (SQLITE_BUSY at once, without the busy timeout). BEGIN IMMEDIATE takes the lock up front and waits for it.
  const commitGroup = db.transaction((entries: Pending[]): PublishOutcome[][] => {
    const orphans = new Set<number>();
    const results = entries.map((entry): PublishOutcome[] => {
      if (!entry.atomic) return entry.inputs.map((input) => publishOne(input, orphans));
      try {
        return publishAtomically(entry.inputs, orphans);
      } catch (error) {
        if (error instanceof BatchFailure) return [error.outcome];
        throw error;
      }
    });
    dropOrphans(orphans);
    return results;
  });

  let queue: Pending[] = [];
  let queued = 0;
  let timer: NodeJS.Immediate | undefined;
  let closed = false;

  function flush(): void {
    if (timer !== undefined) {
      clearImmediate(timer);
      timer = undefined;
    }
    if (queue.length === 0) return;
    const entries = queue;
    queue = [];
    queued = 0;
    commit(entries);
    settleWhenFull();
  }

  function commit(entries: Pending[]): void {
    let results: PublishOutcome[][];
    try {
      results = commitGroup.immediate(entries);
    } catch {
      // Something unexpected (a duplicate id, a full disk) broke the shared transaction:
      // commit each call on its own so only the culprit fails.
      for (const entry of entries) {
        let outcomes: PublishOutcome[] | undefined;
        try {
          outcomes = commitGroup.immediate([entry])[0];
        } catch (error) {
          entry.reject(error);
          continue;
        }
        if (outcomes === undefined) entry.reject(new Error('group commit returned no outcome'));
        else entry.resolve(outcomes);
      }
      return;
    }
    entries.forEach((entry, i) => {
      const outcomes = results[i];
      if (outcomes === undefined) entry.reject(new Error('group commit returned no outcome'));
      else entry.resolve(outcomes);
    });
  }

  function enqueue(inputs: PublishInput[], atomic: boolean): Promise<PublishOutcome[]> {
    return new Promise<PublishOutcome[]>((resolve, reject) => {
      if (closed) {
        reject(new Error('the store is closed'));
        return;
      }
      queue.push({ inputs, atomic, resolve, reject });
      queued += inputs.length;
      if (queued >= groupCommitMax) flush();
      else timer ??= setImmediate(flush);
    });
  }

  const release = db.transaction((now: number): Fanout[] => {
    const orphans = new Set<number>();
    const fanouts: Fanout[] = [];
    for (const row of dueNotifications.all(now)) {
      clearSchedule.run(row.nid);
      const notification = toNotification(row);
      // Users are never deleted, so every name resolves as it did at publish time.
      const target = row.target === null ? {} : (JSON.parse(row.target) as Target);
      const { recipients } = resolveTarget(target);
      const deliveries = fanOut(row.nid, notification, recipients, orphans, target.all === true);
      fanouts.push({ ok: true, id: notification.id, recipients: deliveries.length, duplicate: false, notification, deliveries });
    }
    dropOrphans(orphans);
    return fanouts;
  });

  const retractTx = db.transaction((id: string, publisher: string | undefined): Map<number, number[]> | undefined => {
    const row = notificationById.get(id);
    if (row === undefined || (publisher !== undefined && row.publisher !== publisher)) return undefined;
    const removed = new Map<number, number[]>();
    for (const { user_id, seq } of rowsOnBoth(deleteItemsOf, row.nid)) {
      const seqs = removed.get(user_id);
      if (seqs === undefined) removed.set(user_id, [seq]);
      else seqs.push(seq);
    }
    for (const seqs of removed.values()) seqs.sort((a, b) => a - b);
    deleteNotification.run(row.nid);
    return removed;
  });

  const markReadTx = db.transaction((user: number, target: ReadTarget, now: number) => {
    const changes = 'seqs' in target ? changesOnBoth(markSeqs, user, now, JSON.stringify(target.seqs)) : changesOnBoth(markUpTo, user, now, target.upTo);
    return { unread: unreadCount.get(user, now) ?? 0, changed: changes > 0 };
  });

  const deleteItemTx = db.transaction((user: number, seq: number): boolean => {
    const nid = nidOf.get(user, seq);
    if (nid === undefined) return false;
    changesOnBoth(deleteItem, user, seq);
    deleteIfOrphan.run({ nid });
    return true;
  });

  const sweepTx = db.transaction((now: number, policy: RetentionPolicy): number => {
    const highest = new Map<number, number>();
    const orphans = new Set<number>();
    let removed = 0;
    const note = (rows: RemovedRow[]): void => {
      removed += rows.length;
      for (const row of rows) {
        if (row.seq > (highest.get(row.user_id) ?? 0)) highest.set(row.user_id, row.seq);
        orphans.add(row.nid);
      }
    };
    note(rowsOnBoth(deleteExpired, now));
    const cutoff = now - policy.maxAgeMs;
    note(rowsOnBoth(deleteOlderThan, cutoff));
    // Their inbox rows went just above; this also catches notifications that reached nobody.
    deleteOldNotifications.run(cutoff);
    for (const user of usersOverLimit.all({ max: policy.maxPerUser })) {
      const newestDropped = nthNewestSeq.get(user, policy.maxPerUser);
      if (newestDropped !== undefined) note(rowsOnBoth(deleteUpTo, user, newestDropped));
    }
    for (const [user, seq] of highest) raiseExpired.run(seq, user);
    dropOrphans(orphans);
    deleteOldIdempotency.run(now - idempotencyWindowMs);
    return removed;
  });

  return {
    createUser: (name, passwordHash, now) =>
      settle(() => {
        const row = insertUser.get(name, passwordHash, now);
        return row === undefined ? undefined : toUser(row);
      }),
    ensureUser: (name, now) =>
      settle(() => {
        const row = insertUser.get(name, null, now) ?? userByNameStmt.get(name);
        if (row === undefined) throw new Error(`user ${name} could not be created`);
        return toUser(row);
      }),
    userByName: (name) =>
      settle(() => {
        const row = userByNameStmt.get(name);
        return row === undefined ? undefined : toUser(row);
      }),
    userById: (id) =>
      settle(() => {
        const row = userByIdStmt.get(id);
        return row === undefined ? undefined : toUser(row);
      }),

    insertToken: (token) =>
      settle(() => {
        insertTokenStmt.run(
          token.id,
          token.kind,
          token.hash,
          token.userId,
          token.name,
          token.label,
          token.topics === null ? null : JSON.stringify(token.topics),
          token.createdAt,
          token.expiresAt,
        );
      }),
    tokenByHash: (hash) =>
      settle(() => {
        const row = tokenByHashStmt.get(hash);
        return row === undefined ? undefined : toToken(row);
      }),
    listTokens: () => settle(() => listTokensStmt.all().map(toToken)),
    revokeToken: (id) =>
      settle(() => {
        const row = deleteToken.get(id);
        return row === undefined ? undefined : toToken(row);
      }),
    hasAdminToken: () => settle(() => anyAdmin.get() === 1),

    subscribe: (user, topic) =>
      settle(() => {
        insertSubscription.run(user, topic);
      }),
    unsubscribe: (user, topic) => settle(() => deleteSubscription.run(user, topic).changes > 0),
    topics: (user) => settle(() => topicsOf.all(user)),

    publish: async (input) => {
      const [outcome] = await enqueue([input], false);
      if (outcome === undefined) throw new Error('group commit returned no outcome');
      return outcome;
    },
    publishBatch: (inputs) => (inputs.length === 0 ? Promise.resolve([]) : enqueue(inputs, true)),
    releaseDue: (now) =>
      settle(() => {
        const fanouts = release.immediate(now);
        settleWhenFull();
        return fanouts;
      }),
    retract: (id, publisher) => settle(() => retractTx.immediate(id, publisher)),

    inbox: (user, query: InboxQuery, now) =>
      settle(() => {
        const rows = inboxPage.all({
          user,
          before: query.before ?? Number.MAX_SAFE_INTEGER,
          limit: Math.max(0, query.limit),
          now,
          unreadOnly: query.unreadOnly === true ? 1 : 0,
          topic: query.topic ?? null,
          minPriority: query.minPriority ?? null,
          q: query.q === undefined || query.q === '' ? null : likePattern(query.q),
        });
        return { items: rows.map(toItem), head: headOf.get(user) ?? 0, unread: unreadCount.get(user, now) ?? 0 };
      }),
    replay: (user, since, limit, now) =>
      settle((): ReplayPage => {
        const cursor = cursorOf.get(user);
        if (cursor === undefined) return { items: [], head: 0, gap: false };
        // Every row's seq is at most head: a device that is up to date (most reconnects) needs no more reads.
        if (cursor.head <= since) return { items: [], head: cursor.head, gap: cursor.expired_seq > since };
        const rows = replayPage.all(user, since, now, Math.max(0, limit));
        // Expired rows not yet swept count as a gap only within the range this page covers.
        const last = rows.at(-1);
        const upper = rows.length >= limit && last !== undefined ? last.seq : Number.MAX_SAFE_INTEGER;
        const gap = cursor.expired_seq > since || expiredBetween.get(user, since, upper, now) === 1;
        return { items: rows.map(toItem), head: cursor.head, gap };
      }),
    head: (user) => settle(() => headOf.get(user) ?? 0),
    heads: (users) =>
      settle(() => new Map(users.length === 0 ? [] : headsOf.all(JSON.stringify(users)).map((row) => [row.id, row.head] as const))),
    markRead: (user, target, now) => settle(() => markReadTx.immediate(user, target, now)),
    deleteItem: (user, seq) => settle(() => deleteItemTx.immediate(user, seq)),

    sweep: (now, policy) => settle(() => sweepTx.immediate(now, policy)),
    ping: () =>
      settle(() => {
        try {
          return selectOne.get() === 1;
        } catch {
          return false;
        }
      }),
    close: () =>
      settle(() => {
        if (closed) return;
        closed = true;
        clearImmediate(settling);
        flush();
        db.close();
      }),
  };
}
