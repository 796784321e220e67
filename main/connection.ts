/**
 * The desktop app's live link to its server: `/v1/stream` through reconnecting-websocket over the Node `ws`
 * client. It resumes by cursor, hands every seq to the app exactly once (across reconnects and restarts),
 * recovers missed live frames with `sync`, notices dead links by their silence, and stops for good on a
 * 4500+ close. Electron inputs (OS resume, network up/down) come in through methods, so all of it runs
 * under plain Node.
 */
import ReconnectingWebSocket from 'reconnecting-websocket';
import { WebSocket } from 'ws';
import { StreamClient, type ConnectionState, type Delivery, type Notification, type ReadChange, type Synced, type Welcome } from '@herald/protocol';
import { backoffDefaults, backoffDelay, checkBackoff, retryAfterMs, type BackoffOptions } from '@herald/protocol';
import type { Cursor } from './cursor.js';

export type { Delivery, ReadChange, Synced, Welcome } from '@herald/protocol';

/** The two timer functions the connection uses, so tests can count what it leaves behind. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const nodeTimers: Timers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/** Every default of the connection, with its unit and the reason for its value. */
export const connectionDefaults = {
  /** Replay the whole inbox on a device's first connect: the history window fills; `initial` keeps toasts quiet. */
  initialReplay: true,
  /** First backoff window, ms: a restarted server sees its desktops spread over half a second. */
  backoffBaseMs: backoffDefaults.baseMs,
  /** Largest backoff window, ms: never more than 30 s behind a server that came back. */
  backoffCapMs: backoffDefaults.capMs,
  /** Silence beyond the heartbeat interval before a link counts as dead, ms: covers a late heartbeat sweep and a slow network. */
  deadLinkGraceMs: 10_000,
  /** Heartbeat interval assumed before `welcome`, ms: the server's default. */
  heartbeatMs: 25_000,
  /** Handshake time for one attempt, ms: generous for TLS over a slow link, short enough to retry a black hole. */
  connectTimeoutMs: 10_000,
  /** Wait for the server's close frame in `close()`, ms, before cutting the socket. */
  closeTimeoutMs: 1_000,
  /** Largest accepted frame, bytes: a maximal notification is under 64 KiB. */
  maxPayload: 1024 * 1024,
} as const;

export interface ConnectionOptions {
  /** The server's http(s) base URL, e.g. `https://herald.example.com`; the stream is `<server>/v1/stream` over ws(s). Required. */
  server: string;
  /** Device token; sent only in the `Authorization` header, never in the URL, a log or an error. Required. */
  token: string;
  /** The account's resume cursor (`openCursorStore(dir).cursorFor(account)`, or `memoryCursor()`). Required. */
  cursor: Cursor;
  /**
   * What a device without a cursor asks for. Default `true`: `hello {since: 0}`, the whole inbox, delivered
   * with `initial: true` so the history fills without a toast flood. `false`: no `since`, the server starts at the head.
   */
  initialReplay?: boolean;
  /** Backoff window of the first retry, ms. Default 500. */
  backoffBaseMs?: number;
  /** Largest backoff window, ms; also the retry interval while `offline`. Default 30_000. */
  backoffCapMs?: number;
  /** Uniform random source in [0, 1) for the jitter. Default `Math.random`. */
  random?: () => number;
  /** Silence tolerated beyond the server's heartbeat interval before the link counts as dead and is dropped, ms. Default 10_000. */
  deadLinkGraceMs?: number;
  /** Heartbeat interval assumed until the server's `welcome` states its own, ms. Default 25_000 (the server's default). */
  heartbeatMs?: number;
  /** Time an attempt has to complete the TCP, TLS and WebSocket handshakes, ms. Default 10_000. */
  connectTimeoutMs?: number;
  /** Time `close()` waits for the server's close frame before cutting the socket, ms. Default 1_000. */
  closeTimeoutMs?: number;
  /** Largest frame accepted from the server, bytes. Default 1 MiB (a maximal notification is under 64 KiB). */
  maxPayload?: number;
  /** Local address to connect from (one of several interfaces or loopback addresses). Default: the OS picks. */
  localAddress?: string;
  /** Timer functions. Default: Node's. */
  timers?: Timers;
  /** Receives what cannot be thrown to anyone: listener exceptions, cursor write failures, unreadable frames. Default `console.error`. */
  report?: (error: unknown) => void;
}

/**
 * Why a socket closed:
 * `server` (a close frame from the server), `network` (refused, reset, timed out or dropped),
 * `dead-link` (silent past heartbeat + grace), or `resume` / `online` / `offline` (the app said so).
 */
export type DisconnectCause = 'server' | 'network' | 'dead-link' | 'resume' | 'online' | 'offline';

