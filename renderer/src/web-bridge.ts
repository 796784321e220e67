import { z } from 'zod';
import {
  assertNever,
  backoffDelay,
  notification,
  parseJson,
  parseUnknown,
  serverFrame,
  shouldReconnect,
  type BridgeState,
  type ClientFrame,
  type ConnectionState,
  type HeraldBridge,
  type InboxPage,
  type InboxQuery,
  type Notification,
  type ReadTarget,
  type ServerFrameOf,
  type SettingsView,
  type SignInRequest,
  type SignInResult,
  type Unsubscribe,
} from '@herald/protocol';
import { defaults } from './defaults.js';
import { OfflineCache } from './offline-cache.js';
import { clearSession, loadSession, saveSession, session as sessionSchema, type Session } from './session.js';

/** A page of the inbox; `cached` when it came from this browser's offline cache because the server was unreachable. */
export type ListedPage = InboxPage & { cached?: boolean };

/** The server could not be reached (no network, server down, or a proxy's 502–504). */
export class OfflineError extends Error {
  override name = 'OfflineError';
}

/** The server refused the token: only signing in again helps. */
export class SignedOutError extends Error {
  override name = 'SignedOutError';
}

/** An error response of the HTTP API, with its stable code. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from Retry-After. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

const errorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const inboxPage = z.object({ items: z.array(notification), head: z.int().min(0), unread: z.int().min(0) });
const unreadReply = z.object({ unread: z.int().min(0) });
const meReply = z.object({ user: sessionSchema.shape.user });

type Listener<T> = (value: T) => void;

class Listeners<T> {
  readonly #set = new Set<Listener<T>>();

  add(listener: Listener<T>): Unsubscribe {
    this.#set.add(listener);
    return () => void this.#set.delete(listener);
  }

  emit(value: T): void {
    for (const listener of [...this.#set]) {
      try {
        listener(value);
      } catch (error) {
        reportError(error);
      }
    }
  }
}

/** Calls the HTTP API; `base` is the URL the `v1/...` paths resolve against. */
async function call(base: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch (error) {
    throw new OfflineError('the server is unreachable', { cause: error });
  }
  if (response.status >= 502 && response.status <= 504) throw new OfflineError(`the server is unreachable (${response.status})`);
  const text = await response.text();
  let data: unknown;
  try {
    data = text === '' ? undefined : JSON.parse(text);
  } catch {
    data = undefined;
  }
  if (response.ok) return data;
  const failure = errorBody.safeParse(data);
  const retryAfter = Number(response.headers.get('retry-after') ?? NaN);
  const code = failure.success ? failure.data.error.code : 'internal';
  const message = failure.success ? failure.data.error.message : `HTTP ${response.status}`;
  throw new ApiError(response.status, code, message, Number.isFinite(retryAfter) ? retryAfter : undefined);
}

export interface WebBridgeOptions {
  /** URL the API paths resolve against. Default: the page's own, so the inbox also works under a path prefix. */
  base?: string;
  /** Injected for tests of the backoff. */
  random?: () => number;
}

/**
 * The history window's bridge in a browser: `POST /v1/login` to sign in, HTTP for pages and read state, and
 * one WebSocket to `/v1/stream` for live items, resumed by seq after every reconnect.
 *
 * The reconnect loop is written out here rather than taken from reconnecting-websocket: it has to stop on
 * close codes 4500+, reset its backoff on `welcome` (not on a bare TCP open), and drop a socket whose
 * heartbeats stopped, none of which that library expresses.
 */
export class WebBridge implements HeraldBridge {
  readonly kind = 'web';
  readonly #base: string;
  readonly #random: () => number;

  readonly #notifications = new Listeners<Notification>();
  readonly #reads = new Listeners<{ seqs?: number[]; upTo?: number; unread: number }>();
  readonly #deletions = new Listeners<number[]>();
  readonly #states = new Listeners<BridgeState>();
  #state: BridgeState;

  #session: Session | undefined;
  #cache: OfflineCache | undefined;
  /** The page has subscribed (`ready()`): the stream may open once signed in. */
  #pageReady = false;

  #ws: WebSocket | undefined;
  #streaming = false;
  #everWelcomed = false;
  /** Failed attempts since the last `welcome`; drives the backoff. */
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #deadTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeatMs = 25_000;

  /** The resume cursor: every seq up to it was delivered or listed. Undefined until first known. */
  #cursor: number | undefined;
  /** The seq after which this stream has delivered everything; a page listed from below it needs a replay. */
  #floor: number | undefined;
  /** `since` of the hello in flight, until its welcome. */
  #helloSince: number | undefined;
  /** Highest seq the server has mentioned (pages, frames, heartbeats): what "mark all read" covers. */
  #head = 0;
  /** A replay (hello with since, or sync) is in flight; seq jumps inside it are deletions, not losses. */
  #replaying = false;
  /** Seqs already delivered to listeners: a replay after a jump or a reconnect resends some. */
  readonly #seen = new Set<number>();

