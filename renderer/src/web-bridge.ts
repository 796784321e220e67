import { z } from 'zod';
import {
  StreamClient,
  backoffDelay,
  notification,
  parseUnknown,
  type BridgeState,
  type ClientFrame,
  type ConnectionState,
  type HeraldBridge,
  type InboxPage,
  type InboxQuery,
  type Notification,
  type ReadTarget,
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
 * close codes 4500+, reset its backoff on `synced` (not on a bare TCP open), and drop a socket whose
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

  /** The protocol state of this session's stream: cursor, dedupe, resync, backoff attempts. */
  #stream: StreamClient | undefined;
  #ws: WebSocket | undefined;
  #streaming = false;
  #everWelcomed = false;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #deadTimer: ReturnType<typeof setTimeout> | undefined;
  /** Highest seq the server has mentioned (pages, frames): what "mark all read" covers. */
  #head = 0;

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
    this.#stream?.listed(page.head);
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
    this.#stream = this.#streamClient(session.token);
    this.#head = 0;
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
    this.#stream = undefined;
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
    this.#stream?.resetAttempts();
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
    const stream = this.#stream;
    if (!this.#streaming || !stream) return;
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
      stream.opened();
    };
    ws.onmessage = (event: MessageEvent) => {
      if (ws === this.#ws) stream.message(event.data);
    };
    ws.onclose = (event: CloseEvent) => {
      if (ws !== this.#ws) return;
      this.#ws = undefined;
      this.#dropped(event.code);
    };
  }

  #reconnectNow(): void {
    if (!this.#streaming || this.#ws !== undefined) return;
    this.#stream?.resetAttempts();
    this.#connect();
  }

  #dropped(code: number): void {
    clearTimeout(this.#deadTimer);
    const stream = this.#stream;
    if (!this.#streaming || !stream) return;
    if (!stream.closed(code)) {
      this.#end();
      return;
    }
    this.#setConnection(navigator.onLine ? 'reconnecting' : 'offline');
    const delay = backoffDelay(stream.nextAttempt(), { baseMs: defaults.backoffBaseMs, capMs: defaults.backoffCapMs }, this.#random);
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

  /** The stream's protocol logic for one session; what it hands over goes to the cache, the counts and the page. */
  #streamClient(token: string): StreamClient {
    // Browsers cannot set an Authorization header on a WebSocket: the token goes in the first frame.
    return new StreamClient(
      { cursor: undefined, initialReplay: false, token, heartbeatMs: defaults.heartbeatMs, deadLinkGraceMs: defaults.deadLinkGraceMs },
      {
        send: (frame) => this.#send(frame),
        armDeadTimer: (ms) => this.#armDeadTimer(ms),
        notification: (item) => {
          this.#head = Math.max(this.#head, item.seq);
          this.#cache?.merge([item]);
          // A keyed item replaces an earlier one, which may have been unread: ask rather than guess.
          if (item.key !== undefined) void this.#refreshUnread();
          else if (!item.read) this.#setUnread(this.#state.unread + 1);
          this.#notifications.emit(item);
        },
        welcome: ({ head }) => {
          this.#everWelcomed = true;
          this.#head = Math.max(this.#head, head);
          this.#setConnection('connected');
        },
        synced: ({ head, gap }) => {
          this.#head = Math.max(this.#head, head);
          if (gap) console.info('some notifications expired before this device could replay them');
          void this.#refreshUnread();
        },
        read: ({ seqs, upTo, unread }) => {
          const target = seqs === undefined ? { upTo: upTo ?? 0 } : { seqs };
          this.#cache?.markRead(target);
          this.#setUnread(unread);
          this.#reads.emit({ ...target, unread });
        },
        deleted: (seqs) => {
          this.#cache?.remove(seqs);
          this.#deletions.emit(seqs);
          void this.#refreshUnread();
        },
        error: ({ code, message }) => {
          console.warn(`server: ${code}: ${message}`);
        },
        unreadable: (error) => {
          console.warn('ignoring a frame the protocol does not describe:', error);
        },
      },
    );
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

function detach(ws: WebSocket): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
}