export interface Disconnect {
  /** The close code; 1006 when the socket failed without a close frame. */
  code: number;
  reason: string;
  cause: DisconnectCause;
  /**
   * The HTTP status when the server answered the upgrade with an error instead of a socket: 503 `overloaded`
   * (admission control) or 429 `rate_limited`. The retry then waits at least its `Retry-After`.
   */
  status?: number;
  /** False after a 4500+ close: the state is `signed-out` and nothing is retried. */
  willRetry: boolean;
}

/** Event names and the arguments each listener receives. */
export interface ConnectionEvents {
  state: [state: ConnectionState];
  welcome: [welcome: Welcome];
  /** Each seq at most once, in ascending order; the cursor is saved after the listeners return. */
  notification: [item: Notification, delivery: Delivery];
  synced: [synced: Synced];
  read: [change: ReadChange];
  deleted: [seqs: number[]];
  /** An `error` frame from the server. A close, if one follows, arrives as `disconnect`. */
  error: [error: { code: string; message: string }];
  disconnect: [disconnect: Disconnect];
}

type Listener<E extends keyof ConnectionEvents> = (...args: ConnectionEvents[E]) => void;

export interface Connection {
  readonly state: ConnectionState;
  /** The highest seq handed over or known to be absent; undefined on a device that has never synced. */
  readonly lastSeq: number | undefined;
  /** Adds a listener; returns the function that removes it. */
  on<E extends keyof ConnectionEvents>(event: E, listener: Listener<E>): () => void;
  /** Opens the first connection; emits `state: connecting`. Call once, after adding listeners. */
  start(): void;
  /** The OS woke up: the socket is presumed dead, reconnect now without backoff. */
  resume(): void;
  /** The network came back: reconnect now without backoff. */
  online(): void;
  /** The OS reports no network: drop the socket, show `offline`, retry only every `backoffCapMs` until `online()`. */
  offline(): void;
  /** Stops everything: no events, timers or attempts afterwards. Resolves once the socket is closed. */
  close(): Promise<void>;
}

interface Settings {
  streamUrl: string;
  token: string;
  cursor: Cursor;
  initialReplay: boolean;
  backoff: BackoffOptions;
  random: () => number;
  deadLinkGraceMs: number;
  heartbeatMs: number;
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  maxPayload: number;
  localAddress: string | undefined;
  timers: Timers;
  report: (error: unknown) => void;
}

function checkMs(name: string, value: number, min: number): void {
  if (!(Number.isFinite(value) && value >= min)) throw new RangeError(`${name} must be a finite number of ms ≥ ${min}, not ${value}`);
}

