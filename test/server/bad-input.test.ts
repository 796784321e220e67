import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';
import { pino } from 'pino';
import { CloseCode, Limits, type ErrorCode } from '@herald/protocol';
import type { ConfigInput } from '../../server/src/index.js';
import { TestClient, deviceFor, publish, startServer, type TestServer } from '../helpers.js';

interface Reply {
  status: number;
  body: unknown;
}

/** Matches any message: messages are for people and may change. */
const someMessage: unknown = expect.any(String);

/** Every refusal is a contract error: the exact status, the exact stable code, and a message for people. */
function expectError(reply: Reply, status: number, code: ErrorCode): void {
  expect({ status: reply.status, body: reply.body }).toEqual({ status, body: { error: { code, message: someMessage } } });
}

function errorMessage(reply: Reply): string {
  const body = reply.body as { error?: { message?: unknown } } | undefined;
  return String(body?.error?.message);
}

async function withServer(config: ConfigInput, run: (t: TestServer) => Promise<void>): Promise<void> {
  const t = await startServer(config);
  try {
    await run(t);
  } finally {
    await t.close();
  }
}

/**
 * A whole HTTP exchange over a raw socket, for request lines `fetch` would normalise. Resolves with the status line and body text
 * once the server closes, or with the status line alone as soon as it arrives when `statusOnly` is set (an accepted upgrade stays open).
 */
function rawRequest(url: string, head: string, statusOnly = false): Promise<{ statusLine: string; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (statusOnly && text.includes('\r\n')) socket.destroy();
    });
    // A guard for a server that never answers (see the request-target tests), not a wait for a result.
    socket.setTimeout(2_000, () => socket.destroy(new Error(`no response to ${JSON.stringify(head.split('\r\n')[0])}`)));
    socket.on('error', reject);
    socket.on('close', () => {
      const split = text.indexOf('\r\n\r\n');
      resolve({ statusLine: text.slice(0, text.indexOf('\r\n')), body: split < 0 ? '' : text.slice(split + 4) });
    });
    socket.write(head);
  });
}

/** Opens a socket that the server is expected to refuse during the upgrade; resolves with the HTTP answer. */
function refusedUpgrade(url: string, options: ClientOptions = {}): Promise<{ status: number; body: unknown }> {
  const ws = new WebSocket(url, options);
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }));
    });
  });
}

/** Proves a socket is still usable: a ping with a fresh `t` comes back as a pong with the same `t`. */
let pings = 0;
async function expectAlive(client: TestClient): Promise<void> {
  const t = ++pings;
  client.send({ type: 'ping', t });
  await client.until((frames) => frames.some((f) => f.type === 'pong' && f.t === t));
}

/** An authenticated, synced session. */
async function session(t: TestServer, token: string): Promise<TestClient> {
  const client = await TestClient.open(t.wsUrl);
  client.send({ type: 'hello', v: 1, token });
  await client.next('synced');
  return client;
}

