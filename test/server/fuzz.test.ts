import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import { pino } from 'pino';
import { z } from 'zod';
import { CloseCode, ErrorCodes, serverFrame, type ErrorCode, type ServerFrame } from '@herald/protocol';
import { deviceFor, publish, startServer, type TestServer } from '../helpers.js';

/**
 * Property-based fuzzing of one live server over HTTP and WebSocket.
 * `HERALD_FUZZ_RUNS` sets the total number of cases (default 10,000; `npm run fuzz` sets 100,000),
 * shared between the four properties below. A failure prints fast-check's seed and path for replay.
 */
const totalRuns = Math.max(4, Number(process.env.HERALD_FUZZ_RUNS) || 10_000);
const runs = {
  httpBodies: Math.round(totalRuns * 0.4),
  httpPaths: Math.round(totalRuns * 0.1),
  wsSession: Math.round(totalRuns * 0.4),
  wsHandshake: 0,
};
runs.wsHandshake = totalRuns - runs.httpBodies - runs.httpPaths - runs.wsSession;
/** Vitest timeout of a property: generous per case, so that a slow CI box fails on a finding, not on time. */
const timeoutFor = (cases: number) => 30_000 + cases * 25;
/** Longest a single case may take before it counts as a hang. */
const caseTimeoutMs = 10_000;
/** Cases between two canary checks. */
const canaryEvery = 2_500;

const errorCodes = new Set(Object.keys(ErrorCodes));
const isErrorCode = (code: string): code is ErrorCode => errorCodes.has(code);
const errorBody = z.strictObject({ error: z.strictObject({ code: z.string().refine(isErrorCode, 'not a protocol ErrorCode'), message: z.string() }) });

/** Close codes a server may use under contract v1; 1006 (no close frame) and 1011 (server error) are not among them. */
function isContractClose(code: number): boolean {
  return [CloseCode.protocolError, CloseCode.unsupportedData, CloseCode.invalidPayload, CloseCode.messageTooBig].includes(code as 1002) || (code >= 4000 && code <= 4999);
}

// ---------------------------------------------------------------------------------------------------------------
// Server, principals, canary

let t: TestServer;
const serverErrors: string[] = [];
const tokens: Record<'admin' | 'app' | 'appLimited' | 'httpDevice' | 'wsDevice' | 'handshakeDevice' | 'canary', string> = {
  admin: '',
  app: '',
  appLimited: '',
  httpDevice: '',
  wsDevice: '',
  handshakeDevice: '',
  canary: '',
};
type TokenName = keyof typeof tokens | 'none' | 'garbage';
let host = '';
let port = 0;
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** A WebSocket whose every server frame is checked against the contract; breaches are collected, not thrown. */
class CheckedSocket {
  readonly violations: string[] = [];
  closeCode: number | undefined;
  readonly closed: Promise<number>;
  readonly #waiters = new Set<() => void>();
  /** Set when this side closes, so that its own close code is not held against the server. */
  #closing = false;
  /** The last frame received, when it was valid; what waiters look at. */
  last: ServerFrame | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData, isBinary: boolean) => {
      this.#check(data, isBinary);
      for (const wake of this.#waiters) wake();
    });
    ws.on('error', (error) => this.violations.push(`socket error: ${error.message}`));
    this.closed = once(ws, 'close').then(([code]) => {
      this.closeCode = code as number;
      if (!this.#closing && !isContractClose(this.closeCode)) this.violations.push(`closed with ${this.closeCode}, not a contract close code`);
      for (const wake of this.#waiters) wake();
      return this.closeCode;
    });
  }

  static async open(url: string, options: ClientOptions = {}): Promise<CheckedSocket> {
    const socket = new CheckedSocket(new WebSocket(url, options));
    await Promise.race([once(socket.ws, 'open'), socket.closed]);
    return socket;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.#closing = true;
    this.ws.close();
    await this.closed;
  }

  /** Resolves true once a frame arriving from now on matches, false once the socket is closed. */
  waitFor(match: (frame: ServerFrame) => boolean): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = () => {
        if (this.last && match(this.last)) {
          this.#waiters.delete(wake);
          resolve(true);
        } else if (this.closeCode !== undefined) {
          this.#waiters.delete(wake);
          resolve(false);
        }
      };
      this.#waiters.add(wake);
      if (this.closeCode !== undefined) wake();
    });
  }

  #check(data: RawData, isBinary: boolean): void {
    this.last = undefined;
    if (isBinary) {
      this.violations.push('a binary frame from the server');
      return;
    }
    const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.violations.push(`a frame that is not JSON: ${text.slice(0, 200)}`);
      return;
    }
    const frame = serverFrame.safeParse(json);
    if (!frame.success) {
      this.violations.push(`a frame outside the protocol: ${text.slice(0, 200)} (${frame.error.message.slice(0, 200)})`);
      return;
    }
    if (frame.data.type === 'error' && (!isErrorCode(frame.data.code) || frame.data.code === 'internal')) {
      this.violations.push(`an error frame with code ${frame.data.code}: ${frame.data.message}`);
    }
    this.last = frame.data;
  }
}

