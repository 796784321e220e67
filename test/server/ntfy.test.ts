import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Limits } from '@herald/protocol';
import { TestClient, deviceFor, startServer, type TestServer } from '../helpers.js';

let t: TestServer;
let alice: { token: string; userId: number };
let app: string;
let live: TestClient;

interface Reply {
  status: number;
  headers: Headers;
  body: unknown;
}

/** A quick publish the way ntfy's users send it: a plain-text body and headers, no JSON. */
async function quick(path: string, options: { body?: string | Buffer; headers?: Record<string, string>; token?: string | null } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...options.headers };
  const token = options.token === undefined ? app : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const response = await fetch(t.url + path, { method: 'POST', headers, body: options.body ?? null });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
}

function expectError(reply: Reply, status: number, code: string): void {
  expect(reply.body, JSON.stringify(reply.body)).toEqual({ error: { code, message: expect.any(String) as string } });
  expect(reply.status).toBe(status);
}

/** UTF-8 bytes as the Latin-1 string Node and fetch put on the wire byte for byte, as curl sends a UTF-8 header. */
function rawUtf8(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

beforeAll(async () => {
  t = await startServer({ maxBodyBytes: 8192 });
  alice = await deviceFor(t, 'alice');
  await deviceFor(t, 'bob');
  for (const topic of ['backups', 'ci', 'alerts']) expect((await t.api('PUT', `/v1/me/topics/${topic}`, { token: alice.token })).status).toBe(200);
  app = (await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'cron' } })).body.token;
  live = await TestClient.open(t.wsUrl, alice.token);
  live.send({ type: 'hello', v: 1 });
  await live.next('synced');
});

afterAll(async () => {
  await live.close();
  await t.close();
});