describe('HTTP bad input', () => {
  let t: TestServer;
  let alice: string;
  let appToken: string;
  const valid = { to: { users: ['alice'] }, title: 'hello' };

  beforeAll(async () => {
    t = await startServer();
    alice = (await deviceFor(t, 'alice')).token;
    await deviceFor(t, 'bob');
    const app = await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'deployer', topics: ['deploys'] } });
    expect(app.status).toBe(201);
    appToken = app.body.token;
  });
  afterAll(async () => {
    await t.close();
  });

  async function inboxHead(token: string): Promise<{ head: number; items: number }> {
    const inbox = await t.api<{ head: number; items: unknown[] }>('GET', '/v1/inbox', { token });
    expect(inbox.status).toBe(200);
    return { head: inbox.body.head, items: inbox.body.items.length };
  }

  describe('publish bodies', () => {
    const text = (n: number) => 'x'.repeat(n);
    const cases: [string, unknown, ErrorCode][] = [
      ['a body that is not JSON', '{"to":', 'invalid_json'],
      ['an empty body', '', 'invalid_json'],
      ['a body of only whitespace', ' \n ', 'invalid_json'],
      ['JSON null', null, 'invalid_request'],
      ['a JSON array', [valid], 'invalid_request'],
      ['a JSON string', '"hello"', 'invalid_request'],
      ['a JSON number', '42', 'invalid_request'],
      ['a missing title', { to: valid.to }, 'invalid_title'],
      ['an empty title', { ...valid, title: '' }, 'invalid_title'],
      ['a title over 256 characters', { ...valid, title: text(Limits.titleMax + 1) }, 'invalid_title'],
      ['a title that is a number', { ...valid, title: 5 }, 'invalid_title'],
      ['a body over 4096 characters', { ...valid, body: text(Limits.bodyMax + 1) }, 'invalid_body'],
      ['a body that is an object', { ...valid, body: { text: 'x' } }, 'invalid_body'],
      ['priority 0', { ...valid, priority: 0 }, 'invalid_priority'],
      ['priority 6', { ...valid, priority: 6 }, 'invalid_priority'],
      ['priority 2.5', { ...valid, priority: 2.5 }, 'invalid_priority'],
      ['priority "3"', { ...valid, priority: '3' }, 'invalid_priority'],
      ['17 tags', { ...valid, tags: Array.from({ length: Limits.tagsMax + 1 }, (_, i) => `t${i}`) }, 'invalid_tags'],
      ['a tag of 65 characters', { ...valid, tags: [text(Limits.tagMax + 1)] }, 'invalid_tags'],
      ['an empty tag', { ...valid, tags: [''] }, 'invalid_tags'],
      ['tags that are a string', { ...valid, tags: 'ops' }, 'invalid_tags'],
      ['4 actions', { ...valid, actions: Array.from({ length: 4 }, (_, i) => ({ label: `a${i}`, url: 'https://example.com' })) }, 'invalid_actions'],
      ['an action with a javascript: URL', { ...valid, actions: [{ label: 'run', url: 'javascript:alert(1)' }] }, 'invalid_actions'],
      ['an action without a label', { ...valid, actions: [{ url: 'https://example.com' }] }, 'invalid_actions'],
      ['an ftp url', { ...valid, url: 'ftp://example.com/file' }, 'invalid_url'],
      ['a javascript: url', { ...valid, url: 'javascript:alert(1)' }, 'invalid_url'],
      ['a url without a host', { ...valid, url: 'https://' }, 'invalid_url'],
      ['a data: icon', { ...valid, icon: 'data:image/png;base64,AAAA' }, 'invalid_url'],
      ['a missing to', { title: 'hello' }, 'invalid_target'],
      ['an empty to', { ...valid, to: {} }, 'invalid_target'],
      ['to with empty lists', { ...valid, to: { users: [], topics: [] } }, 'invalid_target'],
      ['to that is a string', { ...valid, to: 'alice' }, 'invalid_target'],
      ['to.all false', { ...valid, to: { all: false } }, 'invalid_target'],
      ['a user name with a space', { ...valid, to: { users: ['al ice'] } }, 'invalid_target'],
      ['a topic name with a space', { ...valid, to: { topics: ['bad topic'] } }, 'invalid_target'],
      ['a topic name starting with "."', { ...valid, to: { topics: ['.hidden'] } }, 'invalid_target'],
      ['a topic name of 65 characters', { ...valid, to: { topics: [text(Limits.topicMax + 1)] } }, 'invalid_target'],
      ['ttl 0', { ...valid, ttl: 0 }, 'invalid_ttl'],
      ['a negative ttl', { ...valid, ttl: -5 }, 'invalid_ttl'],
      ['a fractional ttl', { ...valid, ttl: 1.5 }, 'invalid_ttl'],
      ['a ttl over a year', { ...valid, ttl: Limits.ttlMax + 1 }, 'invalid_ttl'],
      ['deliverAt in words', { ...valid, deliverAt: 'tomorrow' }, 'invalid_deliver_at'],
      ['deliverAt as a date only', { ...valid, deliverAt: '2030-01-01' }, 'invalid_deliver_at'],
      ['deliverAt as epoch milliseconds', { ...valid, deliverAt: 1_900_000_000_000 }, 'invalid_deliver_at'],
      ['an empty key', { ...valid, key: '' }, 'invalid_key'],
      ['a key of 257 characters', { ...valid, key: text(Limits.keyMax + 1) }, 'invalid_key'],
      // PostgreSQL cannot store U+0000 in text: refused on every backend alike, anywhere in the body.
      ['a body with U+0000', { ...valid, body: 'a\u0000b' }, 'invalid_json'],
      ['U+0000 in an unknown nested field', { ...valid, extra: [{ note: '\u0000' }] }, 'invalid_json'],
    ];

    it.each(cases)('refuses %s', async (_name, body, code) => {
      expectError(await publish(t, body as object), 400, code);
    });

    it('refuses a publish to a user that does not exist, naming the user', async () => {
      const reply = await publish(t, { to: { users: ['alice', 'nosuchuser'] }, title: 'hello' });
      expectError(reply, 400, 'unknown_user');
      expect(errorMessage(reply)).toContain('nosuchuser');
    });

    it('walks a body nested 100,000 deep for U+0000 without running out of stack', async () => {
      const post = async (body: string) => {
        const response = await fetch(`${t.url}/v1/notifications`, {
          method: 'POST',
          headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json' },
          body,
        });
        return { status: response.status, body: await response.json() };
      };
      const deep = (inner: string) => `{"extra":${'['.repeat(100_000)}${inner}${']'.repeat(100_000)},"to":{"users":["alice"]},"title":"deep"}`;
      expectError(await post(deep('"\\u0000"')), 400, 'invalid_json');
      // Found by the fuzzer: a NUL outside the deep part still made the walk go through it.
      expectError(await post(deep('').replace('"title":"deep"', '"title":"deep","__proto__":"\\u0000"')), 400, 'invalid_json');
      // Without a NUL the walk finds nothing, and the body goes on to the next check (nothing is stored in this block).
      expectError(await post(deep('"fine"').replace('"alice"', '"nobody-here"')), 400, 'unknown_user');
    });

    it('refuses a multipart body with 415', async () => {
      const form = new FormData();
      form.set('title', 'hello');
      const response = await fetch(`${t.url}/v1/notifications`, { method: 'POST', headers: { authorization: `Bearer ${t.adminToken}` }, body: form });
      expectError({ status: response.status, body: await response.json() }, 415, 'unsupported_media_type');
    });

    it('refuses an Idempotency-Key over 255 characters', async () => {
      expectError(await publish(t, valid, { 'idempotency-key': 'k'.repeat(256) }), 400, 'invalid_request');
    });

    it('refuses an Idempotency-Key reused with a different body, and keeps the first', async () => {
      const first = await publish(t, { to: { users: ['bob'] }, title: 'charged' }, { 'idempotency-key': 'order-1' });
      expect(first.status).toBe(202);
      const reused = await publish(t, { to: { users: ['bob'] }, title: 'refunded' }, { 'idempotency-key': 'order-1' });
      expectError(reused, 422, 'idempotency_key_reused');
      expect(await publish(t, { to: { users: ['bob'] }, title: 'charged' }, { 'idempotency-key': 'order-1' })).toEqual(first);
    });

    it('accepts unknown extra fields, however deeply nested, with or without an Idempotency-Key', async () => {
      // Contract v1: "new optional fields may be added freely", so a newer publisher's extra field is ignored, not a 500.
      const depth = 20_000;
      const body = `{"to":{"users":["bob"]},"title":"from the future","extension":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      expect((await publish(t, body as unknown as object)).status).toBe(202);
      const keyed = await publish(t, body as unknown as object, { 'idempotency-key': 'nested-1' });
      expect(keyed.status).toBe(202);
      expect(await publish(t, body as unknown as object, { 'idempotency-key': 'nested-1' })).toEqual(keyed);
    });

    it('stored none of the refused publishes', async () => {
      expect(await inboxHead(alice)).toEqual({ head: 0, items: 0 });
    });
  });

  describe('batches', () => {
    const item = (title: string, extra: object = {}) => ({ to: { users: ['alice'] }, title, ...extra });
    const batch = (notifications: unknown) => t.api('POST', '/v1/notifications/batch', { body: { notifications } });

    it('refuses 101 notifications', async () => {
      expectError(await batch(Array.from({ length: Limits.batchMax + 1 }, (_, i) => item(`n${i}`))), 400, 'invalid_request');
    });

    it('refuses an empty batch and a batch that is not a list', async () => {
      expectError(await batch([]), 400, 'invalid_request');
      expectError(await batch({ 0: item('a') }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/notifications/batch', { body: [item('a')] }), 400, 'invalid_request');
    });

    it('refuses a batch with one bad item with that item’s code and index, and stores nothing of it', async () => {
      const before = await inboxHead(alice);
      const reply = await batch([item('first'), item('second'), item('third', { priority: 9 }), item('fourth')]);
      expectError(reply, 400, 'invalid_priority');
      expect(errorMessage(reply)).toContain('notifications[2]');
      expect(await inboxHead(alice)).toEqual(before);
    });

    it('rolls back the items before an unknown user', async () => {
      const before = await inboxHead(alice);
      const reply = await batch([item('first'), { to: { users: ['ghost'] }, title: 'second' }, item('third')]);
      expectError(reply, 400, 'unknown_user');
      expect(errorMessage(reply)).toContain('notifications[1]');
      expect(await inboxHead(alice)).toEqual(before);
    });

    it('refuses a batch in which an app token leaves its topics, naming the item', async () => {
      const reply = await t.api('POST', '/v1/notifications/batch', {
        token: appToken,
        body: { notifications: [{ to: { topics: ['deploys'] }, title: 'ok' }, { to: { topics: ['billing'] }, title: 'not ok' }] },
      });
      expectError(reply, 403, 'topic_not_allowed');
      expect(errorMessage(reply)).toContain('notifications[1]');
    });
  });

  describe('bodies over maxBodyBytes', () => {
    it('answers 413, whether the length is declared or streamed, and keeps serving', async () => {
      await withServer({ maxBodyBytes: 4096 }, async (small) => {
        await deviceFor(small, 'carol');
        const huge = { to: { users: ['carol'] }, title: 'big', body: 'x'.repeat(4000), tags: ['y'.repeat(60)] };
        expectError(await publish(small, huge), 413, 'payload_too_large');
        const notifications = Array.from({ length: 100 }, (_, i) => ({ to: { users: ['carol'] }, title: `notification number ${i}` }));
        expectError(await small.api('POST', '/v1/notifications/batch', { body: { notifications } }), 413, 'payload_too_large');

        // No Content-Length: the server has to count as the chunks arrive.
        const chunk = new TextEncoder().encode(' '.repeat(1024));
        const stream = new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < 16; i++) controller.enqueue(chunk);
            controller.close();
          },
        });
        const init = { method: 'POST', headers: { authorization: `Bearer ${small.adminToken}`, 'content-type': 'application/json' }, body: stream, duplex: 'half' };
        const streamed = await fetch(`${small.url}/v1/notifications`, init as RequestInit);
        expectError({ status: streamed.status, body: await streamed.json() }, 413, 'payload_too_large');

        expect((await publish(small, { to: { users: ['carol'] }, title: 'small' })).status).toBe(202);
      });
    });
  });

  describe('authentication and authorization', () => {
    it('refuses a missing token with 401 and a WWW-Authenticate challenge', async () => {
      const response = await fetch(`${t.url}/v1/notifications`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(valid) });
      expectError({ status: response.status, body: await response.json() }, 401, 'unauthorized');
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    });

    it('refuses a bad token, a non-Bearer scheme and an empty Bearer with 401', async () => {
      expectError(await t.api('POST', '/v1/notifications', { token: 'hrld_not-a-real-token', body: valid }), 401, 'unauthorized');
      expectError(await t.api('GET', '/v1/me', { token: 'hrld_not-a-real-token' }), 401, 'unauthorized');
      const basic = await fetch(`${t.url}/v1/me`, { headers: { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` } });
      expectError({ status: basic.status, body: await basic.json() }, 401, 'unauthorized');
      const empty = await fetch(`${t.url}/v1/me`, { headers: { authorization: 'Bearer ' } });
      expectError({ status: empty.status, body: await empty.json() }, 401, 'unauthorized');
    });

    it('refuses a device token on publish and admin endpoints with 403 forbidden', async () => {
      expectError(await t.api('POST', '/v1/notifications', { token: alice, body: valid }), 403, 'forbidden');
      expectError(await t.api('POST', '/v1/users', { token: alice, body: { name: 'mallory' } }), 403, 'forbidden');
      expectError(await t.api('GET', '/v1/tokens', { token: alice }), 403, 'forbidden');
    });

    it('refuses an app token on device and admin endpoints with 403 forbidden', async () => {
      expectError(await t.api('GET', '/v1/me', { token: appToken }), 403, 'forbidden');
      expectError(await t.api('GET', '/v1/inbox', { token: appToken }), 403, 'forbidden');
      expectError(await t.api('POST', '/v1/tokens', { token: appToken, body: { kind: 'admin' } }), 403, 'forbidden');
    });

    it('keeps an app token limited to topics inside them', async () => {
      const as = (body: object) => t.api('POST', '/v1/notifications', { token: appToken, body });
      expectError(await as({ to: { topics: ['billing'] }, title: 'x' }), 403, 'topic_not_allowed');
      expectError(await as({ to: { topics: ['deploys', 'billing'] }, title: 'x' }), 403, 'topic_not_allowed');
      expectError(await as({ to: { users: ['alice'] }, title: 'x' }), 403, 'topic_not_allowed');
      expectError(await as({ to: { topics: ['deploys'], users: ['alice'] }, title: 'x' }), 403, 'topic_not_allowed');
      expectError(await as({ to: { all: true }, title: 'x' }), 403, 'topic_not_allowed');
      expect((await as({ to: { topics: ['deploys'] }, title: 'shipped' })).status).toBe(202);
    });
  });

  describe('routing', () => {
    it('answers an unknown endpoint with 404 not_found', async () => {
      expectError(await t.api('GET', '/v1/nope'), 404, 'not_found');
      expectError(await t.api('GET', '/v2/notifications'), 404, 'not_found');
      expectError(await t.api('POST', '/v1/notifications/'), 404, 'not_found');
    });

    it('answers a wrong method with 405 method_not_allowed and an Allow header', async () => {
      const cases: [string, string, string][] = [
        ['GET', '/v1/notifications', 'POST'],
        ['PUT', '/v1/users', 'POST'],
        ['PATCH', '/v1/me/topics/deploys', 'PUT, DELETE'],
        ['POST', '/v1/inbox', 'GET'],
      ];
      for (const [method, path, allow] of cases) {
        const response = await fetch(t.url + path, { method, headers: { authorization: `Bearer ${alice}` } });
        expectError({ status: response.status, body: await response.json() }, 405, 'method_not_allowed');
        expect(response.headers.get('allow'), `${method} ${path}`).toBe(allow);
      }
    });
  });

  describe('inbox and topics', () => {
    it('refuses bad inbox queries', async () => {
      const get = (query: string) => t.api('GET', `/v1/inbox?${query}`, { token: alice });
      expectError(await get('before=abc'), 400, 'invalid_cursor');
      expectError(await get('before=0'), 400, 'invalid_cursor');
      expectError(await get('before=-3'), 400, 'invalid_cursor');
      expectError(await get('before=1.5'), 400, 'invalid_cursor');
      expectError(await get('limit=0'), 400, 'invalid_request');
      expectError(await get(`limit=${Limits.pageMax + 1}`), 400, 'invalid_request');
      expectError(await get('limit=ten'), 400, 'invalid_request');
      expectError(await get('unread=yes'), 400, 'invalid_request');
      expectError(await get('topic=bad%20topic'), 400, 'invalid_topic');
      expectError(await get(`q=${'q'.repeat(257)}`), 400, 'invalid_request');
    });

    it('refuses read requests with both, neither or bad targets', async () => {
      const read = (body: unknown) => t.api('POST', '/v1/inbox/read', { token: alice, body });
      expectError(await read({ seqs: [1], upTo: 1 }), 400, 'invalid_request');
      expectError(await read({}), 400, 'invalid_request');
      expectError(await read({ seqs: [] }), 400, 'invalid_request');
      expectError(await read({ seqs: [0] }), 400, 'invalid_request');
      expectError(await read({ seqs: Array.from({ length: Limits.readSeqsMax + 1 }, (_, i) => i + 1) }), 400, 'invalid_request');
      expectError(await read({ upTo: -1 }), 400, 'invalid_request');
      expectError(await read({ upTo: 'all' }), 400, 'invalid_request');
      expectError(await read('{"upTo":'), 400, 'invalid_json');
      expectError(await read(''), 400, 'invalid_json');
    });

    it('refuses to delete an inbox item named by anything but a positive integer', async () => {
      for (const seq of ['xyz', '0', '-1', '1.5', '1e3x']) expectError(await t.api('DELETE', `/v1/inbox/${seq}`, { token: alice }), 400, 'invalid_cursor');
      expectError(await t.api('DELETE', '/v1/inbox/999999', { token: alice }), 404, 'not_found');
    });

    it('refuses bad topic names on subscribe and unsubscribe', async () => {
      expectError(await t.api('PUT', '/v1/me/topics/bad%20topic', { token: alice }), 400, 'invalid_topic');
      expectError(await t.api('PUT', '/v1/me/topics/.hidden', { token: alice }), 400, 'invalid_topic');
      expectError(await t.api('PUT', `/v1/me/topics/${'t'.repeat(Limits.topicMax + 1)}`, { token: alice }), 400, 'invalid_topic');
      expectError(await t.api('DELETE', '/v1/me/topics/bad%2Ftopic', { token: alice }), 400, 'invalid_topic');
      expectError(await t.api('DELETE', '/v1/me/topics/never-subscribed', { token: alice }), 404, 'not_found');
    });

    it('answers malformed percent-encoding in a path parameter with the parameter’s own code, not a 500', async () => {
      expectError(await t.api('DELETE', '/v1/inbox/%E0%A4', { token: alice }), 400, 'invalid_cursor');
      expectError(await t.api('PUT', '/v1/me/topics/%ff', { token: alice }), 400, 'invalid_topic');
      expectError(await t.api('DELETE', '/v1/tokens/%zz'), 404, 'not_found');
    });
  });

  describe('users and tokens', () => {
    it('refuses an existing user with 409 user_exists', async () => {
      expectError(await t.api('POST', '/v1/users', { body: { name: 'alice' } }), 409, 'user_exists');
    });

    it('refuses bad user bodies', async () => {
      expectError(await t.api('POST', '/v1/users', { body: { name: 'al ice' } }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/users', { body: { name: '' } }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/users', { body: { name: 'dan', password: 'short' } }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/users', { body: '{name:"dan"}' }), 400, 'invalid_json');
    });

    it('refuses a device token for an unknown user with 400 unknown_user', async () => {
      expectError(await t.api('POST', '/v1/tokens', { body: { kind: 'device', user: 'ghost' } }), 400, 'unknown_user');
    });

    it('refuses bad token bodies', async () => {
      expectError(await t.api('POST', '/v1/tokens', { body: { kind: 'root' } }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/tokens', { body: { kind: 'device' } }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/tokens', { body: { kind: 'device', user: 'alice', expiresIn: 1 } }), 400, 'invalid_request');
      expectError(await t.api('POST', '/v1/tokens', { body: { kind: 'app', name: 'x', topics: ['bad topic'] } }), 400, 'invalid_request');
    });

    it('answers revoking an unknown token with 404 not_found', async () => {
      expectError(await t.api('DELETE', '/v1/tokens/tok_nope'), 404, 'not_found');
    });
  });

  describe('request targets that are not URLs', () => {
    // `//` is what a proxy with a trailing-slash base sends; `//[` cannot be parsed as a URL at all; and `//x/v1/me` must not be
    // read as host `x` and path `/v1/me`, or a proxy rule guarding `/v1/...` is bypassed. None names an endpoint: 404, never a 500.
    it.each(['//', '//[', '//x/v1/me'])('answers an HTTP request for %s with 404 not_found', async (target) => {
      const reply = await rawRequest(t.url, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(reply.statusLine).toMatch(/^HTTP\/1\.1 404 /);
      expect(JSON.parse(reply.body)).toEqual({ error: { code: 'not_found', message: someMessage } });
    });

    it.each(['//', '//[', '//x/v1/stream'])('refuses an upgrade for %s with 404 and keeps running', async (target) => {
      // Its own server: one that never answers keeps the refused socket open, and closing it would then hang.
      // So it is closed only once it has answered; after a failure the worker's exit takes it down.
      const own = await startServer();
      const upgrade = 'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13';
      const reply = await rawRequest(own.url, `GET ${target} HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n\r\n`, true);
      expect(reply.statusLine).toMatch(/^HTTP\/1\.1 404 /);
      expect((await own.api('GET', '/healthz')).status).toBe(200);
      await own.close();
    });
  });
});

describe('WebSocket bad input', () => {
  let t: TestServer;
  let token: string;
  let users = 0;
  /** A fresh user per test, so per-user limits of one test never touch another. */
  async function freshDevice(): Promise<string> {
    return (await deviceFor(t, `ws-user-${++users}`)).token;
  }

  beforeAll(async () => {
    t = await startServer({ allowedOrigins: ['https://ok.example'], maxConnectionsPerUser: 2 });
    token = await freshDevice();
  });
  afterAll(async () => {
    await t.close();
  });

  describe('before authentication', () => {
    it('answers text that is not JSON with invalid_frame and closes 4500', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send('hello?');
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      expect((await client.closed).code).toBe(CloseCode.badRequest);
    });

    it('answers a binary frame with invalid_frame and closes 4500', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.ws.send(Buffer.from(JSON.stringify({ type: 'hello', v: 1, token })), { binary: true });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      expect((await client.closed).code).toBe(CloseCode.badRequest);
    });

    it('answers a hello of another protocol version with invalid_frame and closes 4500', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send({ type: 'hello', v: 2, token });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      expect((await client.closed).code).toBe(CloseCode.badRequest);
    });

    it('answers a frame other than hello with not_authenticated and closes 4501', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send({ type: 'ping', t: 1 });
      expect(await client.next('error')).toMatchObject({ code: 'not_authenticated' });
      expect((await client.closed).code).toBe(CloseCode.unauthorized);
      expect(client.frames.some((f) => f.type === 'pong')).toBe(false);
    });

    it('answers hello without a token (and no header) with not_authenticated and closes 4501', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send({ type: 'hello', v: 1, since: 0 });
      expect(await client.next('error')).toMatchObject({ code: 'not_authenticated' });
      expect((await client.closed).code).toBe(CloseCode.unauthorized);
    });

    it('ignores ?token= when allowQueryToken is off', async () => {
      const client = await TestClient.open(`${t.wsUrl}?token=${token}`);
      client.send({ type: 'hello', v: 1 });
      expect(await client.next('error')).toMatchObject({ code: 'not_authenticated' });
      expect((await client.closed).code).toBe(CloseCode.unauthorized);
    });

    it('answers hello with a bad token with unauthorized and closes 4501', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send({ type: 'hello', v: 1, token: 'hrld_not-a-real-token' });
      expect(await client.next('error')).toMatchObject({ code: 'unauthorized' });
      expect((await client.closed).code).toBe(CloseCode.unauthorized);
    });

    it('refuses a bad bearer header with 4501', async () => {
      const client = await TestClient.open(t.wsUrl, 'hrld_not-a-real-token');
      expect((await client.closed).code).toBe(CloseCode.unauthorized);
      expect(client.frames.filter((f) => f.type !== 'error' || f.code !== 'unauthorized')).toEqual([]);
    });

    it('refuses app and admin tokens on the stream with 4501, by header and by hello', async () => {
      const app = await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'streamer' } });
      for (const secret of [app.body.token, t.adminToken]) {
        const byHeader = await TestClient.open(t.wsUrl, secret);
        expect((await byHeader.closed).code).toBe(CloseCode.unauthorized);
        expect(byHeader.frames.some((f) => f.type === 'welcome')).toBe(false);
        const byHello = await TestClient.open(t.wsUrl);
        byHello.send({ type: 'hello', v: 1, token: secret });
        expect(await byHello.next('error')).toMatchObject({ code: 'unauthorized' });
        expect((await byHello.closed).code).toBe(CloseCode.unauthorized);
      }
    });

    it('closes 4501 after an auth_timeout error when no frame arrives in time', async () => {
      await withServer({ helloTimeoutMs: 200 }, async (quick) => {
        const client = await TestClient.open(quick.wsUrl);
        expect(await client.next('error')).toMatchObject({ code: 'auth_timeout' });
        expect((await client.closed).code).toBe(CloseCode.unauthorized);
      });
    });

    it('takes a hello that arrived in time even when the event loop stalled past the deadline', async () => {
      await withServer({ helloTimeoutMs: 200 }, async (quick) => {
        const device = await deviceFor(quick, 'stalled');
        const client = await TestClient.open(quick.wsUrl);
        client.send({ type: 'hello', v: 1, token: device.token });
        // The hello is with the kernel; now the server's thread is busy (a long GC, a swapped-out page) past the
        // deadline. When it runs again, its timers come before it reads the socket.
        const stalledUntil = performance.now() + 400;
        while (performance.now() < stalledUntil);
        await client.next('synced');
        expect(client.frames.filter((f) => f.type === 'error')).toEqual([]);
        await client.close();
      });
    });
  });

  describe('after authentication', () => {
    it('answers malformed JSON with invalid_frame and stays open', async () => {
      const client = await session(t, token);
      client.send('{"type":"ping",');
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      await expectAlive(client);
      await client.close();
    });

    it('answers an unknown frame type with invalid_frame and stays open', async () => {
      const client = await session(t, token);
      client.send({ type: 'subscribe', topic: 'deploys' });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      client.send({ seq: 1 });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      await expectAlive(client);
      await client.close();
    });

    it('answers known frames with bad fields with invalid_frame and stays open', async () => {
      const client = await session(t, token);
      const bad = [
        { type: 'sync', since: -1 },
        { type: 'sync' },
        { type: 'ack', seq: 'one' },
        { type: 'read', seqs: [1], upTo: 1 },
        { type: 'read' },
        { type: 'read', seqs: [0] },
        { type: 'ping', t: 'now' },
      ];
      for (const frame of bad) {
        client.send(frame);
        expect(await client.next('error'), JSON.stringify(frame)).toMatchObject({ code: 'invalid_frame' });
      }
      await expectAlive(client);
      await client.close();
    });

    it('answers a binary frame with invalid_frame and stays open', async () => {
      const client = await session(t, token);
      client.ws.send(Buffer.from(JSON.stringify({ type: 'ping', t: 1 })), { binary: true });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_frame' });
      await expectAlive(client);
      await client.close();
    });

    it('answers a second hello with invalid_state and stays open', async () => {
      const client = await session(t, token);
      client.send({ type: 'hello', v: 1, token, since: 0 });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_state' });
      await expectAlive(client);
      expect(client.frames.filter((f) => f.type === 'welcome')).toHaveLength(1);
      await client.close();
    });

    it('answers a hello sent right behind the first one with invalid_state', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send({ type: 'hello', v: 1, token });
      client.send({ type: 'hello', v: 1, token });
      expect(await client.next('error')).toMatchObject({ code: 'invalid_state' });
      await expectAlive(client);
      expect(client.frames.filter((f) => f.type === 'welcome')).toHaveLength(1);
      expect(client.frames.filter((f) => f.type === 'synced')).toHaveLength(1);
      await client.close();
    });

    it('closes 1009 on a frame above maxPayload', async () => {
      const client = await session(t, token);
      client.send({ type: 'ping', t: 1, pad: 'x'.repeat(17 * 1024) });
      expect((await client.closed).code).toBe(CloseCode.messageTooBig);
    });

    it('closes 1009 on an oversized frame before authentication too', async () => {
      const client = await TestClient.open(t.wsUrl);
      client.send({ type: 'hello', v: 1, token: 'x'.repeat(17 * 1024) });
      expect((await client.closed).code).toBe(CloseCode.messageTooBig);
    });

    it('closes 1007 on a text frame that is not UTF-8', async () => {
      const client = await session(t, token);
      client.ws.send(Buffer.from([0xc3, 0x28]), { binary: false });
      expect((await client.closed).code).toBe(CloseCode.invalidPayload);
    });
  });

  describe('upgrade checks and limits', () => {
    it('refuses a browser origin that is not allowed with 403 origin_not_allowed', async () => {
      const refused = await refusedUpgrade(t.wsUrl, { origin: 'https://evil.example', headers: { authorization: `Bearer ${token}` } });
      expect(refused).toEqual({ status: 403, body: { error: { code: 'origin_not_allowed', message: someMessage } } });
      // A look-alike is not the allowed origin either.
      expect((await refusedUpgrade(t.wsUrl, { origin: 'https://ok.example.evil.example' })).status).toBe(403);
    });

    it('accepts an allowed origin', async () => {
      const client = await TestClient.open(t.wsUrl, undefined, { origin: 'https://ok.example' });
      client.send({ type: 'hello', v: 1, token });
      expect(await client.next('welcome')).toMatchObject({ v: 1 });
      await client.close();
    });

    it('closes the connection above maxConnectionsPerUser with 4002, and admits one again after a close', async () => {
      const device = await freshDevice();
      const first = await session(t, device);
      const second = await session(t, device);
      const third = await TestClient.open(t.wsUrl);
      third.send({ type: 'hello', v: 1, token: device });
      expect(await third.next('error')).toMatchObject({ code: 'too_many_connections' });
      expect((await third.closed).code).toBe(CloseCode.tooManyConnections);
      const byHeader = await TestClient.open(t.wsUrl, device);
      expect((await byHeader.closed).code).toBe(CloseCode.tooManyConnections);

      await first.close();
      const again = await session(t, device);
      await expectAlive(second);
      await Promise.all([second.close(), again.close()]);
    });
  });
});

