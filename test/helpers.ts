import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { WebSocket, type ClientOptions } from 'ws';
import { pino } from 'pino';
import { serverFrame, parseJson, type ServerFrame, type ServerFrameOf } from '@herald/protocol';
import { testSchemaPrefix } from './scale-out-setup.js';
import { createServer, resolveConfig, type ConfigInput, type HeraldServer, type ServerDeps } from '../server/src/index.js';

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'herald-test-'));
}

export interface TestServer {
  server: HeraldServer;
  url: string;
  wsUrl: string;
  adminToken: string;
  data: string;
  api<T = unknown>(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/**
 * With HERALD_TEST_BACKEND=scale-out, servers run on PostgreSQL (a schema of their own) and Redis (a channel
 * prefix of their own) instead of SQLite and the in-process broker: the same tests, run once per backend.
 */
function scaleOutBackend(data: string, overrides: ConfigInput): ConfigInput {
  if (process.env.HERALD_TEST_BACKEND !== 'scale-out' || overrides.storeUrl !== undefined) return {};
  // Named after the data directory, so a test that restarts a server on the same data finds its data again.
  const id = createHash('sha256').update(data).digest('hex').slice(0, 12);
  return { storeUrl: 'postgres://postgres@127.0.0.1:5432/test', storeSchema: `${testSchemaPrefix()}${id}`, redisUrl: 'redis://127.0.0.1:6379', redisPrefix: `herald-test-${id}:` };
}

/**
 * A real server on port 0 with its own SQLite file; rate limits and admission control off unless the test sets them
 * (a test that opens 1,000 sockets at once on a busy CI machine would otherwise meet 503 `overloaded`).
 */
export async function startServer(overrides: ConfigInput = {}, deps: Partial<ServerDeps> = {}): Promise<TestServer> {
  const data = overrides.data ?? tempDir();
  const adminToken = 'test-admin-token-' + 'x'.repeat(32);
  const config = resolveConfig({ port: 0, data, adminToken, logLevel: 'silent', rateLimits: false, admission: false, ...scaleOutBackend(data, overrides), ...overrides });
  const server = await createServer(config, { logger: pino({ level: 'silent' }), ...deps });
  const { url } = await server.listen();
  const api = async <T>(method: string, path: string, options: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token ?? adminToken;
    if (token) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(url + path, {
      method,
      headers,
      body: options.body === undefined ? null : typeof options.body === 'string' ? options.body : JSON.stringify(options.body),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  return {
    server,
    url,
    wsUrl: url.replace(/^http/, 'ws') + '/v1/stream',
    adminToken,
    data,
    api,
    async close() {
      await server.close();
      if (overrides.data === undefined) rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Creates a user and a device token for it. */
export async function deviceFor(t: TestServer, name: string): Promise<{ token: string; userId: number }> {
  const user = await t.api<{ id: number }>('POST', '/v1/users', { body: { name } });
  if (user.status !== 201) throw new Error(`user ${name}: ${user.status}`);
  const token = await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'device', user: name } });
  return { token: token.body.token, userId: user.body.id };
}

export async function publish(t: TestServer, body: object, headers: Record<string, string> = {}) {
  return t.api<{ id: string; recipients: number }>('POST', '/v1/notifications', { body, headers });
}

type Waiter = { match: (f: ServerFrame) => boolean; resolve: (f: ServerFrame) => void };

/** A real `ws` client that records every frame and lets a test wait for the next one of a kind. */
export class TestClient {
  readonly frames: ServerFrame[] = [];
  #cursor = 0;
  #waiter: Waiter | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      this.frames.push(parseJson(serverFrame, text));
      this.#check();
    });
    this.closed = once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
  }

  /** Wraps a socket the test opened itself (for example over its own TCP connection). */
  static wrap(ws: WebSocket): TestClient {
    return new TestClient(ws);
  }

  static async open(url: string, token?: string, options: ClientOptions = {}): Promise<TestClient> {
    const headers = { ...(options.headers), ...(token ? { authorization: `Bearer ${token}` } : {}) };
    const ws = new WebSocket(url, { ...options, headers });
    const client = new TestClient(ws);
    await Promise.race([once(ws, 'open'), client.closed]);
    return client;
  }

  send(frame: object | string): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The next unconsumed frame of this type (frames of other types before it are skipped). */
  next<T extends ServerFrame['type']>(type: T): Promise<ServerFrameOf<T>> {
    return new Promise((resolve, reject) => {
      this.#waiter = { match: (f) => f.type === type, resolve: resolve as (f: ServerFrame) => void };
      this.#check();
      void this.closed.then(({ code }) => reject(new Error(`closed with ${code} while waiting for ${type}`)));
    });
  }

  /** Resolves once the frames received so far satisfy `predicate`; checked on every frame. */
  until(predicate: (frames: ServerFrame[]) => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate(this.frames)) return;
        this.ws.off('message', check);
        resolve();
      };
      this.ws.on('message', check);
      void this.closed.then(({ code }) => reject(new Error(`closed with ${code} before the condition held`)));
      check();
    });
  }

  /** The next `count` notification frames. */
  async notifications(count: number): Promise<ServerFrameOf<'notification'>[]> {
    const out: ServerFrameOf<'notification'>[] = [];
    while (out.length < count) out.push(await this.next('notification'));
    return out;
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.close();
      await this.closed;
    }
  }

  #check(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    while (this.#cursor < this.frames.length) {
      const frame = this.frames[this.#cursor++] as ServerFrame;
      if (waiter.match(frame)) {
        this.#waiter = undefined;
        waiter.resolve(frame);
        return;
      }
    }
  }
}