describe('POST /<topic> (ntfy-style quick publish)', () => {
  it("publishes the body to the topic's subscribers with Title, Priority and Tags, and answers like POST /v1/notifications", async () => {
    const reply = await quick('/backups', {
      body: 'Nightly backup finished: 42 GB\n',
      headers: { 'content-type': 'text/plain', title: 'Backup done', priority: 'high', tags: 'floppy_disk, nightly,,' },
    });
    expect(reply.status).toBe(202);
    expect(reply.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/) as string, recipients: 1 });
    const frame = await live.next('notification');
    expect(frame).toMatchObject({
      id: (reply.body as { id: string }).id,
      topic: 'backups',
      title: 'Backup done',
      body: 'Nightly backup finished: 42 GB',
      priority: 4,
      tags: ['floppy_disk', 'nightly'],
      url: null,
      icon: null,
      actions: [],
    });
    const inbox = await t.api<{ items: { id: string }[] }>('GET', '/v1/inbox?topic=backups', { token: alice.token });
    expect(inbox.body.items.map((item) => item.id)).toEqual([frame.id]);
  });

  it('defaults like ntfy: the topic as title, "triggered" for an empty body, priority 3, no tags', async () => {
    expect((await quick('/ci')).status).toBe(202);
    expect(await live.next('notification')).toMatchObject({ topic: 'ci', title: 'ci', body: 'triggered', priority: 3, tags: [] });
  });

  it("maps ntfy's priorities 1–5 and min/low/default/high/urgent/max onto Herald's 1–5", async () => {
    const cases: [string, number][] = [
      ['1', 1],
      ['min', 1],
      ['2', 2],
      ['low', 2],
      ['3', 3],
      ['default', 3],
      ['4', 4],
      ['high', 4],
      ['5', 5],
      ['urgent', 5],
      ['MAX', 5],
    ];
    for (const [priority, expected] of cases) {
      expect((await quick('/alerts', { body: priority, headers: { priority } })).status).toBe(202);
      expect(await live.next('notification'), priority).toMatchObject({ body: priority, priority: expected });
    }
  });

  it("accepts ntfy's aliases (X-Title, X-Priority, X-Tags, t, p, ta), query parameters, Click and Icon, and UTF-8 headers", async () => {
    await quick('/alerts', { body: 'one', headers: { 'x-title': 'X title', 'x-priority': 'urgent', 'x-tags': 'a,b' } });
    expect(await live.next('notification')).toMatchObject({ title: 'X title', body: 'one', priority: 5, tags: ['a', 'b'] });
    await quick('/alerts', { body: 'two', headers: { t: 'short', p: 'min', ta: 'c' } });
    expect(await live.next('notification')).toMatchObject({ title: 'short', body: 'two', priority: 1, tags: ['c'] });
    await quick('/alerts?title=From%20query&p=4&tags=q1,q2&m=from-query');
    expect(await live.next('notification')).toMatchObject({ title: 'From query', body: 'from-query', priority: 4, tags: ['q1', 'q2'] });
    await quick('/alerts', {
      body: 'three',
      headers: { title: rawUtf8('Größe ✓'), click: 'https://example.com/run/7', icon: 'https://example.com/icon.png' },
    });
    expect(await live.next('notification')).toMatchObject({ title: 'Größe ✓', body: 'three', url: 'https://example.com/run/7', icon: 'https://example.com/icon.png' });
  });

  it('honours Idempotency-Key like POST /v1/notifications', async () => {
    const first = await quick('/ci', { body: 'deploy 7', headers: { 'idempotency-key': 'deploy-7' } });
    const again = await quick('/ci', { body: 'deploy 7', headers: { 'idempotency-key': 'deploy-7' } });
    expect(first.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expectError(await quick('/ci', { body: 'deploy 8', headers: { 'idempotency-key': 'deploy-7' } }), 422, 'idempotency_key_reused');
    expect(await live.next('notification')).toMatchObject({ body: 'deploy 7' });
    const inbox = await t.api<{ items: { body: string }[] }>('GET', '/v1/inbox?topic=ci', { token: alice.token });
    expect(inbox.body.items.filter((item) => item.body === 'deploy 7')).toHaveLength(1);
  });

  it('enforces the publish limits with the same error codes', async () => {
    expectError(await quick('/alerts', { headers: { title: 'x'.repeat(Limits.titleMax + 1) } }), 400, 'invalid_title');
    expect((await quick('/alerts', { headers: { title: 'x'.repeat(Limits.titleMax) } })).status).toBe(202);
    expectError(await quick('/alerts', { body: 'x'.repeat(Limits.bodyMax + 1) }), 400, 'invalid_body');
    expect((await quick('/alerts', { body: 'x'.repeat(Limits.bodyMax) })).status).toBe(202);
    expectError(await quick('/alerts', { body: Buffer.from([0x68, 0xff, 0xfe]) }), 400, 'invalid_body');
    const tags = Array.from({ length: Limits.tagsMax + 1 }, (_, i) => `t${i}`);
    expectError(await quick('/alerts', { headers: { tags: tags.join(',') } }), 400, 'invalid_tags');
    expectError(await quick('/alerts', { headers: { tags: 'x'.repeat(Limits.tagMax + 1) } }), 400, 'invalid_tags');
    for (const priority of ['0', '6', '2.5', 'loud']) expectError(await quick('/alerts', { headers: { priority } }), 400, 'invalid_priority');
    expectError(await quick('/alerts', { headers: { click: 'javascript:alert(1)' } }), 400, 'invalid_url');
    expectError(await quick('/alerts', { headers: { icon: 'ftp://example.com/i.png' } }), 400, 'invalid_url');
    expectError(await quick('/alerts', { body: 'x'.repeat(8193) }), 413, 'payload_too_large');
    expectError(await quick('/alerts', { body: '--b\r\n\r\nx\r\n--b--\r\n', headers: { 'content-type': 'multipart/form-data; boundary=b' } }), 415, 'unsupported_media_type');
    expectError(await quick('/alerts', { body: 'x', headers: { 'idempotency-key': 'k'.repeat(256) } }), 400, 'invalid_request');
    // Everything above that was refused left nothing behind: only the two maximal publishes arrived.
    expect(await live.notifications(2)).toMatchObject([{ title: 'x'.repeat(Limits.titleMax) }, { body: 'x'.repeat(Limits.bodyMax) }]);
  });

  it('needs an app or admin token, as Bearer or as the Basic password (curl -u :TOKEN)', async () => {
    const noToken = await quick('/alerts', { body: 'x', token: null });
    expectError(noToken, 401, 'unauthorized');
    expect(noToken.headers.get('www-authenticate')).toBe('Bearer');
    expectError(await quick('/alerts', { body: 'x', token: 'hrld_not-a-real-token' }), 401, 'unauthorized');
    expectError(await quick('/alerts', { body: 'x', token: alice.token }), 403, 'forbidden');
    const basic = (credentials: string) => ({ authorization: `Basic ${Buffer.from(credentials).toString('base64')}` });
    expectError(await quick('/alerts', { body: 'x', token: null, headers: basic(':hrld_wrong') }), 401, 'unauthorized');
    expectError(await quick('/alerts', { body: 'x', token: null, headers: basic(`${app}:`) }), 401, 'unauthorized');
    expect((await quick('/alerts', { body: 'basic', token: null, headers: basic(`:${app}`) })).status).toBe(202);
    expect((await quick('/alerts', { body: 'admin', token: t.adminToken })).status).toBe(202);
    expect(await live.notifications(2)).toMatchObject([{ body: 'basic' }, { body: 'admin' }]);
  });

  it("limits a topic-scoped app token to its topics with topic_not_allowed", async () => {
    const scoped = (await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'ci-only', topics: ['ci'] } })).body.token;
    expectError(await quick('/alerts', { body: 'x', token: scoped }), 403, 'topic_not_allowed');
    expect(await quick('/ci', { body: 'scoped', token: scoped })).toMatchObject({ status: 202, body: { recipients: 1 } });
    expect(await live.next('notification')).toMatchObject({ topic: 'ci', body: 'scoped' });
  });

  it('reaches only subscribers: a topic nobody subscribes to has 0 recipients', async () => {
    expect(await quick('/nobody-here', { body: 'x' })).toMatchObject({ status: 202, body: { recipients: 0 } });
  });

  it('never shadows another route, and refuses paths that are not topic names', async () => {
    expectError(await quick('/healthz', { body: 'x' }), 405, 'method_not_allowed');
    expectError(await quick('/metrics', { body: 'x' }), 405, 'method_not_allowed');
    expectError(await quick('/', { body: 'x' }), 405, 'method_not_allowed');
    expectError(await quick('/v1/nope', { body: 'x' }), 404, 'not_found');
    expectError(await quick('/alerts/extra', { body: 'x' }), 404, 'not_found');
    const get = await fetch(`${t.url}/alerts`, { headers: { authorization: `Bearer ${app}` } });
    expectError({ status: get.status, headers: get.headers, body: await get.json() }, 404, 'not_found');
    expectError(await quick('/v1', { body: 'x' }), 400, 'invalid_topic');
    expectError(await quick('/bad%20topic', { body: 'x' }), 400, 'invalid_topic');
    expectError(await quick(`/${'a'.repeat(Limits.topicMax + 1)}`, { body: 'x' }), 400, 'invalid_topic');
    expect((await t.api('GET', '/healthz')).status).toBe(200);
    expect((await t.api('POST', '/v1/notifications', { body: { to: { topics: ['alerts'] }, title: 'json still works' } })).status).toBe(202);
    expect(await live.next('notification')).toMatchObject({ title: 'json still works' });
  });
});
