import type { Notification } from '@herald/protocol';
import type { Broker, UserMessage } from './broker/broker.js';
import type { Metrics } from './metrics.js';
import type { Fanout, InboxItem, StoredNotification } from './store/store.js';

/** A notification as the wire shows it, for HTTP inbox pages. */
export function toWire(item: InboxItem): Notification {
  const n = item.notification;
  return {
    seq: item.seq,
    id: n.id,
    title: n.title,
    body: n.body,
    priority: n.priority,
    tags: n.tags,
    url: n.url,
    icon: n.icon,
    actions: n.actions,
    ...(item.topic === null ? {} : { topic: item.topic }),
    ...(n.key === null ? {} : { key: n.key }),
    createdAt: new Date(n.createdAt).toISOString(),
    ...(n.expiresAt === null ? {} : { expiresAt: new Date(n.expiresAt).toISOString() }),
    read: item.read,
  };
}

/**
 * The part of a notification frame shared by every recipient, serialized once per message.
 * Starts with a comma so a recipient's frame is a concatenation, not another JSON.stringify.
 */
export function sharedFields(n: StoredNotification): string {
  const shared = {
    id: n.id,
    title: n.title,
    body: n.body,
    priority: n.priority,
    tags: n.tags,
    url: n.url,
    icon: n.icon,
    actions: n.actions,
    ...(n.key === null ? {} : { key: n.key }),
    createdAt: new Date(n.createdAt).toISOString(),
    ...(n.expiresAt === null ? {} : { expiresAt: new Date(n.expiresAt).toISOString() }),
  };
  return ',' + JSON.stringify(shared).slice(1);
}

/** One recipient's `notification` frame from the shared part. */
export function notificationFrame(seq: number, read: boolean, topic: string | null, shared: string): string {
  const topicField = topic === null ? '' : `,"topic":${JSON.stringify(topic)}`;
  return `{"type":"notification","seq":${seq},"read":${read}${topicField}${shared}`;
}

/** Sends stored deliveries to live devices through the broker. */
export function createFanout(broker: Broker, metrics: Metrics): (fanout: Fanout) => void {
  return ({ notification, deliveries, shared = sharedFields(notification) }) => {
    if (deliveries.length === 0) return;
    broker.publishNotification({ shared, deliveries });
    metrics.fanouts.inc(deliveries.length);
  };
}

/** A non-notification frame for every device of a user (`read`, `deleted`). */
export function userFrame(user: number, frame: object): UserMessage {
  return { user, seq: 0, frame: JSON.stringify(frame) };
}