let canary: CheckedSocket;
let canaryChecks = 0;
let casesRun = 0;

/** A fresh canary notification reaches the canary device, its socket saw only valid frames, and /healthz answers. */
async function checkCanary(): Promise<void> {
  const title = `canary ${++canaryChecks}`;
  const arrived = canary.waitFor((f) => f.type === 'notification' && f.title === title);
  const accepted = await publish(t, { to: { users: ['canary'] }, title });
  expect(accepted.status).toBe(202);
  expect(await arrived, 'the canary notification arrived').toBe(true);
  expect(canary.violations).toEqual([]);
  expect(canary.open).toBe(true);
  expect((await send({ method: 'GET', path: '/healthz', token: 'none' })).status).toBe(200);
  expect(serverErrors).toEqual([]);
}

/** Counts a case and checks the canary every {@link canaryEvery} cases. */
async function tick(): Promise<void> {
  if (++casesRun % canaryEvery === 0) await checkCanary();
}

beforeAll(async () => {
  // Errors the server logs mean a request or frame broke something inside it; the fuzz fails on any of them.
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      serverErrors.push(chunk.toString('utf8'));
      done();
    },
  });
  t = await startServer({}, { logger: pino({ level: 'error' }, sink) });
  const url = new URL(t.url);
  host = url.hostname;
  port = Number(url.port);
  tokens.admin = t.adminToken;
  tokens.httpDevice = (await deviceFor(t, 'fuzz-http')).token;
  tokens.wsDevice = (await deviceFor(t, 'fuzz-ws')).token;
  tokens.handshakeDevice = (await deviceFor(t, 'fuzz-handshake')).token;
  tokens.canary = (await deviceFor(t, 'canary')).token;
  await deviceFor(t, 'sink');
  const app = await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'fuzz-app' } });
  const limited = await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'fuzz-limited', topics: ['deploys', 'news'] } });
  tokens.app = app.body.token;
  tokens.appLimited = limited.body.token;
  for (const token of [tokens.httpDevice, tokens.wsDevice]) {
    expect((await t.api('PUT', '/v1/me/topics/deploys', { token })).status).toBe(200);
  }
  // Something to replay, read and delete.
  for (const user of ['fuzz-http', 'fuzz-ws', 'fuzz-handshake']) {
    const notifications = Array.from({ length: 20 }, (_, i) => ({ to: { users: [user] }, title: `seed ${i}`, key: i % 5 === 0 ? `k${i}` : undefined }));
    expect((await t.api('POST', '/v1/notifications/batch', { body: { notifications } })).status).toBe(202);
  }

  canary = await CheckedSocket.open(t.wsUrl);
  const synced = canary.waitFor((f) => f.type === 'synced');
  canary.ws.send(JSON.stringify({ type: 'hello', v: 1, token: tokens.canary, since: 0 }));
  expect(await synced).toBe(true);
});

// Each test answers for the server errors logged while it ran.
beforeEach(() => {
  serverErrors.length = 0;
});

/** Object.prototype as it was before any fuzz input; the server runs in this process, so pollution by it shows here. */
const pristinePrototype = new Map(Object.getOwnPropertyNames(Object.prototype).map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value as unknown]));

function expectNoPrototypePollution(where: string): void {
  const now = Object.getOwnPropertyNames(Object.prototype);
  const changed = now.filter((name) => !pristinePrototype.has(name) || (Object.getOwnPropertyDescriptor(Object.prototype, name)?.value as unknown) !== pristinePrototype.get(name));
  expect(changed, `Object.prototype changed while handling: ${where}`).toEqual([]);
}

/** Fails the case if the server logged an error while handling it: that is a 5xx or a broken frame handler in disguise. */
function expectNoServerErrorsSince(mark: number, where: string): void {
  expect(serverErrors.slice(mark), `server errors logged while handling: ${where}`).toEqual([]);
  expectNoPrototypePollution(where);
}