describe('secrets', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  let t: TestServer;
  let token: string;

  beforeEach(() => {
    lines.length = 0;
  });
  beforeAll(async () => {
    t = await startServer({ allowQueryToken: true, logLevel: 'trace' }, { logger: pino({ level: 'trace' }, sink) });
    token = (await deviceFor(t, 'erin')).token;
  });
  afterAll(async () => {
    await t.close();
  });

  function expectNotLogged(...secrets: string[]): void {
    expect(lines.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(lines.filter((line) => line.includes(secret))).toEqual([]);
  }

  it('accepts ?token= when allowed and never logs it', async () => {
    const client = await TestClient.open(`${t.wsUrl}?token=${token}`);
    client.send({ type: 'hello', v: 1 });
    expect(await client.next('welcome')).toMatchObject({ user: { name: 'erin' } });
    await client.close();
    expect(lines.some((line) => line.includes('stream connected'))).toBe(true);
    expectNotLogged(token);
  });

  it('never logs a bad query token, by itself or among other parameters', async () => {
    const bad = 'hrld_bad-query-token-' + 'q'.repeat(20);
    for (const query of [`token=${bad}`, `v=1&token=${bad}&x=y`, `access_token=${bad}`]) {
      const client = await TestClient.open(`${t.wsUrl}?${query}`);
      expect((await client.closed).code).toBe(CloseCode.unauthorized);
    }
    expectNotLogged(bad);
  });

  it('neither accepts nor logs a token given in a percent-encoded parameter name', async () => {
    // Only the literal `token` parameter carries a token; a look-alike such as `%74oken` is ignored, and logs keep no query values.
    const client = await TestClient.open(`${t.wsUrl}?%74oken=${token}`);
    client.send({ type: 'hello', v: 1 });
    expect(await client.next('error')).toMatchObject({ code: 'not_authenticated' });
    expect((await client.closed).code).toBe(CloseCode.unauthorized);
    expectNotLogged(token);
  });

  it('never logs a token sent in hello or in a header, good or bad', async () => {
    const bad = 'hrld_bad-hello-token-' + 'h'.repeat(20);
    const good = await session(t, token);
    await good.close();
    const refused = await TestClient.open(t.wsUrl);
    refused.send({ type: 'hello', v: 1, token: bad });
    expect((await refused.closed).code).toBe(CloseCode.unauthorized);
    const byHeader = await TestClient.open(t.wsUrl, bad);
    expect((await byHeader.closed).code).toBe(CloseCode.unauthorized);
    expectNotLogged(token, bad);
  });

  it('keeps tokens out of 401 messages and out of the request log', async () => {
    const bad = 'hrld_bad-http-token-' + 'w'.repeat(20);
    for (const path of ['/v1/me', `/v1/inbox?token=${bad}`, `/v1/me?access_token=${token}`]) {
      const reply = await t.api('GET', path, { token: bad });
      expectError(reply, 401, 'unauthorized');
      expect(errorMessage(reply)).not.toContain(bad);
    }
    const forbidden = await t.api('POST', '/v1/notifications', { token, body: { to: { users: ['erin'] }, title: 'x' } });
    expectError(forbidden, 403, 'forbidden');
    expect(JSON.stringify(forbidden.body)).not.toContain(token);
    expect(lines.some((line) => line.includes('request refused'))).toBe(true);
    expectNotLogged(token, bad, t.adminToken);
  });
});
