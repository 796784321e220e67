import type { Broker, ControlEvent, UserMessage } from './broker/broker.js';
import type { Metrics } from './metrics.js';

/** What the hub needs of a connection; stream.ts implements it. */
export interface Peer {
  readonly user: number;
  readonly tokenId: string;
  /** Called for every broker message to this peer's user. */
  receive(message: UserMessage, frame: Buffer): void;
  /** Writes queued frames in one go. */
  flush(): void;
  close(code: number, reason: string): void;
}

/**
 * This node's live connections by user. Subscribes to the broker for users with a connection here,
 * and coalesces the frames queued to each socket within one event-loop turn into one write.
 */
export class Hub {
  readonly #users = new Map<number, Set<Peer>>();
  readonly #dirty = new Set<Peer>();
  #flushScheduled = false;
  #size = 0;
  broker!: Broker;

  constructor(readonly metrics: Metrics) {}

  get size(): number {
    return this.#size;
  }

  peers(): Generator<Peer> {
    return (function* (users) {
      for (const set of users.values()) yield* set;
    })(this.#users);
  }

  connectionsOf(user: number): number {
    return this.#users.get(user)?.size ?? 0;
  }

  /** Registers a peer; resolves once its user's broker subscription is active. */
  async attach(peer: Peer): Promise<void> {
    let set = this.#users.get(peer.user);
    if (!set) {
      set = new Set();
      this.#users.set(peer.user, set);
    }
    set.add(peer);
    this.#size++;
    this.metrics.connections.set(this.#size);
    if (set.size === 1) await this.broker.subscribe(peer.user);
  }

  detach(peer: Peer): void {
    const set = this.#users.get(peer.user);
    if (!set?.delete(peer)) return;
    this.#size--;
    this.metrics.connections.set(this.#size);
    this.#dirty.delete(peer);
    if (set.size === 0) {
      this.#users.delete(peer.user);
      this.broker.unsubscribe(peer.user);
    }
  }

  /** Broker handler: one buffer per message, shared by every socket of the user. */
  message(message: UserMessage): void {
    const set = this.#users.get(message.user);
    if (!set) return;
    const frame = Buffer.from(message.frame);
    for (const peer of set) peer.receive(message, frame);
  }

  control(event: ControlEvent): void {
    for (const peer of this.peers()) if (peer.tokenId === event.tokenId) peer.close(4501, 'token revoked');
  }

  /** Marks a peer as having queued frames; all of them are written on the next turn. */
  markDirty(peer: Peer): void {
    this.#dirty.add(peer);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      for (const dirty of this.#dirty) dirty.flush();
      this.#dirty.clear();
    });
  }
}
