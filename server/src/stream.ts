import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { once } from 'node:events';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { Logger } from 'pino';
import { CloseCode, ParseError, clientFrame, parseJson, type ClientFrame, type ErrorCode, type ServerFrame } from '@herald/protocol';
import type { Admission } from './admission.js';
import type { AuthService, Principal } from './auth.js';
import { bearerToken } from './auth.js';
import type { Broker, UserMessage } from './broker/broker.js';
import type { Config } from './config.js';
import { defaults } from './defaults.js';
import { HeraldError } from './errors.js';
import { notificationFrame, sharedFields, userFrame } from './fanout.js';
import { clientIp } from './http.js';
import type { Hub, Peer } from './hub.js';
import { redactUrl } from './logger.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './rate-limit.js';
import type { Store } from './store/store.js';

export interface StreamDeps {
  config: Config;
  store: Store;
  broker: Broker;
  auth: AuthService;
  hub: Hub;
  metrics: Metrics;
  logger: Logger;
  limits: { connect: RateLimiter; authFailure: RateLimiter } | undefined;
  /** Server-wide admission control of upgrades; undefined when off. */
  admission: Admission | undefined;
  now: () => number;
}

type DevicePrincipal = Extract<Principal, { kind: 'device' }>;

/** Closes that are part of normal life and are not logged as errors. */
const quietCloses = new Set<number>([CloseCode.normal, CloseCode.goingAway, 1005, 1006]);

/**
 * A store that is down for now (503 `store_unavailable`): the session ends with 1013 and the device comes back later.
 * Logged at debug only: a reconnect storm would log every attempt, and the scheduler already warns once per tick.
 */
function isUnavailable(error: unknown): error is HeraldError {
  return error instanceof HeraldError && error.status === 503;
}

/**
 * One WebSocket session: authentication, then welcome → replay → synced → live, with
 * replay and live frames merged by seq so nothing is lost or sent twice.
 */
class Session implements Peer {
  user = 0;
  tokenId = '';
  #principal: DevicePrincipal | undefined;
  #state: 'auth' | 'waiting' | 'replaying' | 'live' | 'closed' = 'auth';
  /** Highest notification seq this device has been sent. */
  #lastSeq = 0;
  /** Head when the broker subscription became active: where a session without `since` starts. */
  #startHead = 0;
  /** Live messages held back while authenticating or replaying; null once live. */
  #held: UserMessage[] | null = [];
  #heldOverflow = false;
  /** Live notifications that came ahead of a missing seq, by seq (see defaults.reorderWindowMs). */
  #ahead: Map<number, Buffer | string> | undefined;
  #aheadTimer: NodeJS.Timeout | undefined;
  #outbox: (Buffer | string)[] = [];
  #outboxBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Authentication in flight. */
  #authenticating: Promise<void> | undefined;
  #replays: Promise<void> = Promise.resolve();
  /** Started live-only: the client's first `hello` may still come, and is then answered with a replay. */
  #awaitingHello = false;
  lastSentAt: number;
  /** Whether the last ws ping was answered; when it was sent (`performance.now()`: pings keep real time). */
  #alive = true;
  pingedAt = performance.now();
  /** A ws ping waits for this turn's write, to leave with the frames queued in the same turn. */
  #pingDue = false;
  /** Ends this handshake's admission (admission.ts): once synced, once waiting for the client to speak, or on close. */
  settle: (() => void) | undefined;

