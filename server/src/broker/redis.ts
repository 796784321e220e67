/**
 * Redis Pub/Sub broker: live fan-out between Herald nodes.
 *
 * - A node subscribes only to `<prefix>user:<id>` for users with a connection on it, plus two channels that
 *   every node subscribes to: `<prefix>control` (token revocation and the like) and `<prefix>fanout`.
 * - A notification to {@link RedisBrokerOptions.fanoutMin} users or more (a broadcast, a big topic) is one message
 *   on `<prefix>fanout`: its shared JSON once and each recipient's seq. Every node picks out its own users, so a
 *   broadcast to 100,000 users is a handful of messages instead of 100,000.
 * - SUBSCRIBE/UNSUBSCRIBE calls made within one event-loop turn go out as one command per
 *   {@link maxChannelsPerCommand} channels, so a mass reconnect costs a handful of round trips.
 * - Publishes use a separate connection with auto-pipelining: the publishes of one turn are one write,
 *   and a single connection keeps each user's messages in order.
 * - After a Redis restart ioredis reconnects and re-issues the subscriptions it holds (`autoResubscribe`,
 *   see ioredis `readyHandler`); the broker confirms each round with a PING on the subscriber connection and
 *   counts it in `stats().resubscribes`.
 *
 * Pub/Sub is at-most-once. A message published while a subscriber is disconnected or resubscribing, or
 * dropped by Redis for an over-full output buffer, is gone. That is by design: the store is the source of
 * truth, and a device notices it is behind from the `seq` gap on its next live frame or from the heartbeat's
 * `head`, then catches up with `sync` from its cursor. Nothing that got a 2xx is lost; it arrives late.
 *
 * With `sharded: true` the broker uses Redis 7 sharded Pub/Sub (SSUBSCRIBE/SPUBLISH) through a cluster client,
 * so a message travels only within the shard owning its channel's slot. SSUBSCRIBE batches are grouped by slot,
 * because one command may name only channels of one slot.
 */
import { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import { userMessages, type Broker, type BrokerHandlers, type BrokerStats, type ControlEvent, type NotificationMessage, type UserMessage } from './broker.js';
import { defaults } from '../defaults.js';

export interface RedisBrokerOptions {
  /** Redis URL, `redis://[user:password@]host:port[/db]`; with `sharded`, any node of the cluster. */
  url: string;
  /** Prefix of every channel name, so several deployments can share one Redis. Default `herald:`. */
  prefix?: string;
  /** Use sharded Pub/Sub (Redis ≥ 7, cluster mode). Default `false`. */
  sharded?: boolean;
  /** Most channels named in one SUBSCRIBE/UNSUBSCRIBE command. Default 10,000: a few hundred KB per command. */
  maxChannelsPerCommand?: number;
  /** Recipients from which a notification goes out on the fan-out channel instead of per user (count). Default 64. */
  fanoutMin?: number;
  /** How long `ping()` waits for both connections (also while they reconnect) before reporting unhealthy, in ms. Default 1,000. */
  pingTimeoutMs?: number;
  /** Called with every connection error (refused, reset, …); ioredis keeps reconnecting by itself. */
  onError?: (error: Error) => void;
  /** Called once Redis confirmed the subscriptions restored after a reconnect, with the number of users. */
  onResubscribe?: (users: number) => void;
}

export interface RedisBroker extends Broker {
  stats(): BrokerStats;
}

const controlEvent = z.object({ type: z.literal('revoke'), tokenId: z.string() });

/** The commands the broker needs, whether the connection is one server or a cluster. */
interface Connection {
  readonly redis: Redis | Cluster;
  publish(channel: string, payload: string): Promise<unknown>;
  subscribe(channels: string[]): Promise<unknown>;
  unsubscribe(channels: string[]): Promise<unknown>;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** Creates the `BrokerFactory` that `createServer` calls with the hub's handlers. */
export function createRedisBroker(options: RedisBrokerOptions): (handlers: BrokerHandlers) => RedisBroker {
  const maxChannels = options.maxChannelsPerCommand ?? defaults.redisChannelsPerCommand;
  if (!Number.isSafeInteger(maxChannels) || maxChannels < 1) throw new RangeError('maxChannelsPerCommand must be a positive integer');
  return (handlers) => new RedisPubSubBroker(options, maxChannels, handlers);
}

class RedisPubSubBroker implements RedisBroker {
  readonly #prefix: string;
  readonly #control: string;
  readonly #fanout: string;
  readonly #fanoutMin: number;
  readonly #sharded: boolean;
  readonly #maxChannels: number;
  readonly #pingTimeoutMs: number;
  readonly #pub: Connection;
  readonly #sub: Connection;
  /** Users this node wants; each promise settles when Redis confirmed the subscription. */
  readonly #users = new Map<number, Promise<void>>();
  readonly #toSubscribe = new Map<number, Waiter>();
  readonly #toUnsubscribe = new Set<number>();
  #flushScheduled = false;
  #closed = false;
  #readyOnce = false;
  #controlPending = true;
  readonly #stats: BrokerStats = { resubscribes: 0, published: 0, received: 0, dropped: 0 };

  constructor(
    readonly options: RedisBrokerOptions,
    maxChannels: number,
    readonly handlers: BrokerHandlers,
  ) {
    this.#prefix = options.prefix ?? defaults.redisPrefix;
    this.#control = this.#prefix + 'control';
    this.#fanout = this.#prefix + 'fanout';
    this.#fanoutMin = options.fanoutMin ?? defaults.redisFanoutMin;
    this.#sharded = options.sharded ?? false;
    this.#maxChannels = maxChannels;
    this.#pingTimeoutMs = options.pingTimeoutMs ?? defaults.redisPingTimeoutMs;
    this.#pub = this.#connect('publisher');
    this.#sub = this.#connect('subscriber');
    const onError = (error: Error) => options.onError?.(error);
    this.#pub.redis.on('error', onError);
    this.#sub.redis.on('error', onError);
    const onMessage = (channel: string, payload: string) => {
      this.#receive(channel, payload);
    };
    this.#sub.redis.on(this.#sharded ? 'smessage' : 'message', onMessage);
    this.#sub.redis.on('ready', () => {
      if (!this.#readyOnce) {
        this.#readyOnce = true;
        if (this.#sharded) this.#scheduleFlush();
        return;
      }
      // 'ready' is emitted before ioredis re-issues the subscriptions; the PING queued after them answers once Redis applied them.
      queueMicrotask(() => void this.#confirmResubscribe());
    });
    this.#scheduleFlush();
  }

  #connect(role: 'publisher' | 'subscriber'): Connection {
    const publisher = role === 'publisher';
    // Publishes are fire-and-forget: during an outage they fail after a few retries instead of queueing without bound.
    // Subscriptions are state, not traffic: they wait for Redis however long it takes.
    const maxRetriesPerRequest = publisher ? 2 : null;
    if (!this.#sharded) {
      const redis = new Redis(this.options.url, { enableAutoPipelining: publisher, autoResubscribe: true, maxRetriesPerRequest });
      return {
        redis,
        publish: (channel, payload) => redis.publish(channel, payload),
        subscribe: (channels) => redis.subscribe(...channels),
        unsubscribe: (channels) => redis.unsubscribe(...channels),
      };
    }
    const url = new URL(this.options.url);
    const redis = new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
      shardedSubscribers: !publisher,
      enableAutoPipelining: publisher,
      redisOptions: {
        username: url.username ? decodeURIComponent(url.username) : undefined,
        password: url.password ? decodeURIComponent(url.password) : undefined,
        maxRetriesPerRequest,
      },
    });
    return {
      redis,
      publish: (channel, payload) => redis.spublish(channel, payload),
      // One SSUBSCRIBE may name channels of one slot only.
      subscribe: (channels) => Promise.all([...bySlot(channels).values()].map((group) => redis.ssubscribe(...group))),
      unsubscribe: (channels) => Promise.all([...bySlot(channels).values()].map((group) => redis.sunsubscribe(...group))),
    };
  }

  subscribe(user: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('broker closed'));
    const existing = this.#users.get(user);
    if (existing) return existing;
    const promise = new Promise<void>((resolve, reject) => this.#toSubscribe.set(user, { resolve, reject }));
    this.#users.set(user, promise);
    this.#toUnsubscribe.delete(user);
    this.#scheduleFlush();
    return promise;
  }

  unsubscribe(user: number): void {
    if (!this.#users.delete(user)) return;
    const waiter = this.#toSubscribe.get(user);
    if (waiter) {
      // Never sent: nothing to undo at Redis.
      this.#toSubscribe.delete(user);
      waiter.resolve();
      return;
    }
    this.#toUnsubscribe.add(user);
    this.#scheduleFlush();
  }

  publish(messages: UserMessage[]): void {
    const sentAt = Date.now();
    for (const message of messages) {
      this.#stats.published++;
      this.#pub.publish(this.#channel(message.user), `${message.user}:${message.seq}:${sentAt}:${message.frame}`).catch(() => this.#stats.dropped++);
    }
  }

  publishNotification(message: NotificationMessage): void {
    const count = message.deliveries.length;
    if (count < this.#fanoutMin) {
      this.publish(userMessages(message));
      return;
    }
    this.#stats.published += count;
    this.#pub.publish(this.#fanout, encodeNotification(message, Date.now())).catch(() => (this.#stats.dropped += count));
  }

  publishControl(event: ControlEvent): void {
    this.#pub.publish(this.#control, JSON.stringify(event)).catch((error: unknown) => {
      this.#stats.dropped++;
      this.options.onError?.(error instanceof Error ? error : new Error(String(error)));
    });
  }

  async ping(): Promise<boolean> {
    // While reconnecting the PINGs wait in ioredis' offline queue: answered on 'ready', or false on timeout.
    if (this.#closed) return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), this.#pingTimeoutMs)));
    const pings = Promise.all([this.#pub.redis.ping(), this.#sub.redis.ping()]).then(
      () => true,
      () => false,
    );
    try {
      return await Promise.race([pings, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#toSubscribe.values()) waiter.reject(new Error('broker closed'));
    this.#toSubscribe.clear();
    this.#toUnsubscribe.clear();
    this.#users.clear();
    await Promise.all([quit(this.#pub.redis), quit(this.#sub.redis)]);
  }

  stats(): BrokerStats {
    return { ...this.#stats };
  }

  #channel(user: number): string {
    return `${this.#prefix}user:${user}`;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // setImmediate, not a microtask: a mass reconnect authenticates many sockets across one turn's I/O callbacks.
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    if (this.#closed) return;
    // The cluster client drops SSUBSCRIBEs sent before its first slot map and cluster state check: hold them until 'ready'.
    if (this.#sharded && !this.#readyOnce) return;
    if (this.#controlPending) {
      this.#controlPending = false;
      this.#sub.subscribe([this.#control, this.#fanout]).catch((error: unknown) => this.options.onError?.(toError(error)));
    }
    const unsubscribe = [...this.#toUnsubscribe];
    this.#toUnsubscribe.clear();
    for (let i = 0; i < unsubscribe.length; i += this.#maxChannels) {
      const chunk = unsubscribe.slice(i, i + this.#maxChannels).map((user) => this.#channel(user));
      this.#sub.unsubscribe(chunk).catch((error: unknown) => this.options.onError?.(toError(error)));
    }
    const subscribe = [...this.#toSubscribe];
    this.#toSubscribe.clear();
    for (let i = 0; i < subscribe.length; i += this.#maxChannels) {
      const chunk = subscribe.slice(i, i + this.#maxChannels);
      this.#sub.subscribe(chunk.map(([user]) => this.#channel(user))).then(
        () => {
          for (const [, waiter] of chunk) waiter.resolve();
        },
        (error: unknown) => {
          for (const [user, waiter] of chunk) {
            this.#users.delete(user);
            waiter.reject(toError(error));
          }
        },
      );
    }
  }

  async #confirmResubscribe(): Promise<void> {
    try {
      await this.#sub.redis.ping();
    } catch {
      return; // lost again before confirming; the next 'ready' tries again
    }
    this.#stats.resubscribes++;
    this.options.onResubscribe?.(this.#users.size);
  }

  /** Decodes `<user>:<seq>:<sentAt>:<frame>` without trusting it: anything malformed is counted and ignored. */
  #receive(channel: string, payload: string): void {
    if (channel === this.#control) {
      let event: ControlEvent;
      try {
        event = controlEvent.parse(JSON.parse(payload));
      } catch {
        this.#stats.dropped++;
        return;
      }
      this.handlers.control(event);
      return;
    }
    if (channel === this.#fanout) {
      const decoded = decodeNotification(payload);
      if (!decoded) {
        this.#stats.dropped++;
        return;
      }
      const own = userMessages(decoded.message, (user) => this.#users.has(user));
      if (own.length > 0) this.handlers.lag?.(Date.now() - decoded.sentAt);
      for (const message of own) this.#deliver(message);
      return;
    }
    const decoded = decode(payload);
    // A late message for a user unsubscribed meanwhile, or one sent to the wrong channel, is not delivered.
    if (!decoded || channel !== this.#channel(decoded.message.user) || !this.#users.has(decoded.message.user)) {
      this.#stats.dropped++;
      return;
    }
    this.handlers.lag?.(Date.now() - decoded.sentAt);
    this.#deliver(decoded.message);
  }

  #deliver(message: UserMessage): void {
    this.#stats.received++;
    try {
      this.handlers.message(message);
    } catch (error) {
      this.options.onError?.(toError(error));
    }
  }
}

/** `{"sentAt","shared","users","seqs","topics"?}`: the recipients as parallel arrays, topics left out when all are null. */
function encodeNotification({ shared, deliveries }: NotificationMessage, sentAt: number): string {
  const users = deliveries.map((d) => d.user);
  const seqs = deliveries.map((d) => d.seq);
  const topics = deliveries.some((d) => d.topic !== null) ? deliveries.map((d) => d.topic) : undefined;
  return JSON.stringify({ sentAt, shared, users, seqs, topics });
}

/** Decodes a fan-out message without trusting it: undefined unless every field has the shape it must. */
function decodeNotification(payload: string): { message: NotificationMessage; sentAt: number } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { sentAt, shared, users, seqs, topics } = value as Record<string, unknown>;
  const counts = (n: unknown, min: number) => Number.isSafeInteger(n) && (n as number) >= min;
  // The shared part continues a frame's JSON object (fanout.ts sharedFields).
  if (!counts(sentAt, 0) || typeof shared !== 'string' || !shared.startsWith(',"') || !shared.endsWith('}')) return undefined;
  if (!Array.isArray(users) || !Array.isArray(seqs) || seqs.length !== users.length) return undefined;
  if (topics !== undefined && (!Array.isArray(topics) || topics.length !== users.length)) return undefined;
  const deliveries = [];
  for (let i = 0; i < users.length; i++) {
    const user: unknown = users[i];
    const seq: unknown = seqs[i];
    const topic: unknown = topics?.[i] ?? null;
    if (!counts(user, 1) || !counts(seq, 1) || (topic !== null && typeof topic !== 'string')) return undefined;
    deliveries.push({ user: user as number, seq: seq as number, topic });
  }
  return { message: { shared, deliveries }, sentAt: sentAt as number };
}

function decode(payload: string): { message: UserMessage; sentAt: number } | undefined {
  const fields: number[] = [];
  let start = 0;
  for (let i = 0; i < 3; i++) {
    const end = payload.indexOf(':', start);
    if (end <= start) return undefined;
    fields.push(Number(payload.slice(start, end)));
    start = end + 1;
  }
  const [user = 0, seq = -1, sentAt = -1] = fields;
  if (!Number.isSafeInteger(user) || user < 1 || !Number.isSafeInteger(seq) || seq < 0 || !Number.isSafeInteger(sentAt) || sentAt < 0) return undefined;
  const frame = payload.slice(start);
  // Frames are JSON objects; anything else would reach sockets as garbage.
  if (!frame.startsWith('{') || !frame.endsWith('}')) return undefined;
  return { message: { user, seq, frame }, sentAt };
}

async function quit(redis: Redis | Cluster): Promise<void> {
  if (redis.status === 'ready') {
    try {
      await redis.quit();
      return;
    } catch {
      // fall through: the connection is already going
    }
  }
  redis.disconnect();
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Groups channels by Redis Cluster hash slot. */
function bySlot(channels: string[]): Map<number, string[]> {
  const groups = new Map<number, string[]>();
  for (const channel of channels) {
    const slot = keySlot(channel);
    const group = groups.get(slot);
    if (group) group.push(channel);
    else groups.set(slot, [channel]);
  }
  return groups;
}

/** CRC16/XMODEM of the key (or its `{hash tag}`) mod 16384, as in the Redis Cluster specification. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