afterAll(async () => {
  await canary.close();
  agent.destroy();
  await t.close();
});

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries: values, and mutations of valid frames and bodies

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Values that tend to break validators: edge numbers, odd strings, prototype keys, wrong types. */
const nastyValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    0,
    -0,
    -1,
    1.5,
    1e308,
    -1e308,
    2 ** 53,
    2 ** 53 + 2,
    Number.MAX_SAFE_INTEGER,
    Number.MIN_SAFE_INTEGER,
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\u202e',
    '🎉'.repeat(300),
    'x'.repeat(5000),
    true,
    false,
    null,
    [],
    {},
    [null],
    'javascript:alert(1)',
    'https://example.com/',
    'HTTPS://EXAMPLE.COM',
    '2030-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999+14:00',
    '1970-01-01T00:00:00Z',
    '__proto__',
    'constructor',
    'deploys',
    'sink',
    'canary',
  ),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

const nastyKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', 'to', 'title', 'body', 'users', 'topics', 'all', 'seqs', 'upTo', 'kind', 'type', 'since', 'v', 'token', 'seq', 't', 'user', 'name', 'key'),
  fc.string({ maxLength: 12 }),
);

interface Mutation {
  op: 'drop' | 'replace' | 'add' | 'wrap' | 'retype';
  /** Picks the container (object or array) to mutate, modulo their number. */
  at: number;
  /** Picks the member within it. */
  member: number;
  key: string;
  value: Json;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('drop', 'replace', 'add', 'wrap', 'retype'),
  at: fc.nat(),
  member: fc.nat(),
  key: nastyKey,
  value: nastyValue,
});
/** None a third of the time, so that valid requests (and what they do to the server) stay common. */
const mutations = fc.oneof({ weight: 1, arbitrary: fc.constant<Mutation[]>([]) }, { weight: 2, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) });

function containers(value: Json, out: (Json[] | Record<string, Json>)[] = []): (Json[] | Record<string, Json>)[] {
  if (value === null || typeof value !== 'object') return out;
  out.push(value);
  for (const child of Array.isArray(value) ? value : Object.values(value)) containers(child, out);
  return out;
}

/** Sets an own property, even `__proto__`, the way JSON.parse would. */
function define(target: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const retype = (value: Json): Json => (typeof value === 'string' ? Number(value) || [value] : typeof value === 'number' ? String(value) : Array.isArray(value) ? { 0: value[0] ?? null } : value === null ? 'null' : [value]);

/** Applies mutations to a deep copy of `base`; deterministic, so fast-check can shrink and replay. */
function mutate(base: Json, mutations: Mutation[]): Json {
  let root = structuredClone(base);
  for (const applied of mutations) {
    // A copy of the value each time: a constant arbitrary hands out one instance, and inserting it twice
    // (once into itself) would make a circular structure JSON cannot render.
    const m = { ...applied, value: structuredClone(applied.value) };
    const all = containers(root);
    const target = all[m.at % Math.max(all.length, 1)];
    if (target === undefined) {
      root = m.op === 'wrap' ? [root] : m.value;
      continue;
    }
    if (Array.isArray(target)) {
      const i = target.length === 0 ? 0 : m.member % target.length;
      if (m.op === 'drop') target.splice(i, 1);
      else if (m.op === 'add') target.push(m.value);
      else if (m.op === 'wrap') target[i] = [target[i] ?? null];
      else if (m.op === 'retype') target[i] = retype(target[i] ?? null);
      else target[i] = m.value;
      continue;
    }
    const keys = Object.keys(target);
    const key = keys.length === 0 ? m.key : (keys[m.member % keys.length] ?? m.key);
    // Own members only: `target.__proto__` would hand Object.prototype to the next mutation, polluting this process.
    const member = Object.hasOwn(target, key) ? (target[key] ?? null) : null;
    if (m.op === 'drop') Reflect.deleteProperty(target, key);
    else if (m.op === 'add') define(target, m.key, m.value);
    else if (m.op === 'wrap') define(target, key, Object.defineProperty({}, m.key, { value: member, enumerable: true, writable: true, configurable: true }));
    else if (m.op === 'retype') define(target, key, retype(member));
    else define(target, key, m.value);
  }
  return root;
}

/** A value from `arb` once in `oneIn` cases, else `nil`; shrinks towards `nil`. */
function rarely<T, N>(arb: fc.Arbitrary<T>, oneIn: number, nil: N): fc.Arbitrary<T | N> {
  return fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(nil) }, { weight: 1, arbitrary: arb });
}
/** An optional field, present once in `oneIn` cases (half of them by default). */
const optional = <T>(arb: fc.Arbitrary<T>, oneIn = 2) => rarely(arb, oneIn, undefined);