  constructor(
    readonly ws: WebSocket,
    readonly raw: Duplex,
    readonly ip: string,
    readonly deps: StreamDeps,
  ) {
    this.lastSentAt = deps.now();
    ws.on('message', (data, isBinary) => void this.#onMessage(data, isBinary));
    ws.on('pong', () => (this.#alive = true));
    ws.on('close', (code) => this.#onClose(code));
    ws.on('error', (error) => deps.logger.debug({ err: error, ip }, 'socket error'));
  }

  get live(): boolean {
    return this.#state === 'live';
  }

  get expiresAt(): number | null {
    return this.#principal?.expiresAt ?? null;
  }

  /** Authenticates by the header or URL token: live-only unless `hello` comes within 2 s. */
  startWithToken(token: string): void {
    void this.#authenticate(async () => {
      const principal = await this.#verify(token);
      if (!principal || !(await this.#attach(principal))) return;
      this.#state = 'waiting';
      // The costly part is done; what is left waits for the client.
      this.#settled();
      this.#timer = setTimeout(() => void this.#begin(undefined, true), this.deps.config.liveOnlyAfterMs);
    });
  }

  /**
   * Waits for a `hello` carrying the token. A deadline that fires late, after the thread was busy, waits for the
   * sockets to be read first (timers run before I/O in an event-loop turn): a hello that arrived in time counts.
   */
  awaitHello(): void {
    const deadline = setTimeout(() => {
      setImmediate(() => {
        if (this.#timer === deadline && this.#state === 'auth') this.#fail('auth_timeout', 'send hello with a token within 5 s', CloseCode.unauthorized);
      });
    }, this.deps.config.helloTimeoutMs);
    this.#timer = deadline;
  }

  receive(message: UserMessage, frame: Buffer): void {
    if (this.#held !== null) {
      if (this.#held.length >= this.deps.config.replayLiveBufferMax) {
        // The store has all of them; the replay reads them again instead of holding them here.
        this.#heldOverflow = true;
        this.#held = [];
      } else this.#held.push(message);
      return;
    }
    this.#sendLive(message, frame);
  }

  flush(): void {
    if ((this.#outbox.length === 0 && !this.#pingDue) || this.ws.readyState !== WebSocket.OPEN) return;
    this.raw.cork();
    for (const data of this.#outbox) this.ws.send(data, { binary: false });
    if (this.#pingDue) this.ws.ping();
    this.raw.uncork();
    this.#pingDue = false;
    if (this.#outbox.length === 0) return;
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.lastSentAt = this.deps.now();
  }

  /** Pings with this turn's write; a peer that did not answer the previous ping is cut off instead. */
  ping(now: number): void {
    if (!this.#alive) {
      this.ws.terminate();
      return;
    }
    this.#alive = false;
    this.pingedAt = now;
    this.#pingDue = true;
    this.deps.hub.markDirty(this);
  }

  close(code: number, reason: string): void {
    if (this.#state === 'closed') return;
    this.#shutdown();
    this.deps.metrics.closes.inc({ code: String(code) });
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
  }

  /** Sends a heartbeat when nothing went out for the heartbeat interval. */
  heartbeat(now: number, head: number | undefined): void {
    if (this.#state !== 'live' || now - this.lastSentAt < this.deps.config.heartbeatMs) return;
    this.#send({ type: 'heartbeat', head: Math.max(head ?? 0, this.#lastSeq) });
  }

  #authenticate(work: () => Promise<void>): Promise<void> {
    const running: Promise<void> = work()
      .catch((error: unknown) => {
        if (isUnavailable(error)) {
          this.deps.logger.debug({ err: error, ip: this.ip }, 'stream refused: store unavailable');
          this.#fail(error.code, error.message, CloseCode.tryAgainLater);
          return;
        }
        this.deps.logger.error({ err: error }, 'authentication failed');
        this.close(CloseCode.serverRestarting, 'internal error');
      })
      .finally(() => {
        if (this.#authenticating === running) this.#authenticating = undefined;
      });
    this.#authenticating = running;
    return running;
  }

  /** A device principal for the token, or undefined after closing with 4501. */
  async #verify(token: string): Promise<DevicePrincipal | undefined> {
    const principal = await this.deps.auth.authenticate(token);
    if (principal?.kind === 'device') return principal;
    this.deps.limits?.authFailure.take(this.ip);
    this.#fail('unauthorized', 'invalid, expired or revoked device token', CloseCode.unauthorized);
    return undefined;
  }

  async #attach(principal: DevicePrincipal): Promise<boolean> {
    const { hub, config } = this.deps;
    if (hub.connectionsOf(principal.user.id) >= config.maxConnectionsPerUser) {
      this.#fail('too_many_connections', `at most ${config.maxConnectionsPerUser} connections per user`, CloseCode.tooManyConnections);
      return false;
    }
    this.#principal = principal;
    this.user = principal.user.id;
    this.tokenId = principal.tokenId;
    await hub.attach(this);
    if (this.#state !== 'closed') this.#startHead = await this.deps.store.head(this.user);
    if (this.#state !== 'closed') return true;
    hub.detach(this); // closed while subscribing: #shutdown ran before the peer was attached
    return false;
  }

  async #onMessage(data: RawData, isBinary: boolean): Promise<void> {
    if (this.#state === 'closed') return;
    let frame: ClientFrame;
    try {
      if (isBinary) throw new ParseError('frames are JSON text, not binary', []);
      frame = parseJson(clientFrame, rawText(data));
    } catch (error) {
      const message = error instanceof ParseError ? error.message : 'invalid frame';
      if (this.#state === 'auth') this.#fail('invalid_frame', message, CloseCode.badRequest);
      else this.#send({ type: 'error', code: 'invalid_frame', message });
      return;
    }
    try {
      // Frames that arrive while authentication is in flight wait for it, keeping their order.
      while (this.#authenticating) await this.#authenticating;
      if (!this.#isClosed()) await this.#handle(frame);
    } catch (error) {
      // The session stays open: the frame (a `read`, say) can be sent again once the store is back.
      if (isUnavailable(error)) {
        this.deps.logger.debug({ err: error, user: this.user, frame: frame.type }, 'frame not handled: store unavailable');
        this.#send({ type: 'error', code: error.code, message: error.message });
        return;
      }
      this.deps.logger.error({ err: error, user: this.user, frame: frame.type }, 'frame handling failed');
      this.#send({ type: 'error', code: 'internal', message: 'internal error' });
    }
  }

  async #handle(frame: ClientFrame): Promise<void> {
    if (this.#state === 'auth') {
      if (frame.type !== 'hello' || frame.token === undefined) {
        this.#fail('not_authenticated', 'the first frame must be hello with a token', CloseCode.unauthorized);
        return;
      }
      clearTimeout(this.#timer);
      this.#timer = undefined;
      const { token, since } = frame;
      await this.#authenticate(async () => {
        const principal = await this.#verify(token);
        if (principal && (await this.#attach(principal))) await this.#begin(since);
      });
      return;
    }
    if (this.#state === 'waiting') {
      clearTimeout(this.#timer);
      if (frame.type === 'hello') {
        await this.#begin(frame.since);
        return;
      }
      await this.#begin(undefined, true);
    }
    switch (frame.type) {
      case 'hello':
        if (!this.#awaitingHello) {
          this.#send({ type: 'error', code: 'invalid_state', message: 'hello was already received; send sync to replay' });
          return;
        }
        // The session went live-only before this hello arrived: answer it now, as a sync from its cursor.
        this.#awaitingHello = false;
        this.#replays = this.#replays.then(() => this.#replay(frame.since ?? this.#lastSeq)).catch((error: unknown) => this.#replayFailed(error));
        return this.#replays;
      case 'sync':
        this.#replays = this.#replays.then(() => this.#replay(frame.since)).catch((error: unknown) => this.#replayFailed(error));
        return this.#replays;
      case 'ack':
        return;
      case 'read': {
        const target = frame.seqs === undefined ? { upTo: frame.upTo ?? 0 } : { seqs: frame.seqs };
        const { unread, changed } = await this.deps.store.markRead(this.user, target, this.deps.now());
        if (changed) this.deps.broker.publish([userFrame(this.user, { type: 'read', ...target, unread })]);
        else this.#send({ type: 'read', ...target, unread });
        return;
      }
      case 'ping':
        this.#send({ type: 'pong', ...(frame.t === undefined ? {} : { t: frame.t }) });
        return;
    }
  }

  /** Starts the session: the answer to `hello`, or a live-only start when a header-authenticated client sent none. */
  async #begin(since: number | undefined, liveOnly = false): Promise<void> {
    if (this.#state !== 'auth' && this.#state !== 'waiting') return;
    const principal = this.#principal;
    if (!principal) return;
    this.#state = 'replaying';
    this.#awaitingHello = liveOnly;
    this.#send({ type: 'welcome', v: 1, user: principal.user, head: this.#startHead, heartbeat: this.deps.config.heartbeatMs });
    if (since === undefined) {
      this.#lastSeq = this.#startHead;
      this.#send({ type: 'synced', head: this.#startHead, replayed: 0, gap: false, ...(liveOnly ? { liveOnly } : {}) });
      this.#goLive();
      return;
    }
    this.#replays = this.#replay(since).catch((error: unknown) => this.#replayFailed(error));
    await this.#replays;
  }

  /** A replay that cannot finish would leave the device believing it is in sync; it reconnects instead. */
  #replayFailed(error: unknown): void {
    if (isUnavailable(error)) {
      this.deps.logger.debug({ err: error, user: this.user }, 'replay failed: store unavailable');
      this.#fail(error.code, error.message, CloseCode.tryAgainLater);
      return;
    }
    this.deps.logger.error({ err: error, user: this.user }, 'replay failed');
    this.#fail('internal', 'replay failed; reconnect', CloseCode.serverRestarting);
  }

  /** Sends every stored notification after `since`, then `synced`, then what arrived live meanwhile. */
  async #replay(since: number): Promise<void> {
    const { store, config, metrics, now } = this.deps;
    this.#state = 'replaying';
    this.#held ??= [];
    // Whatever waited for a missing seq is committed, so the replay reads it from the store.
    this.#clearAhead();
    let cursor = since;
    let replayed = 0;
    let gap = false;
    let head = 0;
    this.#heldOverflow = false;
    for (;;) {
      const started = performance.now();
      const page = await store.replay(this.user, cursor, config.replayPageSize, now());
      metrics.storeLatency.observe({ op: 'replay' }, (performance.now() - started) / 1000);
      if (this.#isClosed()) return;
      if (cursor > page.head) {
        // A cursor from another history (a restored backup, a new server): resend everything, flagged as a gap.
        cursor = 0;
        gap = true;
        continue;
      }
      gap ||= page.gap;
      head = page.head;
      for (const item of page.items) {
        this.#queue(notificationFrame(item.seq, item.read, item.topic, sharedFields(item.notification)));
        cursor = item.seq;
      }
      replayed += page.items.length;
      // After an overflow the held frames are gone, so read on from the store until it is exhausted.
      if (page.items.length < config.replayPageSize && !this.#consumeOverflow()) break;
      await this.#drain();
      if (this.#isClosed()) return;
    }
    metrics.deliveries.inc(replayed);
    metrics.replaySize.observe(replayed);
    this.#lastSeq = Math.max(this.#lastSeq, cursor);
    this.#send({ type: 'synced', head: Math.max(head, cursor), replayed, gap });
    this.#goLive();
  }

  #goLive(): void {
    this.#state = 'live';
    this.#settled();
    const held = this.#held ?? [];
    this.#held = null;
    for (const message of held) this.#sendLive(message, message.frame);
  }

  #sendLive(message: UserMessage, frame: Buffer | string): void {
    const { seq } = message;
    if (seq === 0) this.#queueLive(frame);
    else if (seq <= this.#lastSeq) return;
    else if (seq > this.#lastSeq + 1) this.#holdAhead(seq, frame);
    else {
      this.#queueNotification(seq, frame);
      if (this.#ahead) this.#releaseAhead(false);
    }
  }

  /** Waits a little for the seqs before this one, which may still be on their way from another node. */
  #holdAhead(seq: number, frame: Buffer | string): void {
    this.#ahead ??= new Map();
    this.#ahead.set(seq, frame);
    if (this.#ahead.size > defaults.reorderHoldMax) this.#releaseAhead(true);
    else this.#aheadTimer ??= setTimeout(() => this.#releaseAhead(true), defaults.reorderWindowMs);
  }

  /** Sends the held notifications that are next in line, or all of them once the wait is over. */
  #releaseAhead(all: boolean): void {
    const ahead = this.#ahead;
    if (!ahead) return;
    for (const seq of [...ahead.keys()].sort((a, b) => a - b)) {
      if (!all && seq > this.#lastSeq + 1) break;
      const frame = ahead.get(seq);
      ahead.delete(seq);
      if (frame !== undefined && seq > this.#lastSeq) this.#queueNotification(seq, frame);
    }
    if (ahead.size === 0) this.#clearAhead();
  }

  #clearAhead(): void {
    this.#ahead = undefined;
    clearTimeout(this.#aheadTimer);
    this.#aheadTimer = undefined;
  }

  #queueNotification(seq: number, frame: Buffer | string): void {
    this.#lastSeq = seq;
    this.deps.metrics.deliveries.inc();
    this.#queueLive(frame);
  }

  #queueLive(frame: Buffer | string): void {
    this.#queue(frame);
    if (this.#outboxBytes + this.raw.writableLength > this.deps.config.maxBufferedBytes) {
      this.deps.logger.info({ user: this.user, ip: this.ip }, 'closing slow consumer');
      this.close(CloseCode.slowConsumer, 'slow consumer');
    }
  }

  #send(frame: ServerFrame): void {
    this.#queue(JSON.stringify(frame));
  }

  #queue(data: Buffer | string): void {
    if (this.#state === 'closed') return;
    this.#outbox.push(data);
    this.#outboxBytes += data.length;
    this.deps.hub.markDirty(this);
  }

  /** Replay pacing: lets the socket drain before reading the next page, so replays never count as slow. */
  async #drain(): Promise<void> {
    this.flush();
    if (this.raw.writableLength > this.deps.config.maxBufferedBytes / 2 && this.#state !== 'closed') {
      await Promise.race([once(this.raw, 'drain'), once(this.ws, 'close')]);
    }
  }

  #consumeOverflow(): boolean {
    const overflowed = this.#heldOverflow;
    this.#heldOverflow = false;
    return overflowed;
  }

  /** A method, not a field read: the state may change across the awaits of a replay. */
  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #fail(code: ErrorCode, message: string, closeCode: number): void {
    this.#send({ type: 'error', code, message });
    this.flush();
    this.close(closeCode, code);
  }

  #settled(): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.();
  }

  #shutdown(): void {
    this.#state = 'closed';
    this.#settled();
    clearTimeout(this.#timer);
    this.#clearAhead();
    this.#outbox = [];
    this.#held = null;
    this.deps.hub.detach(this);
  }

  #onClose(code: number): void {
    if (this.#state !== 'closed') this.#shutdown();
    if (!quietCloses.has(code)) this.deps.logger.debug({ user: this.user, code }, 'connection closed');
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

/** The value of the literal `token` query parameter; encoded look-alikes such as `%74oken` are not accepted. */
function queryToken(url: string): string | undefined {
  const query = url.split('?')[1] ?? '';
  const raw = query.split('&').find((part) => part.startsWith('token='))?.slice('token='.length);
  if (raw === undefined || raw === '') return undefined;
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

function originAllowed(req: IncomingMessage, allowed: string[]): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true; // not a browser: origins protect browser users only
  if (allowed.includes('*') || allowed.includes(origin)) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** Answers a request on a raw socket with a contract error (upgrade refusals, malformed requests). */
export function refuse(socket: Duplex, status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: { code, message } });
  const head = Object.entries({ ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close' })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(`HTTP/1.1 ${status} ${code}\r\n${head}\r\n${body}`);
}

export interface Stream {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes every socket with 4000 in batches; resolves when all are closed. */
  closeAll(): Promise<void>;
  stop(): void;
}

/** The `/v1/stream` endpoint: upgrade checks, sessions, pings and heartbeats. */
export function createStream(deps: StreamDeps): Stream {
  const { config, logger, limits, admission, metrics } = deps;
  metrics.sources.handshakes = admission && (() => admission.pending);
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxPayload,
    clientTracking: false,
    perMessageDeflate: config.perMessageDeflate
      ? { threshold: config.perMessageDeflate.threshold, serverNoContextTakeover: true, clientNoContextTakeover: true }
      : false,
  });
  const sessions = new Set<Session>();

  const sweeper = setInterval(() => void sweep(), Math.min(config.heartbeatMs / 2, config.pingIntervalMs / 2, 5_000)).unref();

  /**
   * Expires tokens, pings, and sends heartbeats to idle sessions. A ping that would fall due before a session's
   * next heartbeat leaves with this one, in the same write: an idle device costs one write per interval, not two.
   */
  async function sweep(): Promise<void> {
    const now = deps.now();
    const pingNow = performance.now();
    const idle: Session[] = [];
    for (const session of sessions) {
      const expiresAt = session.expiresAt;
      if (expiresAt !== null && expiresAt <= now) session.close(CloseCode.unauthorized, 'token expired');
      else if (session.live && now - session.lastSentAt >= config.heartbeatMs) idle.push(session);
      else if (pingNow - session.pingedAt >= config.pingIntervalMs) session.ping(pingNow);
    }
    if (idle.length === 0) return;
    let heads: Map<number, number> | undefined;
    try {
      heads = await deps.store.heads([...new Set(idle.map((s) => s.user))]);
    } catch (error) {
      // The link is fine even when the store is not: heartbeats still go out, carrying each device's own last seq.
      logger.debug({ err: error }, 'heartbeat heads unavailable');
    }
    const pingAt = performance.now();
    for (const session of idle) {
      if (pingAt - session.pingedAt >= config.pingIntervalMs - config.heartbeatMs) session.ping(pingAt);
      session.heartbeat(deps.now(), heads?.get(session.user));
    }
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const ip = clientIp(req, config.trustProxy);
    const reject = (status: number, code: ErrorCode, message: string, headers?: Record<string, string>) => {
      metrics.rejected.inc({ code });
      refuse(socket, status, code, message, headers);
    };
    if (!originAllowed(req, config.allowedOrigins)) {
      reject(403, 'origin_not_allowed', 'this origin may not open the stream');
      return;
    }
    const wait = limits ? limits.connect.take(ip) || limits.authFailure.wait(ip) : 0;
    if (wait > 0) {
      metrics.refused.inc({ reason: 'rate_limited' });
      reject(429, 'rate_limited', 'too many connection attempts', { 'retry-after': String(Math.ceil(wait / 1000)) });
      return;
    }
    // After the per-address limits, so one noisy address spends its own bucket and not everyone's. Before any
    // token is read: the refusal is the same for every client and says nothing about its credentials.
    const ticket = admission?.admit();
    if (ticket !== undefined && 'retryAfter' in ticket) {
      metrics.refused.inc({ reason: 'overloaded' });
      logger.debug({ ip, limit: ticket.limit }, 'stream refused: overloaded');
      reject(503, 'overloaded', 'the server is admitting too many connections at once; retry with backoff', { 'retry-after': String(ticket.retryAfter) });
      return;
    }
    // Released by the session (synced, or waiting for the client), or here when the handshake fails or the socket closes.
    if (ticket) socket.once('close', ticket.release);
    let token = bearerToken(req);
    if (token === undefined && config.allowQueryToken) {
      token = queryToken(req.url ?? '');
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new Session(ws, socket, ip, deps);
      session.settle = ticket?.release;
      sessions.add(session);
      ws.on('close', () => sessions.delete(session));
      logger.debug({ ip, url: redactUrl(req.url ?? '') }, 'stream connected');
      if (token === undefined) session.awaitHello();
      else session.startWithToken(token);
    });
  }

  return {
    handleUpgrade,
    async closeAll() {
      const all = [...sessions];
      const closed = all.map((s) => (s.ws.readyState === WebSocket.CLOSED ? Promise.resolve() : once(s.ws, 'close').then(() => undefined)));
      for (let i = 0; i < all.length; i += config.shutdownCloseBatch) {
        for (const session of all.slice(i, i + config.shutdownCloseBatch)) {
          session.close(CloseCode.serverRestarting, 'server restarting');
          // The close frame went to the kernel whole, so the device gets its 4000 (the code of the first close
          // frame a peer receives, RFC 6455 §7.1.5) whether or not the exchange completes. Cutting the socket now
          // spares a read, a parse and a shutdown per device on its answer: most of a restart's time at 15,000.
          // A device whose own last frame was still unread gets a reset instead (1006) and reconnects all the same.
          if (session.raw.writableLength === 0) session.ws.terminate();
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      const force = setTimeout(() => {
        for (const session of all) session.ws.terminate();
      }, defaults.shutdownCloseGraceMs);
      await Promise.all(closed);
      clearTimeout(force);
    },
    stop() {
      clearInterval(sweeper);
      wss.close();
    },
  };
}
