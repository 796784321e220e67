/**
 * The client side of `/v1/stream` without I/O: fed socket events and server frames, it says what to send and
 * what to hand to the app. It resumes by cursor, hands every seq over at most once and in order, recovers missed
 * live frames with `sync`, and asks for the dead-link timer to be re-armed on every frame. Sockets, timers and
 * reconnect loops belong to the transports (`main/connection.ts` in Node, `renderer/src/web-bridge.ts` in a browser).
 */
import { assertNever, shouldReconnect } from './codes.js';
import { serverFrame, type ClientFrame, type ServerFrame, type ServerFrameOf } from './frames.js';
import type { Notification } from './notification.js';
import { parseJson } from './parse.js';

/** How a notification reached the app. */
export interface Delivery {
  /** True when it came in a replay (after `hello` or `sync`), false when it arrived live. */
  replayed: boolean;
  /** True for the first replay of a device without a (valid) cursor: history to show, not news to toast. */
  initial: boolean;
}

export interface Welcome {
  user: { id: number; name: string };
  head: number;
  /** The server's idle heartbeat interval, ms. */
  heartbeat: number;
}

export interface Synced {
  head: number;
  replayed: number;
  /** Some missed notifications expired past retention. */
  gap: boolean;
  /** The server started the session without waiting for this client's `hello` (see the frame). */
  liveOnly?: true;
}

export interface ReadChange {
  seqs?: number[];
  upTo?: number;
  unread: number;
}

/** What a {@link StreamClient} asks of its transport and hands to the app. Called synchronously, in order. */
export interface StreamClientHandler {
  /** Writes a frame to the open socket. */
  send(frame: ClientFrame): void;
  /** (Re)starts the dead-link timer: when it fires, the transport drops the socket and reports it `closed`. */
  armDeadTimer(ms: number): void;
  /** Each seq at most once, in ascending order. */
  notification(item: Notification, delivery: Delivery): void;
  /** The cursor moved to `seq`, after anything up to it was handed over: the place to persist it. */
  cursor?(seq: number): void;
  welcome(welcome: Welcome): void;
  synced(synced: Synced): void;
  read(change: ReadChange): void;
  deleted(seqs: number[]): void;
  /** An `error` frame. A close, if one follows, comes through the transport. */
  error(error: { code: string; message: string }): void;
  /** A frame that could not be read (binary, bad JSON, an unknown type from a newer server): it was skipped. */
  unreadable(error: unknown): void;
}

export interface StreamClientOptions {
  /** The last seq this device holds (its saved cursor); undefined when it has none. */
  cursor: number | undefined;
  /** Without a cursor: true asks for the whole inbox (`since: 0`, delivered as `initial`), false starts at the head. */
  initialReplay: boolean;
  /** Put in `hello`, for clients that cannot send an Authorization header (browsers). Default: none. */
  token?: string;
  /** Heartbeat interval assumed until `welcome` states the server's, ms. */
  heartbeatMs: number;
  /** Silence tolerated beyond the heartbeat interval before the link counts as dead, ms. */
  deadLinkGraceMs: number;
}

/** Recently delivered ids kept for de-duplication by id, on top of the seq cursor. */
const rememberedIds = 1024;

type Phase =
  /** No open socket. */
  | 'idle'
  /** `hello` sent: welcome, replay and `synced` are coming, in that order. */
  | 'hello'
  /** Live notifications, each expected at lastSeq + 1. */
  | 'live'
  /** `sync` sent on a live socket: frames already in flight and the replay interleave until `synced`. */
  | 'resync';

export class StreamClient {
  readonly #handler: StreamClientHandler;
  readonly #initialReplay: boolean;
  readonly #token: string | undefined;
  readonly #deadLinkGraceMs: number;
  #heartbeatMs: number;
  #phase: Phase = 'idle';
  #lastSeq: number | undefined;
  #savedSeq: number | undefined;
  /** `since` of the hello in flight. */
  #helloSince: number | undefined;
  /** The replay in progress is a device's first (no cursor, or one from another history). */
  #initial = false;
  /** Frames that arrive between `sync` and `synced`, by seq; delivered in order once the replay is complete. */
  #held = new Map<number, Notification>();
  readonly #recentIds = new Set<string>();
  /** The seq after which the stream has delivered everything since its first welcome. */
  #floor: number | undefined;
  /** A replay from below the cursor, due once the replay running now is synced. */
  #rewind: number | undefined;
  /** Failed attempts since the last healthy session: picks the backoff window. */
  #attempts = 0;

