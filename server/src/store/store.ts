import type { Action, PublishRequest } from '@herald/protocol';

export type TokenKind = 'admin' | 'app' | 'device';

export interface UserRecord {
  id: number;
  name: string;
  /** scrypt hash (see auth.ts), or null when the user cannot log in with a password. */
  passwordHash: string | null;
  /** Epoch milliseconds. */
  createdAt: number;
}

export interface TokenRecord {
  /** Public id, used in `DELETE /v1/tokens/:id`. Never the secret. */
  id: string;
  kind: TokenKind;
  /** sha256 hex of the secret. */
  hash: string;
  /** Device tokens: the user they act for. */
  userId: number | null;
  /** App tokens: the app's name. */
  name: string | null;
  label: string | null;
  /** App tokens: topics it may publish to; null means any. */
  topics: string[] | null;
  /** Epoch milliseconds. */
  createdAt: number;
  /** Epoch milliseconds; null means never. */
  expiresAt: number | null;
}

/** The body of a notification, stored once however many users receive it. */
export interface StoredNotification {
  id: string;
  title: string;
  body: string;
  priority: number;
  tags: string[];
  url: string | null;
  icon: string | null;
  actions: Action[];
  key: string | null;
  /** Epoch milliseconds. */
  createdAt: number;
  /** Epoch milliseconds; null means never. */
  expiresAt: number | null;
  /** Id of the token that published it (retraction checks ownership). */
  publisher: string;
}

/** One inbox row joined with its notification. */
export interface InboxItem {
  seq: number;
  read: boolean;
  /** The topic through which this user got it; null when addressed directly or through `all`. */
  topic: string | null;
  notification: StoredNotification;
}

/** A new inbox row written by a publish or a scheduled release. */
export interface Delivery {
  user: number;
  seq: number;
  topic: string | null;
}

export interface PublishInput {
  /** Fresh notification id, used unless an idempotent retry finds an earlier one. */
  id: string;
  request: PublishRequest;
  /** Publishing token's id. */
  publisher: string;
  /** `Idempotency-Key` plus a hash of the request body. */
  idempotency?: { key: string; hash: string };
  /** Epoch milliseconds. */
  now: number;
}

export type PublishOutcome =
  | {
      ok: true;
      id: string;
      recipients: number;
      /** Set when the notification waits for `deliverAt` (epoch ms); deliveries are then empty. */
      scheduledFor?: number;
      /** True when an idempotent retry matched an earlier publish: nothing new was written. */
      duplicate: boolean;
      notification: StoredNotification;
      deliveries: Delivery[];
      /** The notification frame's shared JSON (fanout.ts `sharedFields`), when the store thread made it already. */
      shared?: string;
    }
  | { ok: false; code: 'unknown_user'; users: string[]; index?: number }
  | { ok: false; code: 'idempotency_key_reused'; index?: number };

/** A successful publish or a due scheduled notification: what must go out to live devices. */
export type Fanout = Extract<PublishOutcome, { ok: true }>;

export interface InboxQuery {
  /** Only seqs below this. */
  before?: number;
  limit: number;
  unreadOnly?: boolean;
  topic?: string;
  /** Only priorities at or above this, 1–5. */
  minPriority?: number;
  /** Case-insensitive substring of title or body. */
  q?: string;
}

export interface ReplayPage {
  /** Ascending by seq, at most `limit`; expired items are left out. */
  items: InboxItem[];
  /** The user's current head seq. */
  head: number;
  /** True when notifications after `since` expired or fell to retention before this replay. */
  gap: boolean;
}

export type ReadTarget = { seqs: number[] } | { upTo: number };

export interface RetentionPolicy {
  /** Inbox rows older than this many milliseconds are removed. */
  maxAgeMs: number;
  /** At most this many inbox rows per user are kept, newest first. */
  maxPerUser: number;
}

/**
 * Durable state: users, tokens, subscriptions and per-user inboxes.
 * The SQLite store is the embedded default; the PostgreSQL store implements the same interface.
 * Every write resolves only once it is committed.
 */
export interface Store {
  createUser(name: string, passwordHash: string | null, now: number): Promise<UserRecord | undefined>;
  /** Returns the user, creating it when missing (JWT `sub` users). */
  ensureUser(name: string, now: number): Promise<UserRecord>;
  userByName(name: string): Promise<UserRecord | undefined>;
  userById(id: number): Promise<UserRecord | undefined>;

  insertToken(token: TokenRecord): Promise<void>;
  tokenByHash(hash: string): Promise<TokenRecord | undefined>;
  listTokens(): Promise<TokenRecord[]>;
  /** Deletes the token; returns it, or undefined when there was none. */
  revokeToken(id: string): Promise<TokenRecord | undefined>;
  hasAdminToken(): Promise<boolean>;

  subscribe(user: number, topic: string): Promise<void>;
  /** Returns false when the user was not subscribed. */
  unsubscribe(user: number, topic: string): Promise<boolean>;
  topics(user: number): Promise<string[]>;

  /** Group-committed: concurrent calls share one transaction. */
  publish(input: PublishInput): Promise<PublishOutcome>;
  /** Several publishes in one transaction; all succeed, or the first failure is returned alone with its `index`. */
  publishBatch(inputs: PublishInput[]): Promise<PublishOutcome[]>;
  /** Fans out scheduled notifications whose time has come. */
  releaseDue(now: number): Promise<Fanout[]>;
  /** Removes a notification from every inbox (and cancels it if scheduled); returns removed seqs per user. */
  retract(id: string, publisher: string | undefined): Promise<Map<number, number[]> | undefined>;

  inbox(user: number, query: InboxQuery, now: number): Promise<{ items: InboxItem[]; head: number; unread: number }>;
  replay(user: number, since: number, limit: number, now: number): Promise<ReplayPage>;
  head(user: number): Promise<number>;
  /** Heads of several users at once (idle heartbeats); users without rows are left out. */
  heads(users: number[]): Promise<Map<number, number>>;
  /** Marks items read; `changed` is false when nothing was unread. */
  markRead(user: number, target: ReadTarget, now: number): Promise<{ unread: number; changed: boolean }>;
  /** Removes one inbox item; false when there was none. */
  deleteItem(user: number, seq: number): Promise<boolean>;

  /** Removes expired rows and rows past retention; returns how many inbox rows went. */
  sweep(now: number, policy: RetentionPolicy): Promise<number>;
  /** True when the store answers. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
  /** Connection pool figures, for stores that keep a pool. */
  poolStats?(): PoolStats;
}

export interface PoolStats {
  /** Connections open. */
  total: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}