/** Raw-text variations on top of JSON: deep nesting, truncation, trailing junk. */
interface TextTwist {
  deep: number | null;
  cut: number | null;
  junk: string | null;
}
const textTwist: fc.Arbitrary<TextTwist> = fc.record({
  // Shallow, and deeper than a recursive walk (JSON.stringify, a naive validator) survives.
  deep: rarely(fc.oneof(fc.integer({ min: 64, max: 1_000 }), fc.integer({ min: 5_000, max: 50_000 })), 6, null),
  cut: rarely(fc.nat(), 25, null),
  junk: rarely(fc.constantFrom(',', '}', ']', '\u0000', ' // x', '{}', 'null'), 30, null),
});

function render(value: Json, twist: TextTwist): string {
  let text = JSON.stringify(value);
  if (twist.deep !== null && text.startsWith('{')) {
    const nested = `${'['.repeat(twist.deep)}${']'.repeat(twist.deep)}`;
    text = text === '{}' ? `{"nested":${nested}}` : `{"nested":${nested},${text.slice(1)}`;
  }
  if (twist.cut !== null && text.length > 0) text = text.slice(0, twist.cut % text.length);
  if (twist.junk !== null) text += twist.junk;
  return text;
}

const seq = fc.oneof({ weight: 4, arbitrary: fc.nat({ max: 40 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 0, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, 1e300) }, { weight: 1, arbitrary: fc.integer() });
const defined = <T extends Record<string, unknown>>(record: T): Json => JSON.parse(JSON.stringify(record)) as Json;

const topicName = fc.oneof(fc.constantFrom('deploys', 'news', 'billing'), fc.stringMatching(/^[a-z][a-z0-9._-]{0,10}$/));
const httpUrl = fc.oneof(fc.webUrl(), fc.constantFrom('https://example.com/a?b=c', 'http://localhost:1/'));

const publishBody = fc
  .record({
    to: fc.oneof(
      fc.constant({ users: ['sink'] }),
      fc.constant({ users: ['canary'] }),
      fc.constant({ users: ['sink', 'canary'] }),
      fc.record({ topics: fc.array(topicName, { minLength: 1, maxLength: 3 }) }),
      fc.constant({ users: ['fuzz-http'], topics: ['deploys'] }),
    ),
    title: fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }),
    body: optional(fc.string({ maxLength: 200, unit: 'grapheme' })),
    priority: optional(fc.integer({ min: 0, max: 6 })),
    tags: optional(fc.array(fc.string({ minLength: 1, maxLength: 10 }), { maxLength: 4 })),
    url: optional(httpUrl),
    icon: optional(httpUrl, 5),
    actions: optional(fc.array(fc.record({ label: fc.string({ minLength: 1, maxLength: 10 }), url: httpUrl }), { maxLength: 3 }), 4),
    key: optional(fc.constantFrom('build', 'deploy', 'x'), 4),
    ttl: optional(fc.integer({ min: 1, max: 3600 }), 4),
    deliverAt: optional(fc.date({ noInvalidDate: true, min: new Date('1990-01-01'), max: new Date('2100-01-01') }).map((d) => d.toISOString()), 6),
  })
  .map(defined);

// ---------------------------------------------------------------------------------------------------------------
// HTTP

interface HttpCase {
  method: string;
  path: string;
  token: TokenName;
  body?: string | Uint8Array | undefined;
  contentType?: string | undefined;
  idempotencyKey?: string | undefined;
  /** Sends the body in two writes, without Content-Length. */
  chunked?: boolean;
}

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** A long text as its head and tail. */
function clip(text: string, keep = 150): string {
  return text.length <= 2 * keep ? text : `${text.slice(0, keep)}…(${text.length} chars)…${text.slice(-keep)}`;
}

function describeCase(c: HttpCase): string {
  const body = c.body === undefined ? '' : typeof c.body === 'string' ? clip(c.body) : `<${c.body.length} bytes>`;
  return `${c.method} ${c.path} as ${c.token} ${body}`;
}

/** One request on the keep-alive agent; a reused socket that the server closed as it was reused is retried once (per the Node docs). */
async function send(c: HttpCase): Promise<HttpAnswer> {
  try {
    return await sendOnce(c);
  } catch (error) {
    if (error instanceof StaleSocketError) return sendOnce(c);
    throw error;
  }
}

