/**
 * The broker between worker processes of one `herald-server start --workers N` when no Redis is configured:
 * each worker delivers to its own sockets directly and sends the rest through the primary process, which
 * forwards a message only to the workers that hold a connection of its user.
 *
 * Order per user is kept: a worker's messages travel one IPC channel to the primary and one from it.
 * Like Redis Pub/Sub it may drop messages (a worker restarting), and devices recover by cursor as they do there.
 */
import type { Worker } from 'node:cluster';
import { userMessages, type Broker, type BrokerHandlers, type BrokerStats, type ControlEvent, type NotificationMessage, type UserMessage } from './broker.js';

/** What a worker sends to the primary. Every message carries `herald` so other IPC traffic passes untouched. */
type ToPrimary =
  | { herald: 'subscribe'; id: number; users: number[] }
  | { herald: 'unsubscribe'; users: number[] }
  | Publish
  | { herald: 'control'; event: ControlEvent };

/** User messages, or a notification with its shared part once; the primary forwards each worker its own users' part. */
type Publish = { herald: 'publish'; messages: UserMessage[]; sentAt: number } | ({ herald: 'notification'; sentAt: number } & NotificationMessage);

/** What the primary sends to a worker. */
type ToWorker = { herald: 'subscribed'; id: number } | Publish | { herald: 'control'; event: ControlEvent };

/** The IPC endpoint of a worker: `process` in a cluster worker. */
export interface IpcChannel {
  send(message: ToPrimary): unknown;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  readonly connected?: boolean;
}

function isHerald(message: unknown): message is { herald: string } {
  return typeof message === 'object' && message !== null && typeof (message as { herald?: unknown }).herald === 'string';
}

/** The worker's side: a `BrokerFactory` for `createServer`. */
export function createIpcBroker(channel: IpcChannel = process as unknown as IpcChannel): (handlers: BrokerHandlers) => Broker {
  return (handlers) => {
    const users = new Set<number>();
    /** Subscriptions sent and not yet confirmed, by batch id. */
    const waiting = new Map<number, (() => void)[]>();
    let batch: { id: number; users: number[]; confirm: (() => void)[] } | undefined;
    let toUnsubscribe: number[] = [];
    let flushScheduled = false;
    let nextId = 1;
    const stats: BrokerStats = { resubscribes: 0, published: 0, received: 0, dropped: 0 };

    // Subscriptions of one turn (a mass reconnect) go out as one message, confirmed by one reply.
    const flush = () => {
      flushScheduled = false;
      if (toUnsubscribe.length > 0) channel.send({ herald: 'unsubscribe', users: toUnsubscribe });
      toUnsubscribe = [];
      if (batch) {
        waiting.set(batch.id, batch.confirm);
        channel.send({ herald: 'subscribe', id: batch.id, users: batch.users });
        batch = undefined;
      }
    };
    const schedule = () => {
      if (flushScheduled) return;
      flushScheduled = true;
      setImmediate(flush);
    };

    const onMessage = (message: unknown) => {
      if (!isHerald(message)) return;
      const m = message as ToWorker;
      if (m.herald === 'subscribed') {
        for (const confirm of waiting.get(m.id) ?? []) confirm();
        waiting.delete(m.id);
      } else if (m.herald === 'publish' || m.herald === 'notification') {
        const lag = Date.now() - m.sentAt;
        const own = m.herald === 'publish' ? m.messages.filter((item) => users.has(item.user)) : userMessages(m, (user) => users.has(user));
        for (const item of own) {
          stats.received++;
          handlers.lag?.(lag);
          handlers.message(item);
        }
      } else handlers.control(m.event);
    };
    channel.on('message', onMessage);

    return {
      subscribe(user) {
        users.add(user);
        return new Promise<void>((resolve) => {
          batch ??= { id: nextId++, users: [], confirm: [] };
          batch.users.push(user);
          batch.confirm.push(resolve);
          schedule();
        });
      },
      unsubscribe(user) {
        if (!users.delete(user)) return;
        toUnsubscribe.push(user);
        schedule();
      },
      publish(messages) {
        // The primary knows which other workers want which users; local sockets are served right here.
        for (const message of messages) if (users.has(message.user)) handlers.message(message);
        stats.published += messages.length;
        channel.send({ herald: 'publish', messages, sentAt: Date.now() });
      },
      publishNotification(message) {
        for (const own of userMessages(message, (user) => users.has(user))) handlers.message(own);
        stats.published += message.deliveries.length;
        channel.send({ herald: 'notification', ...message, sentAt: Date.now() });
      },
      publishControl(event) {
        handlers.control(event);
        channel.send({ herald: 'control', event });
      },
      ping: () => Promise.resolve(channel.connected !== false),
      stats: () => ({ ...stats }),
      close() {
        channel.off('message', onMessage);
        for (const confirm of [...waiting.values(), batch?.confirm ?? []].flat()) confirm();
        waiting.clear();
        batch = undefined;
        return Promise.resolve();
      },
    };
  };
}

/**
 * The primary's side: relays between workers. Call `add` for each forked worker; it forgets the worker's
 * subscriptions when the worker exits.
 */
export function createIpcRelay() {
  /** Workers holding a connection of each user. */
  const subscribers = new Map<number, Set<Worker>>();
  const workers = new Set<Worker>();

  function drop(worker: Worker, user: number): void {
    const set = subscribers.get(user);
    if (!set?.delete(worker)) return;
    if (set.size === 0) subscribers.delete(user);
  }

  /** One list per destination worker other than `from`, holding only its users' items. */
  function byWorker<T extends { user: number }>(from: Worker, items: T[]): Map<Worker, T[]> {
    const batches = new Map<Worker, T[]>();
    for (const item of items) {
      for (const worker of subscribers.get(item.user) ?? []) {
        if (worker === from) continue;
        const batch = batches.get(worker);
        if (batch) batch.push(item);
        else batches.set(worker, [item]);
      }
    }
    return batches;
  }

  function relay(from: Worker, message: ToPrimary): void {
    switch (message.herald) {
      case 'subscribe':
        for (const user of message.users) {
          let set = subscribers.get(user);
          if (!set) subscribers.set(user, (set = new Set()));
          set.add(from);
        }
        send(from, { herald: 'subscribed', id: message.id });
        return;
      case 'unsubscribe':
        for (const user of message.users) drop(from, user);
        return;
      case 'publish':
        for (const [worker, messages] of byWorker(from, message.messages)) send(worker, { herald: 'publish', messages, sentAt: message.sentAt });
        return;
      case 'notification':
        for (const [worker, deliveries] of byWorker(from, message.deliveries)) {
          send(worker, { herald: 'notification', shared: message.shared, deliveries, sentAt: message.sentAt });
        }
        return;
      case 'control':
        for (const worker of workers) if (worker !== from) send(worker, message);
        return;
    }
  }

  return {
    add(worker: Worker): void {
      workers.add(worker);
      worker.on('message', (message: unknown) => {
        if (isHerald(message)) relay(worker, message as ToPrimary);
      });
      worker.once('exit', () => {
        workers.delete(worker);
        for (const user of [...subscribers.keys()]) drop(worker, user);
      });
    },
    /** Users with a connection on some worker (for tests and metrics). */
    get users(): number {
      return subscribers.size;
    },
  };
}

function send(worker: Worker, message: ToWorker): void {
  // A worker that is exiting has lost its sockets anyway; its devices resume elsewhere by cursor.
  if (worker.isConnected()) worker.send(message);
}
