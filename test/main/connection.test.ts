import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer as createTcpServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ConnectionState, ServerFrame } from '@herald/protocol';
import { createConnection, type Connection, type ConnectionOptions, type Delivery, type Disconnect, type Synced, type Timers, type Welcome } from '../../main/connection.js';
import { memoryCursor, openCursorStore } from '../../main/cursor.js';
import { userMessages, type BrokerFactory, type UserMessage } from '../../server/src/broker/broker.js';
import { createMemoryBroker } from '../../server/src/broker/memory.js';
import { CliProcess, freshApi as api } from '../cli-process.js';
import { TestClient, deviceFor, publish, startServer, tempDir, type TestServer } from '../helpers.js';
import { note, synced, welcome } from '../frames.js';

// Everything a test starts is stopped after it, last started first.
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resolves waiters when the condition they wait for holds; checked whenever something was recorded. */
class Signal {
  readonly #waiters = new Set<() => void>();

  notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  until(predicate: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (!predicate()) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
      check();
    });
  }
}

interface Received extends Delivery {
  seq: number;
  id: string;
  title: string;
}

/** Records every event of a connection; `until` waits for a condition on the record. */
class Recorder {
  readonly items: Received[] = [];
  readonly states: ConnectionState[] = [];
  readonly synced: Synced[] = [];
  readonly disconnects: Disconnect[] = [];
  readonly welcomes: Welcome[] = [];
  readonly errors: { code: string; message: string }[] = [];
  readonly reports: unknown[] = [];
  readonly signal: Signal;

  constructor(connection: Connection, signal = new Signal()) {
    this.signal = signal;
    const record = <T>(list: T[]) => (value: T) => {
      list.push(value);
      signal.notify();
    };
    connection.on('notification', (item, delivery) => {
      this.items.push({ seq: item.seq, id: item.id, title: item.title, ...delivery });
      signal.notify();
    });
    connection.on('state', record(this.states));
    connection.on('synced', record(this.synced));
    connection.on('disconnect', record(this.disconnects));
    connection.on('welcome', record(this.welcomes));
    connection.on('error', record(this.errors));
  }

  get seqs(): number[] {
    return this.items.map((item) => item.seq);
  }

  get state(): ConnectionState | undefined {
    return this.states.at(-1);
  }

  until(predicate: () => boolean): Promise<void> {
    return this.signal.until(predicate);
  }

  /** Waits until `count` notifications were received in all. */
  received(count: number): Promise<void> {
    return this.until(() => this.items.length >= count);
  }
}

/** Node's timers, counting what is pending: proves `close()` leaves nothing behind. */
function countingTimers(signal: Signal) {
  const pending = new Set<unknown>();
  const requested: number[] = [];
  const calls: { ms: number; at: number }[] = [];
  const timers: Timers = {
    setTimeout(callback, ms) {
      requested.push(ms);
      calls.push({ ms, at: performance.now() });
      const handle = setTimeout(() => {
        pending.delete(handle);
        callback();
      }, ms);
      pending.add(handle);
      signal.notify();
      return handle;
    },
    clearTimeout(handle) {
      pending.delete(handle);
      clearTimeout(handle as NodeJS.Timeout);
    },
  };
  return { timers, pending, requested, calls };
}

/**
 * A TCP proxy between the client and a server, with the failures a desktop sees:
 * `cut()` resets every connection, `refuse()` drops new ones at once (the server is unreachable),
 * `blackhole()` silently stops forwarding on the open ones in both directions (a half-open link).
 */