class StaleSocketError extends Error {}

function sendOnce(c: HttpCase): Promise<HttpAnswer> {
  const headers: Record<string, string> = {};
  const token = c.token === 'none' ? undefined : c.token === 'garbage' ? 'hrld_garbage-token-for-fuzzing' : tokens[c.token];
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (c.contentType !== undefined) headers['content-type'] = c.contentType;
  if (c.idempotencyKey !== undefined) headers['idempotency-key'] = c.idempotencyKey;
  const body = c.body === undefined ? undefined : typeof c.body === 'string' ? Buffer.from(c.body) : Buffer.from(c.body);
  // Explicit framing: Node's client would send a GET or DELETE body with neither header, which no server can parse.
  if (body !== undefined) {
    if (c.chunked === true) headers['transfer-encoding'] = 'chunked';
    else headers['content-length'] = String(body.length);
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, method: c.method, path: c.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', (error: NodeJS.ErrnoException) => reject(req.reusedSocket && error.code === 'ECONNRESET' ? new StaleSocketError(error.message) : error));
    if (body !== undefined && c.chunked === true) {
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else req.end(body);
  });
}

/** The HTTP half of the contract: never a 5xx, and every 4xx is a well-formed error with a protocol code of that status. */
function checkAnswer(c: HttpCase, answer: HttpAnswer): void {
  const where = `${describeCase(c)} → ${answer.status} ${answer.text.slice(0, 300)}`;
  expect(answer.status, where).toBeGreaterThanOrEqual(200);
  expect(answer.status, where).toBeLessThan(500);
  if (answer.status >= 400) {
    expect(answer.headers['content-type'], where).toMatch(/^application\/json/);
    if (c.method === 'HEAD') return;
    const parsed = errorBody.safeParse(JSON.parse(answer.text));
    expect(parsed.success, where).toBe(true);
    if (!parsed.success) return;
    expect(ErrorCodes[parsed.data.error.code], `${where}: the status of the code`).toBe(answer.status);
    if (answer.status === 405) expect(answer.headers.allow, where).toBeTruthy();
    return;
  }
  if (c.method === 'HEAD' || answer.status === 204 || !/^application\/json/.test(answer.headers['content-type'] ?? '')) return;
  expect(() => JSON.parse(answer.text) as unknown, where).not.toThrow();
}

const tokenFor = (...preferred: TokenName[]) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...preferred) },
    { weight: 2, arbitrary: fc.constantFrom<TokenName>('admin', 'app', 'appLimited', 'httpDevice', 'none', 'garbage') },
  );

/** An endpoint with a generator of valid bodies, to be mutated. */
const endpoints: { method: string; path: fc.Arbitrary<string>; token: fc.Arbitrary<TokenName>; body: fc.Arbitrary<Json> | undefined }[] = [
  { method: 'POST', path: fc.constant('/v1/notifications'), token: tokenFor('admin', 'app', 'admin', 'app', 'appLimited'), body: publishBody },
  {
    method: 'POST',
    path: fc.constant('/v1/notifications/batch'),
    token: tokenFor('admin', 'app', 'appLimited'),
    body: fc.array(publishBody, { minLength: 1, maxLength: 4 }).map((notifications) => ({ notifications })),
  },
  {
    method: 'POST',
    path: fc.constant('/v1/users'),
    token: tokenFor('admin'),
    // Rarely with a password: hashing one costs tens of milliseconds.
    body: fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9._-]{0,12}$/), password: optional(fc.string({ minLength: 6, maxLength: 12 }), 30) }).map(defined),
  },
  {
    method: 'POST',
    path: fc.constant('/v1/tokens'),
    token: tokenFor('admin'),
    body: fc
      .oneof(
        fc.record({ kind: fc.constant('device'), user: fc.constantFrom('sink', 'nobody', 'fuzz-http'), label: optional(fc.string()), expiresIn: optional(fc.integer({ min: 0, max: 10 ** 9 })) }),
        fc.record({ kind: fc.constant('app'), name: fc.string({ minLength: 1, maxLength: 20 }), topics: optional(fc.array(topicName, { maxLength: 3 })) }),
        fc.record({ kind: fc.constant('admin'), label: optional(fc.string()) }),
      )
      .map(defined),
  },
  {
    method: 'POST',
    path: fc.constant('/v1/inbox/read'),
    token: tokenFor('httpDevice'),
    body: fc.oneof(fc.record({ seqs: fc.array(seq, { minLength: 1, maxLength: 10 }) }), fc.record({ upTo: seq })).map(defined),
  },
  {
    method: 'GET',
    path: fc
      .record({
        before: optional(seq.map(String)),
        limit: optional(fc.integer({ min: -1, max: 250 }).map(String)),
        unread: optional(fc.constantFrom('0', '1', 'true', 'false', 'yes')),
        topic: optional(topicName),
        q: optional(fc.string({ maxLength: 20, unit: 'grapheme' })),
      })
      .map((query) => `/v1/inbox?${new URLSearchParams(Object.entries(query).filter((e): e is [string, string] => e[1] !== undefined)).toString()}`),
    token: tokenFor('httpDevice'),
    body: undefined,
  },
  { method: 'PUT', path: topicName.map((topic) => `/v1/me/topics/${encodeURIComponent(topic)}`), token: tokenFor('httpDevice'), body: undefined },
  { method: 'DELETE', path: topicName.map((topic) => `/v1/me/topics/${encodeURIComponent(topic)}`), token: tokenFor('httpDevice'), body: undefined },
  { method: 'DELETE', path: seq.map((n) => `/v1/inbox/${n}`), token: tokenFor('httpDevice'), body: undefined },
  { method: 'GET', path: fc.constantFrom('/v1/me', '/v1/tokens', '/healthz', '/readyz', '/metrics'), token: tokenFor('httpDevice', 'admin'), body: undefined },
  { method: 'DELETE', path: fc.uuid().map((id) => `/v1/notifications/${id}`), token: tokenFor('admin', 'app'), body: undefined },
];

