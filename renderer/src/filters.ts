import type { InboxQuery, Notification } from '@herald/protocol';

/** What the toolbar selects; empty strings and 0 mean "any". */
export interface Filters {
  q: string;
  topic: string;
  minPriority: number;
  unreadOnly: boolean;
}

export const noFilters: Filters = { q: '', topic: '', minPriority: 0, unreadOnly: false };

export function isFiltered(filters: Filters): boolean {
  return filters.q !== '' || filters.topic !== '' || filters.minPriority > 0 || filters.unreadOnly;
}

export function toQuery(filters: Filters, limit: number, before?: number): InboxQuery {
  return {
    limit,
    ...(before === undefined ? {} : { before }),
    ...(filters.unreadOnly ? { unread: true } : {}),
    ...(filters.topic === '' ? {} : { topic: filters.topic }),
    ...(filters.minPriority > 0 ? { minPriority: filters.minPriority } : {}),
    ...(filters.q === '' ? {} : { q: filters.q }),
  };
}

/** SQLite's LIKE folds ASCII only; fold the same way so live arrivals match as the server's search does. */
function foldAscii(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** The server's inbox filters, applied to one item (live arrivals, the offline cache). */
export function matchesQuery(item: Notification, query: InboxQuery): boolean {
  if (query.before !== undefined && item.seq >= query.before) return false;
  if (query.unread === true && item.read) return false;
  if (query.topic !== undefined && item.topic !== query.topic) return false;
  if (query.minPriority !== undefined && item.priority < query.minPriority) return false;
  if (query.q !== undefined) {
    const q = foldAscii(query.q);
    if (!foldAscii(item.title).includes(q) && !foldAscii(item.body).includes(q)) return false;
  }
  return true;
}
