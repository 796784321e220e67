/** Server frames for tests that drive a client without a server. */
import type { ServerFrame } from '@herald/protocol';

export const welcome = (head: number, heartbeat = 25_000): ServerFrame => ({ type: 'welcome', v: 1, user: { id: 1, name: 'alice' }, head, heartbeat });

export const note = (seq: number, id = `n${seq}`): ServerFrame => ({
  type: 'notification',
  seq,
  id,
  title: `title ${id}`,
  body: '',
  priority: 3,
  tags: [],
  url: null,
  icon: null,
  actions: [],
  createdAt: new Date(0).toISOString(),
  read: false,
});

export const synced = (head: number, replayed = 0, gap = false, liveOnly?: true): ServerFrame => ({ type: 'synced', head, replayed, gap, ...(liveOnly ? { liveOnly } : {}) });
