import { z } from 'zod';
import { notification, type InboxPage, type InboxQuery, type Notification, type ReadTarget } from '@herald/protocol';
import { defaults } from './defaults.js';
import { matchesQuery } from './filters.js';

const keyPrefix = 'herald.inbox.v1:';
const stored = z.array(notification);

/**
 * The most recent items of one user, kept in localStorage so the web inbox can still show them while the
 * server is unreachable. Written on every page, arrival and read change; cleared on sign-out.
 */
export class OfflineCache {
  readonly #key: string;
  readonly #items = new Map<number, Notification>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    user: string,
    readonly max: number = defaults.offlineCacheMax,
  ) {
    this.#key = keyPrefix + user;
    try {
      const raw = localStorage.getItem(this.#key);
      const parsed = raw === null ? undefined : stored.safeParse(JSON.parse(raw));
      for (const item of parsed?.success === true ? parsed.data : []) this.#items.set(item.seq, item);
    } catch {
      // Unreadable or unavailable storage: start empty.
    }
  }

  /** Drops every user's cached items except `keep`'s: another account signed in on this browser. */
  static forgetOthers(keep: string): void {
    try {
      for (const key of Object.keys(localStorage)) if (key.startsWith(keyPrefix) && key !== keyPrefix + keep) localStorage.removeItem(key);
    } catch {
      // Nothing to forget.
    }
  }

  get size(): number {
    return this.#items.size;
  }

  merge(items: readonly Notification[]): void {
    if (items.length === 0) return;
    for (const item of items) {
      // A keyed item replaces the earlier one with the same key (the server sends no `deleted` for it).
      if (item.key !== undefined) for (const [seq, held] of this.#items) if (held.key === item.key && seq < item.seq) this.#items.delete(seq);
      this.#items.set(item.seq, item);
    }
    if (this.#items.size > this.max) {
      const seqs = [...this.#items.keys()].sort((a, b) => b - a);
      for (const seq of seqs.slice(this.max)) this.#items.delete(seq);
    }
    this.#schedule();
  }

  markRead(target: ReadTarget): void {
    const seqs = 'seqs' in target ? new Set(target.seqs) : undefined;
    for (const item of this.#items.values()) {
      if (!item.read && (seqs ? seqs.has(item.seq) : 'upTo' in target && item.seq <= target.upTo)) this.#items.set(item.seq, { ...item, read: true });
    }
    this.#schedule();
  }

  remove(seqs: readonly number[]): void {
    for (const seq of seqs) this.#items.delete(seq);
    this.#schedule();
  }

  /** A page as `GET /v1/inbox` would give it, from what is cached. */
  page(query: InboxQuery, unread: number): InboxPage {
    const items = [...this.#items.values()]
      .filter((item) => matchesQuery(item, query))
      .sort((a, b) => b.seq - a.seq)
      .slice(0, query.limit ?? defaults.pageSize);
    const head = Math.max(0, ...this.#items.keys());
    return { items, head, unread };
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#items.clear();
    try {
      localStorage.removeItem(this.#key);
    } catch {
      // Nothing was stored.
    }
  }

  /** Coalesces bursts of changes (a replay) into one write. */
  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, defaults.offlineCacheWriteDelayMs);
  }

  flush(): void {
    try {
      localStorage.setItem(this.#key, JSON.stringify([...this.#items.values()]));
    } catch {
      // Quota or disabled storage: the offline view just has less to show.
    }
  }
}