  constructor(options: StreamClientOptions, handler: StreamClientHandler) {
    this.#handler = handler;
    this.#lastSeq = options.cursor;
    this.#savedSeq = options.cursor;
    this.#initialReplay = options.initialReplay;
    this.#token = options.token;
    this.#heartbeatMs = options.heartbeatMs;
    this.#deadLinkGraceMs = options.deadLinkGraceMs;
  }

  /** The highest seq handed over or known to be absent; undefined before the first sync of a device without a cursor. */
  get lastSeq(): number | undefined {
    return this.#lastSeq;
  }

  /** The attempt number for the next backoff (0 after a healthy session), counting it as made. */
  nextAttempt(): number {
    return this.#attempts++;
  }

  /** The next attempt waits only the first backoff window (the OS woke up, the network came back). */
  resetAttempts(): void {
    this.#attempts = 0;
  }

  /** The socket opened: says `hello`. */
  opened(): void {
    this.#phase = 'hello';
    this.#held = new Map();
    let since = this.#lastSeq;
    this.#initial = false;
    if (since === undefined && this.#initialReplay) {
      since = 0;
      this.#initial = true;
    }
    this.#helloSince = since;
    this.#handler.send({ type: 'hello', v: 1, ...(this.#token === undefined ? {} : { token: this.#token }), ...(since === undefined ? {} : { since }) });
    this.#armDeadTimer();
  }

  /** The socket closed (or is being dropped): nothing more is handed over from it. Returns whether to reconnect. */
  closed(code: number): boolean {
    this.#phase = 'idle';
    this.#held = new Map();
    return shouldReconnect(code);
  }

  /** A frame as received; anything but a JSON text frame of the protocol is reported and skipped. */
  message(data: unknown): void {
    if (this.#phase === 'idle') return;
    this.#armDeadTimer();
    if (typeof data !== 'string') {
      this.#handler.unreadable(new Error('ignored a binary frame: the stream sends JSON text only'));
      return;
    }
    let frame: ServerFrame;
    try {
      frame = parseJson(serverFrame, data);
    } catch (error) {
      this.#handler.unreadable(error);
      return;
    }
    this.#frame(frame);
  }

  /**
   * The app listed the inbox over HTTP up to `head`. Without a cursor the stream resumes from there; a listing
   * older than the stream's start missed what came in between, so that is replayed (known ids are skipped).
   */
  listed(head: number): void {
    if (this.#lastSeq === undefined && this.#phase === 'idle') {
      this.#lastSeq = head;
    } else if (this.#lastSeq === undefined && this.#floor === undefined) {
      // A hello without `since` starts at a head its welcome has not told yet: compare once it is synced.
      this.#rewind = Math.min(this.#rewind ?? head, head);
    } else if (this.#floor !== undefined && head < this.#floor) {
      this.#rewindTo(head);
    }
  }

  /** Replays from `since`, below the cursor: now on a live socket, after the replay that is running, or at the next hello. */
  #rewindTo(since: number): void {
    if (this.#phase === 'hello' || this.#phase === 'resync') {
      this.#rewind = Math.min(this.#rewind ?? since, since);
      return;
    }
    this.#floor = since;
    this.#lastSeq = Math.min(this.#lastSeq ?? since, since);
    if (this.#phase === 'live') this.#startResync();
  }

  #armDeadTimer(): void {
    this.#handler.armDeadTimer(this.#heartbeatMs + this.#deadLinkGraceMs);
  }

  #save(seq: number): void {
    if (seq === this.#savedSeq) return;
    this.#savedSeq = seq;
    this.#handler.cursor?.(seq);
  }

  /** Hands one notification over (unless its id was seen), then moves the cursor. */
  #deliver(item: Notification, delivery: Delivery): void {
    // A handler may have closed the socket: what was not handed over must not count as delivered.
    if (this.#phase === 'idle') return;
    if (!this.#recentIds.has(item.id)) {
      this.#recentIds.add(item.id);
      if (this.#recentIds.size > rememberedIds) this.#recentIds.delete(this.#recentIds.values().next().value as string);
      this.#handler.notification(item, delivery);
    }
    this.#lastSeq = item.seq;
    this.#save(item.seq);
  }

  #startResync(): void {
    this.#phase = 'resync';
    this.#held = new Map();
    this.#handler.send({ type: 'sync', since: this.#lastSeq ?? 0 });
  }