class TcpProxy {
  /** Connections accepted, refused ones included. */
  accepted = 0;
  /** The first bytes each client sent: the HTTP upgrade request. */
  readonly requests: string[] = [];
  #refusing = false;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket; forwarding: boolean }>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createTcpServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const proxy = new TcpProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('connection', (client) => {
      proxy.#accept(client, targetPort);
    });
    return proxy;
  }

  refuse(): void {
    this.#refusing = true;
  }

  forward(): void {
    this.#refusing = false;
  }

  cut(): void {
    for (const pair of this.#pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.#pairs.clear();
  }

  blackhole(): void {
    for (const pair of this.#pairs) pair.forwarding = false;
  }

  async close(): Promise<void> {
    this.cut();
    const closed = once(this.server, 'close');
    this.server.close();
    await closed;
  }

  #accept(client: Socket, targetPort: number): void {
    this.accepted++;
    client.on('error', () => undefined);
    if (this.#refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    upstream.on('error', () => undefined);
    const pair = { client, upstream, forwarding: true };
    this.#pairs.add(pair);
    let first = true;
    client.on('data', (chunk: Buffer) => {
      if (first) this.requests.push(chunk.toString('latin1'));
      first = false;
      if (pair.forwarding) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (pair.forwarding) client.write(chunk);
    });
    // A blackholed link says nothing, not even that the other side went away.
    const end = () => {
      if (!pair.forwarding) return;
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
  }
}

async function proxyTo(url: string): Promise<TcpProxy> {
  const proxy = await TcpProxy.start(Number(new URL(url).port));
  cleanups.push(() => proxy.close());
  return proxy;
}

async function server(overrides: Parameters<typeof startServer>[0] = {}, deps: Parameters<typeof startServer>[1] = {}): Promise<TestServer> {
  const t = await startServer(overrides, deps);
  cleanups.push(() => t.close());
  return t;
}

/** A connection with test-friendly backoff (20–200 ms windows) that is closed after the test. */
function connection(options: ConnectionOptions, signal?: Signal): { connection: Connection; log: Recorder } {
  const reports: unknown[] = [];
  const created = createConnection({
    backoffBaseMs: 20,
    backoffCapMs: 200,
    report: (error) => {
      reports.push(error);
    },
    ...options,
  });
  const log = new Recorder(created, signal);
  cleanups.push(async () => {
    await created.close();
    // Nothing unexpected went wrong inside: no listener threw, no frame was unreadable, no cursor write failed.
    expect(reports).toEqual([]);
  });
  return { connection: created, log };
}

async function send(t: TestServer, title: string, user = 'alice'): Promise<string> {
  const response = await publish(t, { to: { users: [user] }, title });
  expect(response.status).toBe(202);
  return response.body.id;
}

/** A port that was free a moment ago, for a server that must come back on the same one. */
async function freePort(): Promise<number> {
  const probe = createTcpServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  probe.close();
  await once(probe, 'close');
  return port;
}

function live(seqs: number[], replayed: number[] = []): { seq: number; replayed: boolean }[] {
  return seqs.map((seq) => ({ seq, replayed: replayed.includes(seq) }));
}
const deliveries = (log: Recorder) => log.items.map(({ seq, replayed }) => ({ seq, replayed }));

describe('connection against a real server', () => {
  it('connects with hello, goes live and hands over a notification published over HTTP', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const { connection: c, log } = connection({ server: t.url, token, cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'connected');
    expect(log.states).toEqual(['connecting', 'connected']);
    expect(log.welcomes).toMatchObject([{ user: { name: 'alice' }, head: 0 }]);
    expect(log.synced).toEqual([{ head: 0, replayed: 0, gap: false }]);

    const id = await send(t, 'hello desktop');
    await log.received(1);
    expect(log.items).toEqual([{ seq: 1, id, title: 'hello desktop', replayed: false, initial: false }]);
    expect(c.lastSeq).toBe(1);
  });

  it('sends the token only in the Authorization header, never in the URL', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const proxy = await proxyTo(t.url);
    const { connection: c, log } = connection({ server: proxy.url, token, cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'connected');
    const [request = ''] = proxy.requests;
    const [requestLine = ''] = request.split('\r\n');
    expect(requestLine).toBe('GET /v1/stream HTTP/1.1');
    expect(request.toLowerCase()).toContain(`\r\nauthorization: bearer ${token.toLowerCase()}\r\n`);
    expect(request.indexOf(token)).toBe(request.indexOf(`Bearer ${token}`) + 'Bearer '.length);

    // URLs that could carry a token, and malformed tokens, are refused without echoing the token.
    for (const bad of [`${t.url}/?token=${token}`, `http://user:${token}@127.0.0.1:1`, `${t.url}#${token}`, 'ftp://example.com']) {
      expect(() => createConnection({ server: bad, token, cursor: memoryCursor() })).toThrow(TypeError);
    }
    let message = '';
    try {
      createConnection({ server: t.url, token: `${token} \n`, cursor: memoryCursor() });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/token/);
    expect(message).not.toContain(token);
  });

  it('fills the history on a first connect without toasting it, and a restarted client resumes from its saved cursor', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    await send(t, 'one');
    await send(t, 'two');
    const cursors = join(tempDir(), 'cursors');
    cleanups.push(() => {
      rmSync(join(cursors, '..'), { recursive: true, force: true });
    });
    const account = { server: t.url, user: 'alice' };

    const first = connection({ server: t.url, token, cursor: openCursorStore(cursors).cursorFor(account) });
    first.connection.start();
    await first.log.until(() => first.log.synced.length === 1);
    expect(first.log.items.map(({ seq, replayed, initial }) => ({ seq, replayed, initial }))).toEqual([
      { seq: 1, replayed: true, initial: true },
      { seq: 2, replayed: true, initial: true },
    ]);
    expect(first.log.synced).toEqual([{ head: 2, replayed: 2, gap: false }]);
    await send(t, 'three');
    await first.log.received(3);
    expect(first.log.items[2]).toMatchObject({ seq: 3, replayed: false, initial: false });
    await first.connection.close();

    // The app is down while two more arrive; a new process (new store over the same directory) resumes.
    await send(t, 'four');
    await send(t, 'five');
    const second = connection({ server: t.url, token, cursor: openCursorStore(cursors).cursorFor(account) });
    second.connection.start();
    await second.log.until(() => second.log.synced.length === 1);
    await send(t, 'six');
    await second.log.received(3);
    expect(second.log.items.map(({ seq, replayed, initial }) => ({ seq, replayed, initial }))).toEqual([
      { seq: 4, replayed: true, initial: false },
      { seq: 5, replayed: true, initial: false },
      { seq: 6, replayed: false, initial: false },
    ]);
    expect(openCursorStore(cursors).cursorFor(account).get()).toBe(6);
  });

  it('starts at the head on a first connect when asked not to replay history', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    await send(t, 'old');
    const cursor = memoryCursor();
    const { connection: c, log } = connection({ server: t.url, token, cursor, initialReplay: false });
    c.start();
    await log.until(() => log.synced.length === 1);
    expect(log.synced).toEqual([{ head: 1, replayed: 0, gap: false }]);
    expect(cursor.get()).toBe(1);
    await send(t, 'new');
    await log.received(1);
    expect(deliveries(log)).toEqual(live([2]));
  });

  it('survives a kill -9 and restart of a real server process (same data, same port) with no loss and no duplicates', async () => {
    const port = await freePort();
    const data = tempDir();
    cleanups.push(() => {
      rmSync(data, { recursive: true, force: true });
    });
    let herald = await startProcess(data, port);
    const url = herald.url;
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect((await api(url, 'POST', '/v1/users', { name: 'alice' })).status).toBe(201);
    const token = (await api(url, 'POST', '/v1/tokens', { kind: 'device', user: 'alice' })).body.token as string;
    const proxy = await proxyTo(url);
    const cursors = join(data, 'client-cursors');
    const account = { server: url, user: 'alice' };
    const { connection: c, log } = connection({ server: proxy.url, token, cursor: openCursorStore(cursors).cursorFor(account) });
    c.start();
    await log.until(() => log.state === 'connected');
    await api(url, 'POST', '/v1/notifications', { to: { users: ['alice'] }, title: 'before' });
    await log.received(1);

    // The server dies hard; until it is back and has taken two more publishes, the client cannot reach it.
    proxy.refuse();
    herald.process.kill('SIGKILL');
    expect((await herald.process.exited).signal).toBe('SIGKILL');
    await log.until(() => log.state === 'reconnecting');
    herald = await startProcess(data, port);
    expect(herald.url).toBe(url);
    for (const title of ['during 1', 'during 2']) expect((await api(url, 'POST', '/v1/notifications', { to: { users: ['alice'] }, title })).status).toBe(202);
    const refusedAttempts = proxy.accepted;
    proxy.forward();

    await log.until(() => log.synced.length === 2);
    await api(url, 'POST', '/v1/notifications', { to: { users: ['alice'] }, title: 'after' });
    await log.received(4);
    expect(deliveries(log)).toEqual(live([1, 2, 3, 4], [2, 3]));
    expect(log.items.map((item) => item.title)).toEqual(['before', 'during 1', 'during 2', 'after']);
    expect(log.disconnects[0]).toMatchObject({ code: 1006, cause: 'network', willRetry: true });
    expect(refusedAttempts).toBeGreaterThan(1); // it kept retrying while the server was away
    expect(log.states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
    expect(openCursorStore(cursors).cursorFor(account).get()).toBe(4);
  });

  it('survives a graceful server restart (close 4000) on the same port and data', async () => {
    const port = await freePort();
    const data = tempDir();
    cleanups.push(() => {
      rmSync(data, { recursive: true, force: true });
    });
    let t = await startServer({ port, data });
    const { token } = await deviceFor(t, 'alice');
    const { connection: c, log } = connection({ server: t.url, token, cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'connected');
    await send(t, 'one');
    await log.received(1);
    await t.close();
    await log.until(() => log.disconnects.length > 0);
    expect(log.disconnects[0]).toMatchObject({ code: 4000, cause: 'server', willRetry: true });
    t = await startServer({ port, data });
    const restarted = t;
    cleanups.push(() => restarted.close());
    await send(t, 'two');
    await send(t, 'three');
    await log.received(3);
    expect(log.seqs).toEqual([1, 2, 3]);
  });

  it('survives a forced socket drop: publishes during the outage are replayed once, then live resumes', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const proxy = await proxyTo(t.url);
    const { connection: c, log } = connection({ server: proxy.url, token, cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'connected');
    await send(t, 'one');
    await log.received(1);

    proxy.refuse();
    proxy.cut();
    await log.until(() => log.state === 'reconnecting');
    await send(t, 'two');
    await send(t, 'three');
    proxy.forward();
    await log.until(() => log.synced.length === 2);
    expect(log.synced[1]).toEqual({ head: 3, replayed: 2, gap: false });
    await send(t, 'four');
    await log.received(4);
    expect(deliveries(log)).toEqual(live([1, 2, 3, 4], [2, 3]));
    expect(log.disconnects[0]).toMatchObject({ code: 1006, cause: 'network', willRetry: true });
  });

  it('detects a half-open link by its silence within heartbeat + grace, reconnects and replays what went into the void', async () => {
    const heartbeatMs = 200;
    const deadLinkGraceMs = 600;
    const limit = heartbeatMs + deadLinkGraceMs;
    const t = await server({ heartbeatMs });
    const { token } = await deviceFor(t, 'alice');
    const proxy = await proxyTo(t.url);
    const signal = new Signal();
    const counted = countingTimers(signal);
    const { connection: c, log } = connection({ server: proxy.url, token, cursor: memoryCursor(), deadLinkGraceMs, timers: counted.timers }, signal);
    const disconnectedAt: number[] = [];
    c.on('disconnect', () => disconnectedAt.push(performance.now()));
    c.start();
    await log.until(() => log.state === 'connected');
    expect(log.welcomes[0]?.heartbeat).toBe(heartbeatMs);
    await send(t, 'one');
    await log.received(1);

    // Every frame re-arms the dead-link timer for heartbeat + grace. On an idle but healthy link, the
    // heartbeats keep doing so: five of them span well over the 800 ms limit, and nothing is dropped.
    const arms = () => counted.calls.filter((call) => call.ms === limit);
    const armed = arms().length;
    await signal.until(() => arms().length >= armed + 5);
    expect(log.disconnects).toEqual([]);

    // Both directions go silent; TCP on either side still believes the connection is up.
    proxy.blackhole();
    const silentSince = performance.now();
    await send(t, 'two');
    await send(t, 'three');
    await log.until(() => log.disconnects.length > 0);
    expect(log.disconnects[0]).toMatchObject({ cause: 'dead-link', willRetry: true });
    const lastFrameAt = arms().filter((call) => call.at < (disconnectedAt[0] ?? 0)).at(-1)?.at ?? 0;
    // It fires heartbeat + grace after the last frame (timers never fire early; + slack for a busy machine) …
    expect((disconnectedAt[0] ?? 0) - lastFrameAt).toBeGreaterThanOrEqual(limit - 1);
    expect((disconnectedAt[0] ?? 0) - lastFrameAt).toBeLessThan(limit + 500);
    // … which is within heartbeat + grace of the link going silent.
    expect((disconnectedAt[0] ?? 0) - silentSince).toBeLessThan(limit + 500);

    await log.until(() => log.synced.length === 2);
    await send(t, 'four');
    await log.received(4);
    expect(deliveries(log)).toEqual(live([1, 2, 3, 4], [2, 3]));
  });

  it('stops on 4501 when its token is revoked: signed-out, and no further attempts', async () => {
    const t = await server();
    await t.api('POST', '/v1/users', { body: { name: 'alice' } });
    const created = await t.api<{ id: string; token: string }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'alice' } });
    const proxy = await proxyTo(t.url);
    const signal = new Signal();
    const counted = countingTimers(signal);
    // A zero random source makes every backoff zero: a retry, if one were made, would happen at once.
    const { connection: c, log } = connection({ server: proxy.url, token: created.body.token, cursor: memoryCursor(), random: () => 0, timers: counted.timers }, signal);
    c.start();
    await log.until(() => log.state === 'connected');

    expect((await t.api('DELETE', `/v1/tokens/${created.body.id}`)).status).toBe(204);
    await log.until(() => log.state === 'signed-out');
    expect(log.disconnects).toEqual([{ code: 4501, reason: 'token revoked', cause: 'server', willRetry: false }]);
    expect(c.state).toBe('signed-out');

    // Neither an OS resume nor the network coming back revives a revoked token.
    c.resume();
    c.online();
    c.offline();
    // A full round trip through the same server lets any pending attempt happen first.
    const { token: other } = await deviceFor(t, 'bob');
    const bob = await TestClient.open(t.wsUrl, other);
    cleanups.push(() => bob.close());
    bob.send({ type: 'hello', v: 1 });
    await bob.next('synced');
    await send(t, 'for bob', 'bob');
    await bob.next('notification');
    expect(proxy.accepted).toBe(1);
    expect(log.states).toEqual(['connecting', 'connected', 'signed-out']);
    expect(counted.pending.size).toBe(0);
  });

  it('refuses a bad token at the first connect: error frame, 4501, signed-out', async () => {
    const t = await server();
    await deviceFor(t, 'alice');
    const { connection: c, log } = connection({ server: t.url, token: 'not-a-valid-device-token-' + 'q'.repeat(20), cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'signed-out');
    expect(log.errors).toMatchObject([{ code: 'unauthorized' }]);
    expect(log.disconnects).toMatchObject([{ code: 4501, cause: 'server', willRetry: false }]);
    expect(log.states).toEqual(['connecting', 'signed-out']);
  });

  it('passes read changes and deletions from any device on', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const { connection: c, log } = connection({ server: t.url, token, cursor: memoryCursor() });
    const reads: unknown[] = [];
    const deletions: number[][] = [];
    c.on('read', (change) => {
      reads.push(change);
      log.signal.notify();
    });
    c.on('deleted', (seqs) => {
      deletions.push(seqs);
      log.signal.notify();
    });
    c.start();
    await log.until(() => log.state === 'connected');
    const first = await send(t, 'one');
    await send(t, 'two');
    await log.received(2);
    expect((await t.api('POST', '/v1/inbox/read', { token, body: { seqs: [2] } })).status).toBe(200);
    await log.until(() => reads.length === 1);
    expect(reads).toEqual([{ seqs: [2], unread: 1 }]);
    expect((await t.api('DELETE', `/v1/notifications/${first}`)).status).toBe(204);
    await log.until(() => deletions.length === 1);
    expect(deletions).toEqual([[1]]);
  });

  it('recovers a live frame lost by the broker (a jump in seq) with sync, in order and once', async () => {
    const dropped = new Set([2]);
    const t = await server({}, { broker: droppingBroker((message) => dropped.has(message.seq)) });
    const { token } = await deviceFor(t, 'alice');
    const { connection: c, log } = connection({ server: t.url, token, cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'connected');
    await send(t, 'one');
    await log.received(1);
    // One batch: 2 is lost, 3 reveals the jump, and 4 is already on the wire when the server reads `sync`,
    // so the replay (2, 3, 4) overlaps a live frame and must be merged by seq, not taken in arrival order.
    const batch = await t.api('POST', '/v1/notifications/batch', {
      body: { notifications: ['two (lost live)', 'three', 'four'].map((title) => ({ to: { users: ['alice'] }, title })) },
    });
    expect(batch.status).toBe(202);
    await log.received(4);
    expect(log.synced).toEqual([
      { head: 0, replayed: 0, gap: false },
      { head: 4, replayed: 3, gap: false },
    ]);
    await send(t, 'five');
    await log.received(5);
    expect(deliveries(log)).toEqual(live([1, 2, 3, 4, 5], [2, 3, 4]));
    expect(log.items.map((item) => item.title)).toEqual(['one', 'two (lost live)', 'three', 'four', 'five']);
    expect(log.disconnects).toEqual([]); // recovered on the same socket
  });

  it('recovers a lost last frame when a heartbeat reports a head above its cursor', async () => {
    const dropped = new Set([2]);
    const t = await server({ heartbeatMs: 200 }, { broker: droppingBroker((message) => dropped.has(message.seq)) });
    const { token } = await deviceFor(t, 'alice');
    const { connection: c, log } = connection({ server: t.url, token, cursor: memoryCursor() });
    c.start();
    await log.until(() => log.state === 'connected');
    await send(t, 'one');
    await log.received(1);
    await send(t, 'two (lost live, nothing after it)');
    await log.received(2);
    expect(log.synced.at(-1)).toEqual({ head: 2, replayed: 1, gap: false });
    expect(deliveries(log)).toEqual(live([1, 2], [2]));
    expect(log.disconnects).toEqual([]);
  });

  it('draws each retry delay from the URL provider with full jitter, growing per failure and reset by online()', async () => {
    const proxy = await TcpProxy.start(await freePort());
    cleanups.push(() => proxy.close());
    proxy.refuse();
    const signal = new Signal();
    const counted = countingTimers(signal);
    const started = performance.now();
    const { connection: c, log } = connection(
      { server: proxy.url, token: 'x'.repeat(43), cursor: memoryCursor(), backoffBaseMs: 10, backoffCapMs: 40, random: () => 0.5, timers: counted.timers },
      signal,
    );
    c.start();
    // No socket ever opens, so every timer the connection sets is a backoff wait: 0.5 × min(40, 10 · 2^n).
    await signal.until(() => counted.requested.length >= 5);
    expect(counted.requested.slice(0, 5)).toEqual([5, 10, 20, 20, 20]);
    // reconnecting-websocket adds nothing of its own (its defaults alone would take seconds for five retries).
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(log.states).toEqual(['connecting', 'reconnecting']);
    expect(log.disconnects.every((d) => d.cause === 'network' && d.willRetry)).toBe(true);

    const mark = counted.requested.length;
    c.online();
    await signal.until(() => counted.requested.length >= mark + 2);
    expect(counted.requested.slice(mark, mark + 2)).toEqual([5, 10]);
    await c.close();
    expect(counted.pending.size).toBe(0);
  });

  it('reconnects at once on resume() and online(), skipping a long backoff; offline() shows offline', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const proxy = await proxyTo(t.url);
    const signal = new Signal();
    const counted = countingTimers(signal);
    // Every backoff wait is ~60 s: anything faster than that was skipped on purpose.
    const { connection: c, log } = connection(
      { server: proxy.url, token, cursor: memoryCursor(), backoffBaseMs: 60_000, backoffCapMs: 60_000, random: () => 0.999, timers: counted.timers },
      signal,
    );
    const started = performance.now();
    c.start();
    await log.until(() => log.state === 'connected');
    await send(t, 'one');
    await log.received(1);

    // A drop, then the OS wakes up while the client waits out its backoff.
    proxy.cut();
    await log.until(() => log.state === 'reconnecting' && counted.pending.size === 1 && (counted.requested.at(-1) ?? 0) > 59_000);
    c.resume();
    await log.until(() => log.synced.length === 2);

    // The OS reports no network: offline, and no retry until it is back.
    c.offline();
    await log.until(() => log.disconnects.length === 2);
    expect(log.disconnects[1]).toMatchObject({ cause: 'offline', willRetry: true });
    expect(log.state).toBe('offline');
    await send(t, 'two');
    c.online();
    await log.until(() => log.synced.length === 3);
    await log.received(2);

    // resume() on a healthy socket replaces it (it may be a zombie after sleep).
    c.resume();
    await log.until(() => log.synced.length === 4);
    await send(t, 'three');
    await log.received(3);

    expect(performance.now() - started).toBeLessThan(20_000);
    expect(deliveries(log)).toEqual(live([1, 2, 3], [2]));
    expect(log.disconnects.map((d) => d.cause)).toEqual(['network', 'offline', 'resume']);
    expect(log.states).toEqual(['connecting', 'connected', 'reconnecting', 'connected', 'offline', 'reconnecting', 'connected', 'reconnecting', 'connected']);

    // close() in the middle of a backoff wait leaves no timer and makes no attempt.
    proxy.refuse();
    proxy.cut();
    await log.until(() => log.state === 'reconnecting' && counted.pending.size > 0);
    const attempts = proxy.accepted;
    const states = log.states.length;
    await c.close();
    expect(counted.pending.size).toBe(0);
    c.resume();
    c.online();
    expect(proxy.accepted).toBe(attempts);
    expect(log.states).toHaveLength(states);
  });

  it('close() on a live connection closes the socket and leaves no timer', async () => {
    const t = await server();
    const { token } = await deviceFor(t, 'alice');
    const signal = new Signal();
    const counted = countingTimers(signal);
    const { connection: c, log } = connection({ server: t.url, token, cursor: memoryCursor(), timers: counted.timers }, signal);
    c.start();
    await log.until(() => log.state === 'connected');
    expect(counted.pending.size).toBe(1); // the dead-link timer
    await c.close();
    expect(counted.pending.size).toBe(0);
    expect(() => {
      c.start();
    }).toThrow(/once/);
  });
});