  constructor(options: WebBridgeOptions = {}) {
    this.#base = options.base ?? location.href;
    this.#random = options.random ?? Math.random;
    const stored = loadSession();
    this.#state = { connection: stored ? 'connecting' : 'signed-out', unread: 0 };
    if (stored) this.#begin(stored);

    window.addEventListener('online', () => this.#reconnectNow());
    window.addEventListener('offline', () => {
      if (this.#streaming && this.#ws?.readyState !== WebSocket.OPEN) this.#setConnection('offline');
    });
    // A tab back from the background (or a laptop from sleep) retries at once instead of waiting out its backoff.
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && this.#retryTimer !== undefined) this.#reconnectNow();
    });
  }

  // Accounts.

  /** Signs in to the server that served this page: with a user name and password, or a pasted device token. */
  async signIn(request: SignInRequest): Promise<SignInResult> {
    const server = new URL('.', this.#base).href;
    try {
      let session: Session;
      if ('password' in request) {
        session = parseUnknown(sessionSchema, await call(this.#base, 'POST', 'v1/login', undefined, { name: request.name, password: request.password, label: 'web inbox' }));
      } else {
        const { user } = parseUnknown(meReply, await call(this.#base, 'GET', 'v1/me', request.token));
        session = { token: request.token, user };
      }
      this.#end();
      saveSession(session);
      OfflineCache.forgetOthers(session.user.name);
      this.#begin(session);
      return { ok: true, user: session.user.name, server };
    } catch (error) {
      if (error instanceof OfflineError) return { ok: false, code: 'unreachable', message: 'The server cannot be reached.' };
      if (error instanceof ApiError) {
        const wait = error.retryAfter === undefined ? '' : ` Try again in ${error.retryAfter} s.`;
        return { ok: false, code: error.code, message: `${error.message}.${wait}` };
      }
      return { ok: false, code: 'internal', message: error instanceof Error ? error.message : String(error) };
    }
  }

  /**
   * Forgets this tab's token and the items saved for the offline view. The token stays valid on the server
   * (a device cannot revoke its own token); it is simply no longer kept anywhere.
   */
  signOut(): Promise<void> {
    const cache = this.#cache;
    this.#end();
    cache?.clear();
    return Promise.resolve();
  }

  // HeraldBridge.

  async listInbox(query: InboxQuery): Promise<ListedPage> {
    const params = new URLSearchParams();
    if (query.before !== undefined) params.set('before', String(query.before));
    params.set('limit', String(query.limit ?? defaults.pageSize));
    if (query.unread === true) params.set('unread', '1');
    if (query.topic !== undefined) params.set('topic', query.topic);
    if (query.minPriority !== undefined) params.set('minPriority', String(query.minPriority));
    if (query.q !== undefined) params.set('q', query.q);
    const cache = this.#cache;
    let page: InboxPage;
    try {
      page = parseUnknown(inboxPage, await this.#request('GET', `v1/inbox?${params.toString()}`));
    } catch (error) {
      if (error instanceof OfflineError && cache) return { ...cache.page(query, this.#state.unread), cached: true };
      throw error;
    }
    this.#head = Math.max(this.#head, page.head);
    // Before the stream first connects, the listed head is where it resumes: nothing after it is missed.
    this.#cursor ??= page.head;
    if (this.#floor !== undefined && page.head < this.#floor) {
      // Listed before the stream started: what arrived in between reached neither. Replay it (deduped).
      this.#floor = page.head;
      this.#sync(page.head);
    }
    cache?.merge(page.items);
    this.#setUnread(page.unread);
    return page;
  }

  async markRead(target: ReadTarget): Promise<{ unread: number }> {
    const { unread } = parseUnknown(unreadReply, await this.#request('POST', 'v1/inbox/read', target));
    this.#cache?.markRead(target);
    this.#setUnread(unread);
    return { unread };
  }

  markAllRead(): Promise<{ unread: number }> {
    return this.markRead({ upTo: this.#head });
  }

  onNotification(callback: (item: Notification) => void): Unsubscribe {
    return this.#notifications.add(callback);
  }

  onRead(callback: (change: { seqs?: number[]; upTo?: number; unread: number }) => void): Unsubscribe {
    return this.#reads.add(callback);
  }

  onDeleted(callback: (seqs: number[]) => void): Unsubscribe {
    return this.#deletions.add(callback);
  }

  /** Calls back at once with the current state, then on every change. */
  onState(callback: (state: BridgeState) => void): Unsubscribe {
    const unsubscribe = this.#states.add(callback);
    callback({ ...this.#state });
    return unsubscribe;
  }

  /** Only the desktop app focuses items from outside (a clicked toast). */
  onFocusItem(_callback: (seq: number) => void): Unsubscribe {
    return () => undefined;
  }

  /** The web inbox has no settings. */
  onOpenSettings(_callback: () => void): Unsubscribe {
    return () => undefined;
  }

  /** The page has subscribed: the stream opens (now, or once signed in). */
  ready(): Promise<void> {
    this.#pageReady = true;
    this.#startStream();
    return Promise.resolve();
  }

  /** In the browser the item's link is an ordinary link; there is nothing else to open. */
  openItem(_seq: number): Promise<void> {
    return Promise.resolve();
  }

  getSettings(): Promise<SettingsView | null> {
    return Promise.resolve(null);
  }

  setSettings(): Promise<SettingsView | null> {
    return Promise.resolve(null);
  }

  // Sessions.

  #begin(session: Session): void {
    this.#session = session;
    this.#cache = new OfflineCache(session.user.name);
    this.#cursor = undefined;
    this.#floor = undefined;
    this.#head = 0;
    this.#seen.clear();
    this.#everWelcomed = false;
    this.#state = { connection: 'connecting', user: session.user.name, unread: 0 };
    this.#states.emit({ ...this.#state });
    this.#startStream();
  }

  /** Ends the session here: no token kept, no stream, state signed-out. */
  #end(): void {
    this.#stopStream();
    this.#cache?.flush();
    this.#cache = undefined;
    this.#session = undefined;
    clearSession();
    this.#state = { connection: 'signed-out', unread: 0 };
    this.#states.emit({ ...this.#state });
  }

  async #request(method: string, path: string, body?: unknown): Promise<unknown> {
    const session = this.#session;
    if (!session) throw new SignedOutError('not signed in');
    try {
      return await call(this.#base, method, path, session.token, body);
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (this.#session === session) this.#end();
        throw new SignedOutError('the server no longer accepts this sign-in');
      }
      throw error;
    }
  }

  /** The unread count across the whole inbox, after changes a frame cannot describe (deletions, replays). */
  async #refreshUnread(): Promise<void> {
    try {
      const page = parseUnknown(inboxPage, await this.#request('GET', 'v1/inbox?limit=1'));
      this.#head = Math.max(this.#head, page.head);
      this.#setUnread(page.unread);
    } catch {
      // The next page, frame or reconnect corrects it.
    }
  }

  // The stream.

  #startStream(): void {
    if (this.#streaming || !this.#pageReady || !this.#session) return;
    this.#streaming = true;
    this.#attempt = 0;
    this.#connect();
  }

  #stopStream(): void {
    this.#streaming = false;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#deadTimer);
    this.#retryTimer = undefined;
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) {
      detach(ws);
      ws.close(1000, 'signed out');
    }
  }

  #connect(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const session = this.#session;
    if (!this.#streaming || !session) return;
    if (!navigator.onLine) {
      // The `online` event reconnects.
      this.#setConnection('offline');
      return;
    }
    this.#setConnection(this.#everWelcomed ? 'reconnecting' : 'connecting');
    const url = new URL('v1/stream', this.#base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(url);
    this.#ws = ws;
    this.#armDeadTimer(defaults.welcomeTimeoutMs);
    ws.onopen = () => {
      // Browsers cannot set an Authorization header on a WebSocket: the token goes in the first frame.
      this.#helloSince = this.#cursor;
      this.#replaying = this.#cursor !== undefined;
      this.#send({ type: 'hello', v: 1, token: session.token, ...(this.#cursor === undefined ? {} : { since: this.#cursor }) });
    };
    ws.onmessage = (event: MessageEvent) => {
      if (ws !== this.#ws || typeof event.data !== 'string') return;
      this.#armDeadTimer(this.#heartbeatMs + defaults.deadLinkGraceMs);
      this.#onFrame(event.data);
    };
    ws.onclose = (event: CloseEvent) => {
      if (ws !== this.#ws) return;
      this.#ws = undefined;
      this.#dropped(event.code);
    };
  }

  #reconnectNow(): void {
    if (!this.#streaming || this.#ws !== undefined) return;
    this.#attempt = 0;
    this.#connect();
  }

  #dropped(code: number): void {
    clearTimeout(this.#deadTimer);
    if (!this.#streaming) return;
    if (!shouldReconnect(code)) {
      this.#end();
      return;
    }
    this.#setConnection(navigator.onLine ? 'reconnecting' : 'offline');
    const delay = backoffDelay(this.#attempt++, { baseMs: defaults.backoffBaseMs, capMs: defaults.backoffCapMs }, this.#random);
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /** No frame for this long means the link is dead even if the socket has not noticed (sleep, a lost NAT entry). */
  #armDeadTimer(ms: number): void {
    clearTimeout(this.#deadTimer);
    this.#deadTimer = setTimeout(() => {
      const ws = this.#ws;
      if (!ws) return;
      this.#ws = undefined;
      // A dead link's close handshake can take minutes: drop it without waiting.
      detach(ws);
      ws.close(4000, 'no heartbeat');
      this.#dropped(1006);
    }, ms);
  }

  #send(frame: ClientFrame): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(frame));
  }

  #onFrame(text: string): void {
    let frame;
    try {
      frame = parseJson(serverFrame, text);
    } catch (error) {
      console.warn('ignoring a frame the protocol does not describe:', error);
      return;
    }
    switch (frame.type) {
      case 'welcome':
        this.#welcomed(frame);
        return;
      case 'notification':
        this.#arrived(frame);
        return;
      case 'synced':
        this.#replaying = false;
        this.#cursor = Math.max(this.#cursor ?? 0, frame.head);
        this.#head = Math.max(this.#head, frame.head);
        if (frame.gap) console.info('some notifications expired before this device could replay them');
        void this.#refreshUnread();
        return;
      case 'read': {
        const target = frame.seqs === undefined ? { upTo: frame.upTo ?? 0 } : { seqs: frame.seqs };
        this.#cache?.markRead(target);
        this.#setUnread(frame.unread);
        this.#reads.emit({ ...target, unread: frame.unread });
        return;
      }
      case 'deleted':
        this.#cache?.remove(frame.seqs);
        this.#deletions.emit(frame.seqs);
        void this.#refreshUnread();
        return;
      case 'heartbeat':
        this.#head = Math.max(this.#head, frame.head);
        // The broker may drop a live frame; an idle heartbeat is how a quiet client learns it is behind.
        if (!this.#replaying && this.#cursor !== undefined && frame.head > this.#cursor) this.#sync(this.#cursor);
        return;
      case 'pong':
        return;
      case 'error':
        console.warn(`server: ${frame.code}: ${frame.message}`);
        return;
      default:
        assertNever(frame);
    }
  }

  #welcomed(frame: ServerFrameOf<'welcome'>): void {
    this.#attempt = 0;
    this.#everWelcomed = true;
    this.#heartbeatMs = frame.heartbeat;
    this.#armDeadTimer(this.#heartbeatMs + defaults.deadLinkGraceMs);
    if (this.#cursor !== undefined && frame.head < this.#cursor) {
      // Another history (a restored backup, a new data directory): the server replays all of it, and seqs mean new things.
      this.#seen.clear();
      this.#cursor = 0;
    }
    // Without `since` the server starts at its head.
    this.#cursor ??= frame.head;
    this.#floor = Math.min(this.#floor ?? Infinity, this.#helloSince ?? frame.head);
    this.#head = Math.max(this.#head, frame.head);
    this.#setConnection('connected');
  }

  #arrived(frame: ServerFrameOf<'notification'>): void {
    const item = withoutType(frame);
    this.#head = Math.max(this.#head, item.seq);
    if (this.#seen.has(item.seq)) return;
    this.#remember(item.seq);
    if (!this.#replaying) {
      const cursor = this.#cursor ?? 0;
      // seq is contiguous per user: a jump means a live frame was lost. Replay from the cursor; the jumped one is deduped.
      if (item.seq > cursor + 1) this.#sync(cursor);
      else this.#cursor = Math.max(cursor, item.seq);
    }
    this.#cache?.merge([item]);
    // A keyed item replaces an earlier one, which may have been unread: ask rather than guess.
    if (item.key !== undefined) void this.#refreshUnread();
    else if (!item.read) this.#setUnread(this.#state.unread + 1);
    this.#notifications.emit(item);
  }

  #sync(since: number): void {
    if (this.#ws?.readyState !== WebSocket.OPEN) return;
    this.#replaying = true;
    this.#send({ type: 'sync', since });
  }

  #remember(seq: number): void {
    this.#seen.add(seq);
    if (this.#seen.size > defaults.seenSeqsMax) {
      const oldest = this.#seen.values().next();
      if (oldest.done !== true) this.#seen.delete(oldest.value);
    }
  }

  // State.

  #setConnection(connection: ConnectionState): void {
    if (this.#state.connection === connection) return;
    this.#state = { ...this.#state, connection };
    this.#states.emit({ ...this.#state });
  }

  #setUnread(unread: number): void {
    if (this.#state.unread === unread) return;
    this.#state = { ...this.#state, unread };
    this.#states.emit({ ...this.#state });
  }
}

function withoutType({ type: _type, ...item }: ServerFrameOf<'notification'>): Notification {
  return item;
}

function detach(ws: WebSocket): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
}