const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  { weight: 1, arbitrary: fc.constantFrom(undefined, 'text/plain', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/x-www-form-urlencoded') },
);
const idempotencyKey = optional(fc.oneof(fc.constantFrom('retry-1', 'retry-2', '', 'k'.repeat(256)), fc.stringMatching(/^[!-~]{1,40}$/)), 3);

const httpBodyCase: fc.Arbitrary<HttpCase> = fc.constantFrom(...endpoints).chain((endpoint) => {
  const valid = endpoint.body ?? fc.constant<Json>({});
  const body = fc.oneof(
    { weight: 10, arbitrary: fc.tuple(valid, mutations, textTwist).map(([base, applied, twist]) => render(mutate(base, applied), twist)) },
    { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
  return fc.record({
    method: endpoint.body === undefined ? fc.oneof({ weight: 9, arbitrary: fc.constant(endpoint.method) }, { weight: 1, arbitrary: fc.constantFrom('HEAD', 'OPTIONS', 'PATCH') }) : fc.constant(endpoint.method),
    path: endpoint.path,
    token: endpoint.token,
    body: endpoint.body === undefined ? optional(body) : body,
    contentType,
    idempotencyKey: endpoint.method === 'POST' ? idempotencyKey : fc.constant(undefined),
    chunked: fc.boolean(),
  });
});

/** Path segments and query strings: known words, encoded junk, and raw characters that are legal in a request line. */
const rawSegment = fc.stringMatching(/^[A-Za-z0-9%._~!$&'()*+,;=:@-]{0,12}$/);
const segment = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('v1', 'v2', 'notifications', 'batch', 'inbox', 'read', 'me', 'topics', 'tokens', 'users', 'healthz', 'readyz', 'metrics', 'stream', 'login', '..', '.', '', 'deploys', '1', '0', '-1') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }).map(encodeURIComponent) },
  { weight: 2, arbitrary: rawSegment },
);
const query = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom('before', 'limit', 'unread', 'topic', 'q', 'token', '__proto__', 'constructor'), rawSegment), fc.oneof(rawSegment, fc.string({ unit: 'binary', maxLength: 12 }).map(encodeURIComponent))),
  { maxLength: 4 },
);

