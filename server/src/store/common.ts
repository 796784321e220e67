// Storage-independent pieces shared by the SQLite and PostgreSQL stores: how a publish request becomes
// a stored notification, and how rows (same column names in both schemas) become records.
import type { Action, PublishRequest } from '@herald/protocol';
import type { StoredNotification, TokenKind, TokenRecord, UserRecord } from './store.js';

/** Priority of a publish that names none (contract v1). */
export const defaultPriority = 3;

/** Columns of a notification row, as both stores select them (table alias `n`). */
export const notificationColumns = 'n.id, n.title, n.body, n.priority, n.tags, n.url, n.icon, n.actions, n.key, n.created_at, n.expires_at, n.publisher';

export interface UserRow {
  id: number;
  name: string;
  password_hash: string | null;
  created_at: number;
}

export interface TokenRow {
  id: string;
  kind: TokenKind;
  hash: string;
  user_id: number | null;
  name: string | null;
  label: string | null;
  topics: string | null;
  created_at: number;
  expires_at: number | null;
}

export interface NotificationRow {
  id: string;
  title: string;
  body: string;
  priority: number;
  tags: string | null;
  url: string | null;
  icon: string | null;
  actions: string | null;
  key: string | null;
  created_at: number;
  expires_at: number | null;
  publisher: string;
}

export function toUser(row: UserRow): UserRecord {
  return { id: row.id, name: row.name, passwordHash: row.password_hash, createdAt: row.created_at };
}

export function toToken(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    kind: row.kind,
    hash: row.hash,
    userId: row.user_id,
    name: row.name,
    label: row.label,
    topics: row.topics === null ? null : (JSON.parse(row.topics) as string[]),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

export function toNotification(row: NotificationRow): StoredNotification {
  return {
    id: row.id,
    title: row.title,
    body: row.body,
    priority: row.priority,
    tags: row.tags === null ? [] : (JSON.parse(row.tags) as string[]),
    url: row.url,
    icon: row.icon,
    actions: row.actions === null ? [] : (JSON.parse(row.actions) as Action[]),
    key: row.key,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    publisher: row.publisher,
  };
}

/** Epoch ms of a `deliverAt` still in the future, or undefined when the publish goes out now. */
export function scheduledTime(request: PublishRequest, now: number): number | undefined {
  if (request.deliverAt === undefined) return undefined;
  const at = Date.parse(request.deliverAt);
  return Number.isFinite(at) && at > now ? at : undefined;
}

/**
 * The stored form of a publish request. Deterministic, so an idempotent retry can rebuild the original.
 * A scheduled notification is created, and its ttl starts, when it is delivered.
 */
export function buildNotification(id: string, request: PublishRequest, publisher: string, now: number): StoredNotification {
  const createdAt = scheduledTime(request, now) ?? now;
  return {
    id,
    title: request.title,
    body: request.body ?? '',
    priority: request.priority ?? defaultPriority,
    tags: request.tags ?? [],
    url: request.url ?? null,
    icon: request.icon ?? null,
    actions: request.actions ?? [],
    key: request.key ?? null,
    createdAt,
    expiresAt: request.ttl === undefined ? null : createdAt + request.ttl * 1000,
    publisher,
  };
}

/** `q` as a LIKE pattern matching it as a plain substring (escape character `\`). */
export function likePattern(q: string): string {
  return `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** Tags and actions are stored as JSON text, or null when empty. */
export function jsonOrNull(list: readonly unknown[]): string | null {
  return list.length === 0 ? null : JSON.stringify(list);
}