  #notification(item: Notification): void {
    const lastSeq = this.#lastSeq;
    if (lastSeq !== undefined && item.seq <= lastSeq) return;
    switch (this.#phase) {
      case 'idle':
        return;
      case 'hello':
        // The first replay of a socket: nothing precedes it, and seqs may skip (deleted or expired items).
        this.#deliver(item, { replayed: true, initial: this.#initial });
        return;
      case 'live':
        if (lastSeq !== undefined && item.seq > lastSeq + 1) {
          // A live frame was lost (the broker may drop one): replay from the cursor; this one comes again in it.
          this.#startResync();
          this.#held.set(item.seq, item);
          return;
        }
        this.#deliver(item, { replayed: false, initial: false });
        return;
      case 'resync':
        // Live frames sent before the server saw `sync` and the replay's frames overlap: order them by seq.
        this.#held.set(item.seq, item);
        return;
      default:
        assertNever(this.#phase);
    }
  }

  #synced(synced: Synced): void {
    if (this.#phase === 'hello' && synced.liveOnly) {
      // The server gave up waiting for our hello (it arrived after 2 s) and went live from its head; the answer
      // to the hello, a replay from our cursor, follows. Hold the live frames until then, as in a resync.
      this.#phase = 'resync';
      this.#held = new Map();
      return;
    }
    if (this.#phase === 'resync') {
      const items = [...this.#held.values()].sort((a, b) => a.seq - b.seq);
      this.#held = new Map();
      for (const item of items) if (this.#lastSeq === undefined || item.seq > this.#lastSeq) this.#deliver(item, { replayed: true, initial: false });
    }
    if (this.#phase === 'idle') return;
    // Every stored seq up to head was just replayed; the ones not received were deleted or expired.
    this.#lastSeq = Math.max(this.#lastSeq ?? 0, synced.head);
    this.#save(this.#lastSeq);
    this.#phase = 'live';
    this.#initial = false;
    this.#attempts = 0;
    this.#handler.synced(synced);
    const rewind = this.#rewind;
    this.#rewind = undefined;
    if (rewind !== undefined && rewind < (this.#floor ?? Infinity)) this.#rewindTo(rewind);
  }

  #welcome(welcome: Welcome): void {
    this.#heartbeatMs = welcome.heartbeat;
    this.#armDeadTimer();
    if (this.#lastSeq !== undefined && welcome.head < this.#lastSeq) {
      // The cursor comes from another history (a restored backup, a new server): the server replays
      // everything, flagged as a gap. Start over, and let the id check keep known items from repeating.
      this.#lastSeq = 0;
      this.#helloSince = 0;
      this.#initial = true;
    }
    this.#floor = Math.min(this.#floor ?? Infinity, this.#helloSince ?? welcome.head);
    this.#handler.welcome(welcome);
  }

  #frame(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.#welcome({ user: frame.user, head: frame.head, heartbeat: frame.heartbeat });
        return;
      case 'notification':
        this.#notification(withoutType(frame));
        return;
      case 'synced':
        this.#synced({ head: frame.head, replayed: frame.replayed, gap: frame.gap, ...(frame.liveOnly ? { liveOnly: frame.liveOnly } : {}) });
        return;
      case 'read': {
        const change: ReadChange = { unread: frame.unread };
        if (frame.seqs !== undefined) change.seqs = frame.seqs;
        if (frame.upTo !== undefined) change.upTo = frame.upTo;
        this.#handler.read(change);
        return;
      }
      case 'deleted':
        this.#handler.deleted(frame.seqs);
        return;
      case 'heartbeat':
        // The server has a seq this device never received: its live frame was lost.
        if (this.#phase === 'live' && frame.head > (this.#lastSeq ?? 0)) this.#startResync();
        return;
      case 'pong':
        return;
      case 'error':
        this.#handler.error({ code: frame.code, message: frame.message });
        return;
      default:
        assertNever(frame);
    }
  }
}

function withoutType({ type: _type, ...item }: ServerFrameOf<'notification'>): Notification {
  return item;
}
