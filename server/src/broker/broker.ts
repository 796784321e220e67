import { notificationFrame } from '../fanout.js';
import type { Delivery } from '../store/store.js';

/** A frame for every live connection of one user. `seq` is set on notification frames (for de-duplication). */
export interface UserMessage {
  user: number;
  seq: number;
  frame: string;
}

/**
 * One notification for each of its recipients: the frame's shared part once (fanout.ts `sharedFields`) and each
 * recipient's seq and topic. A broadcast travels between nodes this way, not as one frame per user.
 */
export interface NotificationMessage {
  shared: string;
  deliveries: Delivery[];
}

/** The recipients' own frames, for those `wanted` (default: all). */
export function userMessages({ shared, deliveries }: NotificationMessage, wanted: (user: number) => boolean = () => true): UserMessage[] {
  const messages: UserMessage[] = [];
  for (const d of deliveries) if (wanted(d.user)) messages.push({ user: d.user, seq: d.seq, frame: notificationFrame(d.seq, false, d.topic, shared) });
  return messages;
}

/** Node-wide events: every node acts on them, whoever its users are. */
export type ControlEvent = { type: 'revoke'; tokenId: string };

export interface BrokerHandlers {
  message(message: UserMessage): void;
  control(event: ControlEvent): void;
  /** Called for messages from another node or worker: milliseconds since it was published there. */
  lag?(ms: number): void;
}

/** Counters for `/metrics`, kept by brokers that cross a process boundary. */
export interface BrokerStats {
  /** Reconnects after which the subscriptions were restored and confirmed. */
  resubscribes: number;
  /** User messages handed to the transport (failed ones are also counted in `dropped`). */
  published: number;
  /** User messages received and passed to the hub. */
  received: number;
  /** Messages lost on this node: publishes the transport refused or never got, and undecodable inbound messages. */
  dropped: number;
}

/**
 * Live fan-out between the node that stored a change and the nodes holding its users' sockets.
 * It may drop messages: the store is the source of truth, and devices recover gaps by cursor.
 * The in-process broker is the embedded default; Redis Pub/Sub implements the same interface.
 */
export interface Broker {
  /** Receives messages for this user from now on; resolves once the subscription is active. */
  subscribe(user: number): Promise<void>;
  unsubscribe(user: number): void;
  /** Publishes without waiting; order per user is kept. */
  publish(messages: UserMessage[]): void;
  /** Publishes a new notification to its recipients, in order with `publish` per user. */
  publishNotification(message: NotificationMessage): void;
  publishControl(event: ControlEvent): void;
  ping(): Promise<boolean>;
  close(): Promise<void>;
  stats?(): BrokerStats;
}

export type BrokerFactory = (handlers: BrokerHandlers) => Broker;