/**
 * A `ws` server that plays a script per connection, for what the real server never does on purpose
 * (repeating itself, coming from another history, sending garbage). Records each connection's first frame.
 */
class ScriptedServer {
  readonly hellos: unknown[] = [];
  readonly authorizations: (string | undefined)[] = [];

  private constructor(
    private readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(script: (socket: WebSocket, index: number) => void): Promise<ScriptedServer> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await once(wss, 'listening');
    const scripted = new ScriptedServer(wss, `http://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    wss.on('connection', (socket, request) => {
      const index = scripted.hellos.length;
      scripted.authorizations.push(request.headers.authorization);
      socket.once('message', (data: Buffer) => {
        scripted.hellos.push(JSON.parse(data.toString('utf8')));
        script(socket, index);
      });
    });
    cleanups.push(async () => {
      for (const client of wss.clients) client.terminate();
      const closed = once(wss, 'close');
      wss.close();
      await closed;
    });
    return scripted;
  }
}

function frame(socket: WebSocket, value: ServerFrame | string): void {
  socket.send(typeof value === 'string' ? value : JSON.stringify(value));
}


describe('connection protocol edge cases (scripted server)', () => {
  it('never hands a seq over twice, nor an id it already delivered, even when the server repeats itself', async () => {
    const server = await ScriptedServer.start((socket, index) => {
      if (index === 0) {
        for (const f of [welcome(2), note(1, 'a'), note(2, 'b'), synced(2, 2), note(3, 'c')]) frame(socket, f);
        socket.close(4000, 'server restarting');
      } else {
        // A faulty replay: repeats seqs 2 and 3, and id "b" again under a new seq.
        for (const f of [welcome(5), note(2, 'b'), note(3, 'c'), note(4, 'b'), note(5, 'e'), synced(5, 4)]) frame(socket, f);
      }
    });
    const saved: number[] = [];
    const inner = memoryCursor();
    const cursor = {
      get: () => inner.get(),
      set: (seq: number) => {
        saved.push(seq);
        inner.set(seq);
      },
    };
    const { connection: c, log } = connection({ server: server.url, token: 'device-token', cursor });
    const cursorAtHandoff: (number | undefined)[] = [];
    c.on('notification', () => cursorAtHandoff.push(cursor.get()));
    c.start();
    await log.until(() => log.synced.length === 2);
    expect(server.hellos).toEqual([
      { type: 'hello', v: 1, since: 0 },
      { type: 'hello', v: 1, since: 3 },
    ]);
    expect(server.authorizations).toEqual(['Bearer device-token', 'Bearer device-token']);
    expect(log.items.map(({ seq, id, replayed, initial }) => ({ seq, id, replayed, initial }))).toEqual([
      { seq: 1, id: 'a', replayed: true, initial: true },
      { seq: 2, id: 'b', replayed: true, initial: true },
      { seq: 3, id: 'c', replayed: false, initial: false },
      { seq: 5, id: 'e', replayed: true, initial: false },
    ]);
    // Saved only after each hand-over, and past the skipped duplicate id as well.
    expect(cursorAtHandoff).toEqual([undefined, 1, 2, 4]);
    expect(saved).toEqual([1, 2, 3, 4, 5]);
    expect(c.lastSeq).toBe(5);
  });

  it('starts over when its cursor is from another history (welcome head below it)', async () => {
    const server = await ScriptedServer.start((socket) => {
      for (const f of [welcome(3), note(1, 'x'), note(2, 'y'), note(3, 'z'), synced(3, 3, true), note(4, 'w')]) frame(socket, f);
    });
    const cursor = memoryCursor(10);
    const { connection: c, log } = connection({ server: server.url, token: 'device-token', cursor });
    c.start();
    await log.received(4);
    expect(server.hellos).toEqual([{ type: 'hello', v: 1, since: 10 }]);
    expect(log.items.map(({ seq, replayed, initial }) => ({ seq, replayed, initial }))).toEqual([
      { seq: 1, replayed: true, initial: true },
      { seq: 2, replayed: true, initial: true },
      { seq: 3, replayed: true, initial: true },
      { seq: 4, replayed: false, initial: false },
    ]);
    expect(log.synced).toEqual([{ head: 3, replayed: 3, gap: true }]);
    expect(cursor.get()).toBe(4);
  });

  it('says hello without since on a first connect that skips history', async () => {
    const server = await ScriptedServer.start((socket) => {
      for (const f of [welcome(7), synced(7, 0)]) frame(socket, f);
    });
    const cursor = memoryCursor();
    const { connection: c, log } = connection({ server: server.url, token: 'device-token', cursor, initialReplay: false });
    c.start();
    await log.until(() => log.state === 'connected');
    expect(server.hellos).toEqual([{ type: 'hello', v: 1 }]);
    expect(cursor.get()).toBe(7);
  });

  it('saves no seq past the last one handed over when a listener closes it in the middle of a replay', async () => {
    const server = await ScriptedServer.start((socket) => {
      for (const f of [welcome(0), synced(0, 0), note(1, 'a'), note(3, 'c')]) frame(socket, f);
      socket.on('message', (data: Buffer) => {
        const request = JSON.parse(data.toString('utf8')) as { type: string; since?: number };
        expect(request).toEqual({ type: 'sync', since: 1 });
        for (const f of [note(2, 'b'), note(3, 'c'), synced(3, 2)]) frame(socket, f);
      });
    });
    const cursor = memoryCursor();
    const { connection: c, log } = connection({ server: server.url, token: 'device-token', cursor });
    let closing: Promise<void> | undefined;
    c.on('notification', (item) => {
      if (item.seq === 2) closing = c.close();
    });
    c.start();
    await log.received(2);
    await closing;
    expect(log.seqs).toEqual([1, 2]);
    expect(cursor.get()).toBe(2);
  });

  it('reports unreadable frames and throwing listeners without losing its place', async () => {
    const server = await ScriptedServer.start((socket) => {
      for (const f of [welcome(0), synced(0, 0), '{"type":"from-the-future"}', 'not json', note(1, 'a'), note(2, 'b')]) frame(socket, f);
    });
    const reports: unknown[] = [];
    const cursor = memoryCursor();
    const { connection: c, log } = connection({ server: server.url, token: 'device-token', cursor, report: (error) => reports.push(error) });
    c.on('notification', (item) => {
      if (item.seq === 1) throw new Error('toast failed');
    });
    c.start();
    await log.received(2);
    expect(reports.map((error) => (error as Error).message)).toEqual([expect.stringMatching(/type/), 'not valid JSON', 'toast failed']);
    expect(log.seqs).toEqual([1, 2]);
    expect(cursor.get()).toBe(2);
    expect(log.disconnects).toEqual([]);
  });
});

/** The in-process broker, dropping the live messages a test names (the store still has them). */
function droppingBroker(drop: (message: UserMessage) => boolean): BrokerFactory {
  return (handlers) => {
    const inner = createMemoryBroker(handlers);
    return {
      ...inner,
      publish(messages) {
        inner.publish(messages.filter((message) => !drop(message)));
      },
      publishNotification(message) {
        this.publish(userMessages(message));
      },
    };
  };
}

/** The real CLI in its own process on a given port; resolves once it listens. */
async function startProcess(data: string, port: number): Promise<{ process: CliProcess; url: string }> {
  const server = CliProcess.start(['--port', String(port), '--data', data]);
  cleanups.push(async () => {
    server.kill();
    await server.exited;
  });
  return { process: server, url: await server.url() };
}