/** Validates the options and fills in defaults; contradictions throw here rather than misbehave later. */
function resolveOptions(options: ConnectionOptions): Settings {
  let url: URL;
  try {
    url = new URL(options.server);
  } catch {
    throw new TypeError(`server must be an http(s) URL, not ${JSON.stringify(options.server)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`server must be an http(s) URL, not ${url.protocol}`);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    // Credentials or a `?token=` in the URL would end up in proxy logs; the token goes in a header.
    throw new TypeError('server must be a plain base URL without credentials, query or fragment');
  }
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/stream`;
  // The message never repeats the token.
  if (!/^[\x21-\x7e]+$/.test(options.token)) throw new TypeError('token must be a non-empty string of printable ASCII without spaces');
  const defaults = connectionDefaults;
  const backoff = { baseMs: options.backoffBaseMs ?? defaults.backoffBaseMs, capMs: options.backoffCapMs ?? defaults.backoffCapMs };
  checkBackoff(backoff);
  const settings: Settings = {
    streamUrl: url.href,
    token: options.token,
    cursor: options.cursor,
    initialReplay: options.initialReplay ?? defaults.initialReplay,
    backoff,
    random: options.random ?? Math.random,
    deadLinkGraceMs: options.deadLinkGraceMs ?? defaults.deadLinkGraceMs,
    heartbeatMs: options.heartbeatMs ?? defaults.heartbeatMs,
    connectTimeoutMs: options.connectTimeoutMs ?? defaults.connectTimeoutMs,
    closeTimeoutMs: options.closeTimeoutMs ?? defaults.closeTimeoutMs,
    maxPayload: options.maxPayload ?? defaults.maxPayload,
    localAddress: options.localAddress,
    timers: options.timers ?? nodeTimers,
    report:
      options.report ??
      ((error: unknown) => {
        console.error('herald connection:', error);
      }),
  };
  checkMs('deadLinkGraceMs', settings.deadLinkGraceMs, 0);
  checkMs('heartbeatMs', settings.heartbeatMs, 1);
  checkMs('connectTimeoutMs', settings.connectTimeoutMs, 1);
  checkMs('closeTimeoutMs', settings.closeTimeoutMs, 0);
  if (!Number.isInteger(settings.maxPayload) || settings.maxPayload < 1024) throw new RangeError(`maxPayload must be an integer ≥ 1024 bytes, not ${settings.maxPayload}`);
  return settings;
}

/** Creates a connection; nothing happens until `start()`. Throws a TypeError or RangeError for bad options. */
export function createConnection(options: ConnectionOptions): Connection {
  const settings = resolveOptions(options);
  const { timers, report, cursor } = settings;

  const listeners: { [E in keyof ConnectionEvents]: Set<Listener<E>> } = {
    state: new Set(),
    welcome: new Set(),
    notification: new Set(),
    synced: new Set(),
    read: new Set(),
    deleted: new Set(),
    error: new Set(),
    disconnect: new Set(),
  };
  function emit<E extends keyof ConnectionEvents>(event: E, ...args: ConnectionEvents[E]): void {
    if (stopped) return;
    for (const listener of [...listeners[event]]) {
      try {
        listener(...args);
      } catch (error) {
        report(error);
      }
    }
  }

  let state: ConnectionState = 'connecting';
  let started = false;
  let stopped = false;
  let signedOut = false;
  let offline = false;
  let rws: ReconnectingWebSocket | undefined;
  /** The socket reconnecting-websocket created last: the only one whose events it passes on. */
  let socket: HeraldSocket | undefined;
  let deadLinkTimer: unknown;

  let firstAttempt = true;
  /** The next attempt skips its backoff (resume, online). */
  let skipWait = false;
  let backoffWait: { timer: unknown; resolve: () => void } | undefined;
  /** The `Retry-After` of the last refused upgrade, ms: the least the next backoff waits. */
  let serverWait: number | undefined;

  const client = new StreamClient(
    { cursor: cursor.get(), initialReplay: settings.initialReplay, heartbeatMs: settings.heartbeatMs, deadLinkGraceMs: settings.deadLinkGraceMs },
    {
      send(frame) {
        if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
      },
      armDeadTimer,
      notification: (item, delivery) => emit('notification', item, delivery),
      cursor(seq) {
        try {
          cursor.set(seq);
        } catch (error) {
          report(error);
        }
      },
      welcome: (welcome) => emit('welcome', welcome),
      synced(synced) {
        skipWait = false;
        offline = false;
        emit('synced', synced);
        setState('connected');
      },
      read: (change) => emit('read', change),
      deleted: (seqs) => emit('deleted', seqs),
      error: (error) => emit('error', error),
      unreadable: report,
    },
  );

  /** `ws` with the device token in a header. reconnecting-websocket constructs it as `new WebSocket(url)`. */
  class HeraldSocket extends WebSocket {
    /** Set before this side cuts the socket, so its close is reported with the reason. */
    cause: DisconnectCause | undefined;
    failed = false;
    /** The HTTP status of a refused upgrade. */
    status: number | undefined;

    constructor(address: string) {
      super(address, {
        headers: { authorization: `Bearer ${settings.token}` },
        maxPayload: settings.maxPayload,
        followRedirects: false,
        ...(settings.localAddress === undefined ? {} : { localAddress: settings.localAddress }),
      });
      // reconnecting-websocket detaches its listeners before closing a socket, and `ws` throws an 'error' that
      // nobody listens to (for example when a connect attempt is aborted); this listener is always there.
      this.on('error', () => {
        this.failed = true;
      });
      // An answer other than 101 (503 `overloaded` from admission control, 429): keep its Retry-After, then fail
      // the attempt as `ws` would without this listener (an error, then close 1006).
      this.on('unexpected-response', (_request, response) => {
        this.status = response.statusCode;
        if (this === socket) serverWait = retryAfterMs(response.headers['retry-after']);
        this.terminate();
      });
      adopt(this);
    }
  }

  function adopt(created: HeraldSocket): void {
    socket = created;
  }

  function setState(next: ConnectionState): void {
    if (next === state) return;
    state = next;
    emit('state', next);
  }

  function clearDeadLink(): void {
    if (deadLinkTimer !== undefined) timers.clearTimeout(deadLinkTimer);
    deadLinkTimer = undefined;
  }

  /** Silence for heartbeat + grace means the link is dead even if TCP has not noticed. */
  function armDeadTimer(ms: number): void {
    clearDeadLink();
    const watched = socket;
    deadLinkTimer = timers.setTimeout(() => {
      deadLinkTimer = undefined;
      if (watched !== socket || watched?.readyState !== WebSocket.OPEN) return;
      watched.cause = 'dead-link';
      watched.terminate();
    }, ms);
  }

  function endBackoffWait(): void {
    const waiting = backoffWait;
    if (!waiting) return;
    backoffWait = undefined;
    timers.clearTimeout(waiting.timer);
    waiting.resolve();
  }

  /**
   * reconnecting-websocket's async URL provider: it awaits this before each attempt, so the jittered backoff
   * lives here and its own delays are zero. It never rejects (the library would leave that unhandled).
   */
  async function nextUrl(): Promise<string> {
    try {
      const immediate = firstAttempt || skipWait || stopped || signedOut;
      const floor = serverWait;
      firstAttempt = false;
      skipWait = false;
      serverWait = undefined;
      if (immediate) return settings.streamUrl;
      let ms = settings.backoff.capMs;
      if (floor !== undefined) {
        // The server said when to come back (503 with Retry-After): that long, stretched by up to as much again so
        // that the refused do not return in one wave. It is an answer, not a failure, so the backoff does not grow.
        if (!offline) ms = Math.min(floor, settings.backoff.capMs) * (1 + settings.random());
      } else {
        const attempt = client.nextAttempt();
        if (!offline) {
          try {
            ms = backoffDelay(attempt, settings.backoff, settings.random);
          } catch (error) {
            report(error);
          }
        }
      }
      await new Promise<void>((resolve) => {
        backoffWait = { timer: timers.setTimeout(endBackoffWait, ms), resolve };
      });
    } catch (error) {
      report(error);
    }
    return settings.streamUrl;
  }

  function onClose(code: number, reason: string): void {
    clearDeadLink();
    if (stopped) return;
    const closed = socket;
    // reconnecting-websocket reports a failed or timed-out attempt as a close with 1000; it is an abnormal one.
    const failed = closed?.failed === true || reason === 'timeout';
    const effective = failed && code === 1000 ? 1006 : code;
    const cause: DisconnectCause = closed?.cause ?? (failed || effective === 1006 ? 'network' : 'server');
    const willRetry = client.closed(effective);
    if (willRetry) {
      setState(offline ? 'offline' : 'reconnecting');
    } else {
      signedOut = true;
      endBackoffWait();
      rws?.close();
      setState('signed-out');
    }
    emit('disconnect', { code: effective, reason, cause, ...(closed?.status === undefined ? {} : { status: closed.status }), willRetry });
  }

  /** Cuts the current socket (or the backoff wait) so that the next attempt starts at once. */
  function reconnectNow(cause: DisconnectCause): void {
    if (!started || stopped || signedOut) return;
    client.resetAttempts();
    if (backoffWait) {
      endBackoffWait();
      return;
    }
    skipWait = true;
    const current = socket;
    if (current && (current.readyState === WebSocket.OPEN || current.readyState === WebSocket.CONNECTING)) {
      current.cause = cause;
      current.terminate();
    }
    // Otherwise a close was just handled and the URL provider is about to run: it sees skipWait.
  }

  return {
    get state() {
      return state;
    },
    get lastSeq() {
      return client.lastSeq;
    },
    on(event, listener) {
      listeners[event].add(listener);
      return () => {
        listeners[event].delete(listener);
      };
    },
    start() {
      if (started || stopped) throw new Error('a connection starts once; create a new one to connect again');
      started = true;
      emit('state', state);
      const created = new ReconnectingWebSocket(nextUrl, undefined, {
        WebSocket: HeraldSocket,
        // The URL provider owns the delays (full jitter); the library's own growth would add to them.
        minReconnectionDelay: 0,
        maxReconnectionDelay: 0,
        reconnectionDelayGrowFactor: 1,
        connectionTimeout: settings.connectTimeoutMs,
        maxRetries: Infinity,
        // Frames are sent on the open socket or not at all: a queued `sync` must never precede the next `hello`.
        maxEnqueuedMessages: 0,
      });
      rws = created;
      created.addEventListener('open', () => {
        if (!stopped) client.opened();
      });
      created.addEventListener('message', (event: { data: unknown }) => {
        if (!stopped) client.message(event.data);
      });
      created.addEventListener('close', (event) => {
        onClose(event.code, event.reason);
      });
    },
    resume() {
      reconnectNow('resume');
    },
    online() {
      if (!started || stopped || signedOut) return;
      offline = false;
      if (state === 'offline') setState('reconnecting');
      reconnectNow('online');
    },
    offline() {
      if (!started || stopped || signedOut) return;
      offline = true;
      setState('offline');
      const current = socket;
      if (current && (current.readyState === WebSocket.OPEN || current.readyState === WebSocket.CONNECTING)) {
        current.cause = 'offline';
        current.terminate();
      }
    },
    async close() {
      if (stopped) return;
      stopped = true;
      client.closed(1000);
      clearDeadLink();
      endBackoffWait();
      const current = socket;
      rws?.close(1000, 'closing');
      if (!current || current.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        const cut = timers.setTimeout(() => {
          current.terminate();
        }, settings.closeTimeoutMs);
        current.once('close', () => {
          timers.clearTimeout(cut);
          resolve();
        });
      });
    },
  };
}