const httpPathCase: fc.Arbitrary<HttpCase> = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'),
  path: fc
    .tuple(fc.oneof(fc.constant(['v1']), fc.constant([])), fc.array(segment, { maxLength: 4 }), query)
    .map(([prefix, segments, pairs]) => `/${[...prefix, ...segments].join('/')}${pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`}`),
  token: fc.constantFrom<TokenName>('admin', 'app', 'httpDevice', 'none', 'garbage'),
  body: optional(fc.oneof(fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)), fc.constant('{"to":{"users":["sink"]},"title":"via path fuzz"}'))),
  contentType,
});

describe('HTTP fuzz', () => {
  it(
    `answers ${runs.httpBodies} mutated request bodies with contract responses`,
    async () => {
      await fc.assert(
        fc.asyncProperty(httpBodyCase, async (c) => {
          const mark = serverErrors.length;
          checkAnswer(c, await send(c));
          expectNoServerErrorsSince(mark, describeCase(c));
          await tick();
        }),
        { numRuns: runs.httpBodies, plugins: [fc.timeout(caseTimeoutMs)] },
      );
      await checkCanary();
    },
    timeoutFor(runs.httpBodies),
  );

  it(
    `answers ${runs.httpPaths} fuzzed paths, methods and query strings with contract responses`,
    async () => {
      await fc.assert(
        fc.asyncProperty(httpPathCase, async (c) => {
          const mark = serverErrors.length;
          checkAnswer(c, await send(c));
          expectNoServerErrorsSince(mark, describeCase(c));
          await tick();
        }),
        { numRuns: runs.httpPaths, plugins: [fc.timeout(caseTimeoutMs)] },
      );
      await checkCanary();
    },
    timeoutFor(runs.httpPaths),
  );
});

// ---------------------------------------------------------------------------------------------------------------
// WebSocket

/** What a fuzz case sends on a socket. */
type Outgoing = { kind: 'text'; text: string } | { kind: 'binary'; bytes: Uint8Array } | { kind: 'raw-text'; bytes: Uint8Array } | { kind: 'oversized' };

function describeOutgoing(o: Outgoing): string {
  switch (o.kind) {
    case 'text':
      return `text ${JSON.stringify(clip(o.text))}`;
    case 'binary':
    case 'raw-text':
      return `${o.kind} [${Buffer.from(o.bytes).toString('hex').slice(0, 200)}]`;
    case 'oversized':
      return 'an oversized frame';
  }
}

function transmit(socket: CheckedSocket, o: Outgoing): void {
  if (!socket.open) return;
  switch (o.kind) {
    case 'text':
      socket.ws.send(o.text);
      return;
    case 'binary':
      socket.ws.send(o.bytes, { binary: true });
      return;
    case 'raw-text':
      // Arbitrary bytes marked as text: invalid UTF-8 must close with 1007, valid text gets an answer.
      socket.ws.send(o.bytes, { binary: false });
      return;
    case 'oversized':
      socket.ws.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(20 * 1024) }));
      return;
  }
}

const tokenValue = fc.oneof(
  fc.constantFrom<TokenName>('wsDevice', 'handshakeDevice', 'app', 'admin', 'garbage'),
  fc.constantFrom('', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig', 'Bearer x'),
);
const resolveToken = (value: string): string => (value in tokens ? tokens[value as keyof typeof tokens] : value === 'garbage' ? 'hrld_garbage-token-for-fuzzing' : value);

const clientFrameBase: fc.Arbitrary<Json> = fc
  .oneof(
    fc.record({ type: fc.constant('hello'), v: fc.constant(1), token: optional(tokenValue.map(resolveToken)), since: optional(seq) }),
    fc.record({ type: fc.constant('sync'), since: seq }),
    fc.record({ type: fc.constant('ack'), seq }),
    fc.record({ type: fc.constant('read'), seqs: fc.array(seq, { minLength: 1, maxLength: 8 }) }),
    fc.record({ type: fc.constant('read'), upTo: seq }),
    fc.record({ type: fc.constant('ping'), t: optional(fc.double({ noNaN: true, noDefaultInfinity: true })) }),
  )
  .map(defined);

const outgoing: fc.Arbitrary<Outgoing> = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(clientFrameBase, mutations, textTwist).map(([base, applied, twist]): Outgoing => ({ kind: 'text', text: render(mutate(base, applied), twist) })) },
  { weight: 4, arbitrary: clientFrameBase.map((frame): Outgoing => ({ kind: 'text', text: JSON.stringify(frame) })) },
  { weight: 2, arbitrary: fc.jsonValue().map((v): Outgoing => ({ kind: 'text', text: JSON.stringify(v) })) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 100 }).map((text): Outgoing => ({ kind: 'text', text })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes): Outgoing => ({ kind: 'binary', bytes })) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 16 }).map((bytes): Outgoing => ({ kind: 'raw-text', bytes })) },
  { weight: 1, arbitrary: fc.constant<Outgoing>({ kind: 'oversized' }) },
);

let pingId = 0;
/**
 * Sends a ping behind whatever a case sent, and waits for its pong or for the socket to close.
 * Frames are handled in order, so the pong comes after the server's answer to the case.
 */
async function settle(socket: CheckedSocket): Promise<boolean> {
  const stamp = -1 - ++pingId;
  const pong = socket.waitFor((f) => f.type === 'pong' && f.t === stamp);
  if (socket.open) socket.ws.send(JSON.stringify({ type: 'ping', t: stamp }));
  return pong;
}

describe('WebSocket fuzz', () => {
  let current: CheckedSocket | undefined;
  let sessions = 0;

  /** The authenticated fuzz session, reopened after a contract close. */
  async function sessionSocket(): Promise<CheckedSocket> {
    if (current?.open) return current;
    current?.ws.terminate();
    const socket = await CheckedSocket.open(t.wsUrl);
    sessions++;
    const synced = socket.waitFor((f) => f.type === 'synced');
    socket.ws.send(JSON.stringify({ type: 'hello', v: 1, token: tokens.wsDevice, since: 0 }));
    expect(await synced, 'a fresh fuzz session syncs').toBe(true);
    expect(socket.violations).toEqual([]);
    current = socket;
    return socket;
  }

  afterAll(async () => {
    await current?.close();
  });

  it(
    `keeps an authenticated session within the contract for ${runs.wsSession} fuzzed frames`,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(outgoing, { minLength: 1, maxLength: 3 }), async (frames) => {
          const socket = await sessionSocket();
          const mark = serverErrors.length;
          for (const frame of frames) transmit(socket, frame);
          const answered = await settle(socket);
          const where = frames.map(describeOutgoing).join(' · ');
          expect(socket.violations, where).toEqual([]);
          expectNoServerErrorsSince(mark, where);
          if (!answered) expect(isContractClose(socket.closeCode ?? 0), `${where}: closed with ${socket.closeCode}`).toBe(true);
          await tick();
        }),
        { numRuns: runs.wsSession, plugins: [fc.timeout(caseTimeoutMs)] },
      );
      await checkCanary();
      console.info(`ws session fuzz: ${runs.wsSession} cases over ${sessions} sessions`);
    },
    timeoutFor(runs.wsSession),
  );

  it(
    `answers ${runs.wsHandshake} fuzzed handshakes and first frames within the contract`,
    async () => {
      const sameOrigin = `http://${host}:${port}`;
      const handshake = fc.record({
        header: optional(tokenValue.map(resolveToken)),
        origin: optional(fc.constantFrom('https://evil.example', 'null', sameOrigin), 5),
        frames: fc.array(outgoing, { maxLength: 3 }),
      });
      await fc.assert(
        fc.asyncProperty(handshake, async ({ header, origin, frames }) => {
          const options: ClientOptions = {};
          if (header !== undefined && header !== '') options.headers = { authorization: `Bearer ${header}` };
          if (origin !== undefined) options.origin = origin;
          const where = `header ${String(header)}, origin ${String(origin)}: ${frames.map(describeOutgoing).join(' · ')}`;
          const mark = serverErrors.length;
          const ws = new WebSocket(t.wsUrl, options);
          const socket = new CheckedSocket(ws);
          const refused = new Promise<number>((resolve) => ws.on('unexpected-response', (_req, res) => {
            resolve(res.statusCode ?? 0);
            res.resume();
          }));
          const opened = await Promise.race([once(ws, 'open').then(() => 0), refused]);
          if (opened !== 0) {
            // Only a browser origin other than the server's own may be refused before the upgrade.
            expect(opened, where).toBe(403);
            expect(origin === undefined || origin === sameOrigin, where).toBe(false);
            return;
          }
          for (const frame of frames) transmit(socket, frame);
          const answered = await settle(socket);
          expect(socket.violations, where).toEqual([]);
          expectNoServerErrorsSince(mark, where);
          if (answered) await socket.close();
          else expect(isContractClose(socket.closeCode ?? 0), `${where}: closed with ${socket.closeCode}`).toBe(true);
          await tick();
        }),
        { numRuns: runs.wsHandshake, plugins: [fc.timeout(caseTimeoutMs)] },
      );
      await checkCanary();
    },
    timeoutFor(runs.wsHandshake),
  );
});

describe('after the fuzz', () => {
  it('still delivers to the canary and still answers /healthz', async () => {
    await checkCanary();
    const inbox = await t.api<{ items: unknown[] }>('GET', '/v1/inbox?limit=5', { token: tokens.canary });
    expect(inbox.status).toBe(200);
    expect(inbox.body.items.length).toBeGreaterThan(0);
  });
});
