import { createServer as createHttpServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { WebSocket } from 'ws';
import type { ConfigInput } from '../../server/src/index.js';
import { TestClient, deviceFor, publish, startServer, type TestServer } from '../helpers.js';

let t: TestServer;
let clock = Date.now();
const cleanups: (() => Promise<unknown>)[] = [];

async function server(overrides: ConfigInput = {}): Promise<TestServer> {
  clock = Date.now();
  t = await startServer(overrides, { now: () => clock });
  cleanups.push(() => t.close());
  return t;
}
async function live(token: string, hello: object = { type: 'hello', v: 1 }): Promise<TestClient> {
  const client = await TestClient.open(t.wsUrl, token);
  cleanups.unshift(() => client.close());
  client.send(hello);
  await client.next('synced');
  return client;
}
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('targeting', () => {
  it('fans out to topic subscribers and all users, once per user', async () => {
    await server();
    const alice = await deviceFor(t, 'alice');
    const bob = await deviceFor(t, 'bob');
    await deviceFor(t, 'carol');
    expect((await t.api('PUT', '/v1/me/topics/deploys', { token: alice.token })).body).toEqual({ topics: ['deploys'] });
    await t.api('PUT', '/v1/me/topics/deploys', { token: bob.token });
    await t.api('PUT', '/v1/me/topics/alerts', { token: bob.token });
    expect((await t.api('GET', '/v1/me', { token: bob.token })).body).toEqual({ user: { id: bob.userId, name: 'bob' }, topics: ['alerts', 'deploys'] });

    const aliceLive = await live(alice.token);
    const bobLive = await live(bob.token);
    const both = await publish(t, { to: { topics: ['deploys', 'alerts'], users: ['alice'] }, title: 'v2 shipped' });
    expect(both.body.recipients).toBe(2);
    expect(await aliceLive.next('notification')).toMatchObject({ title: 'v2 shipped', seq: 1 });
    expect((await bobLive.next('notification')).topic).toMatch(/^(deploys|alerts)$/);

    expect((await publish(t, { to: { all: true }, title: 'maintenance' })).body.recipients).toBe(3);
    expect((await t.api('DELETE', '/v1/me/topics/deploys', { token: alice.token })).status).toBe(200);
    expect((await t.api('DELETE', '/v1/me/topics/deploys', { token: alice.token })).status).toBe(404);
    expect((await publish(t, { to: { topics: ['deploys'] }, title: 'bob only' })).body.recipients).toBe(1);
    expect((await publish(t, { to: { topics: ['nobody-here'] }, title: 'no one' })).body.recipients).toBe(0);
  });

  it('lets an app token publish only to its topics', async () => {
    await server();
    const alice = await deviceFor(t, 'alice');
    await t.api('PUT', '/v1/me/topics/ci', { token: alice.token });
    const app = await t.api<{ token: string; kind: string; topics: string[] }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'ci-bot', topics: ['ci'] } });
    expect(app.body).toMatchObject({ kind: 'app', name: 'ci-bot', topics: ['ci'] });
    const ok = await t.api<{ recipients: number }>('POST', '/v1/notifications', { token: app.body.token, body: { to: { topics: ['ci'] }, title: 'green' } });
    expect(ok).toMatchObject({ status: 202, body: { recipients: 1 } });
  });
});

describe('inbox and state', () => {
  it('replaces by key, retracts, deletes and pages with filters', async () => {
    await server();
    const { token } = await deviceFor(t, 'alice');
    await t.api('PUT', '/v1/me/topics/builds', { token });
    const phone = await live(token);
    const first = await publish(t, { to: { users: ['alice'] }, title: 'build 1 running', key: 'build-1' });
    const second = await publish(t, { to: { users: ['alice'] }, title: 'build 1 passed', key: 'build-1' });
    const [a, b] = await phone.notifications(2);
    expect([a?.key, b?.key, b?.title]).toEqual(['build-1', 'build-1', 'build 1 passed']);
    let inbox = await t.api<{ items: { id: string; title: string }[] }>('GET', '/v1/inbox', { token });
    expect(inbox.body.items.map((i) => i.id)).toEqual([second.body.id]);
    expect(first.body.id).not.toBe(second.body.id);

    const retracted = await publish(t, { to: { users: ['alice'] }, title: 'oops' });
    const seq = (await phone.next('notification')).seq;
    expect((await t.api('DELETE', `/v1/notifications/${retracted.body.id}`)).status).toBe(204);
    expect(await phone.next('deleted')).toEqual({ type: 'deleted', seqs: [seq] });
    expect((await t.api('DELETE', `/v1/notifications/${retracted.body.id}`)).status).toBe(404);

    for (let i = 0; i < 6; i++) await publish(t, { to: i % 2 ? { topics: ['builds'] } : { users: ['alice'] }, title: i % 3 ? `deploy ${i}` : `Report ${i}`, priority: 2 });
    inbox = await t.api('GET', '/v1/inbox?topic=builds', { token });
    expect(inbox.body.items.map((i) => i.title)).toEqual(['deploy 5', 'Report 3', 'deploy 1']);
    inbox = await t.api('GET', '/v1/inbox?q=report', { token });
    expect(inbox.body.items.map((i) => i.title)).toEqual(['Report 3', 'Report 0']);
    const page1 = await t.api<{ items: { seq: number }[]; head: number; unread: number }>('GET', '/v1/inbox?limit=3', { token });
    expect(page1.body.head).toBe(9);
    expect(page1.body.unread).toBe(7);
    const page2 = await t.api<{ items: { seq: number }[] }>('GET', `/v1/inbox?limit=3&before=${page1.body.items.at(-1)?.seq ?? 0}`, { token });
    expect([...page1.body.items, ...page2.body.items].map((i) => i.seq)).toEqual([9, 8, 7, 6, 5, 4]);

    expect((await t.api('POST', '/v1/inbox/read', { token, body: { upTo: 8 } })).body).toEqual({ unread: 1 });
    expect(await phone.next('read')).toEqual({ type: 'read', upTo: 8, unread: 1 });
    inbox = await t.api('GET', '/v1/inbox?unread=1', { token });
    expect(inbox.body.items.map((i) => i.title)).toEqual(['deploy 5']);
    expect((await t.api('DELETE', '/v1/inbox/9', { token })).status).toBe(204);
    expect(await phone.next('deleted')).toEqual({ type: 'deleted', seqs: [9] });
    expect((await t.api('DELETE', '/v1/inbox/9', { token })).status).toBe(404);
  });

  it('holds deliverAt notifications until their time, even across a restart', async () => {
    const data = (await server({ scheduleIntervalMs: 20 })).data;
    const { token } = await deviceFor(t, 'alice');
    const at = new Date(clock + 3_600_000).toISOString();
    const scheduled = await publish(t, { to: { users: ['alice'] }, title: 'standup', deliverAt: at });
    expect(scheduled.body).toMatchObject({ recipients: 1, deliverAt: at });
    expect((await t.api<{ items: unknown[] }>('GET', '/v1/inbox', { token })).body.items).toEqual([]);
    await t.server.close();

    t = await startServer({ data, scheduleIntervalMs: 20 }, { now: () => clock });
    cleanups.push(() => t.close());
    const phone = await live(token);
    clock += 3_600_000;
    expect(await phone.next('notification')).toMatchObject({ id: scheduled.body.id, title: 'standup', seq: 1 });
  });

  it('publishes batches atomically and answers each id', async () => {
    await server();
    await deviceFor(t, 'alice');
    const notifications = Array.from({ length: 100 }, (_, i) => ({ to: { users: ['alice'] }, title: `n${i}` }));
    const batch = await t.api<{ notifications: { id: string; recipients: number }[] }>('POST', '/v1/notifications/batch', { body: { notifications } });
    expect(batch.status).toBe(202);
    expect(batch.body.notifications).toHaveLength(100);
    expect(new Set(batch.body.notifications.map((n) => n.id)).size).toBe(100);
  });
});

describe('session', () => {
  it('starts live-only when a header-authenticated client says nothing, keeping what arrives meanwhile', async () => {
    await server({ liveOnlyAfterMs: 300 });
    const { token } = await deviceFor(t, 'alice');
    await publish(t, { to: { users: ['alice'] }, title: 'before connect' });
    const client = await TestClient.open(t.wsUrl, token);
    cleanups.unshift(() => client.close());
    await publish(t, { to: { users: ['alice'] }, title: 'during the wait' });
    // The session starts from the head it read once subscribed. Whether that publish committed before (it is then
    // part of the head, and in the inbox) or after (it is then sent live) is a race on PostgreSQL and Redis; it is
    // never lost to the session and never sent twice.
    const { head } = await client.next('welcome');
    expect([1, 2]).toContain(head);
    expect(await client.next('synced')).toEqual({ type: 'synced', head, replayed: 0, gap: false, liveOnly: true });
    await publish(t, { to: { users: ['alice'] }, title: 'after the wait' });
    await client.until((frames) => frames.some((f) => f.type === 'notification' && f.seq === 3));
    const live = client.frames.flatMap((f) => (f.type === 'notification' ? [[f.seq, f.title]] : []));
    expect(live).toEqual([...(head === 1 ? [[2, 'during the wait']] : []), [3, 'after the wait']]);
  });

  it('answers a hello that arrives after the live-only start with a replay from its since', async () => {
    await server({ liveOnlyAfterMs: 100 });
    const { token } = await deviceFor(t, 'alice');
    for (const title of ['one', 'two', 'three']) await publish(t, { to: { users: ['alice'] }, title });
    const client = await TestClient.open(t.wsUrl, token);
    cleanups.unshift(() => client.close());
    expect(await client.next('synced')).toEqual({ type: 'synced', head: 3, replayed: 0, gap: false, liveOnly: true });
    await publish(t, { to: { users: ['alice'] }, title: 'four' });
    await client.until((frames) => frames.some((f) => f.type === 'notification' && f.seq === 4));
    // The device's hello, held up on its way: it holds seq 1.
    client.send({ type: 'hello', v: 1, since: 1 });
    expect(await client.next('synced')).toEqual({ type: 'synced', head: 4, replayed: 3, gap: false });
    const seqs = client.frames.flatMap((f) => (f.type === 'notification' ? [f.seq] : []));
    expect(seqs).toEqual([4, 2, 3, 4]);
    client.send({ type: 'hello', v: 1, since: 4 });
    expect(await client.next('error')).toMatchObject({ code: 'invalid_state' });
  });

  it('answers ping, replays on sync and sends idle heartbeats', async () => {
    await server({ heartbeatMs: 150 });
    const { token } = await deviceFor(t, 'alice');
    await publish(t, { to: { users: ['alice'] }, title: 'one' });
    const client = await live(token, { type: 'hello', v: 1 });
    client.send({ type: 'ping', t: 42 });
    expect(await client.next('pong')).toEqual({ type: 'pong', t: 42 });
    client.send({ type: 'sync', since: 0 });
    expect(await client.next('notification')).toMatchObject({ seq: 1, title: 'one' });
    expect(await client.next('synced')).toEqual({ type: 'synced', head: 1, replayed: 1, gap: false });
    clock += 150;
    expect(await client.next('heartbeat')).toEqual({ type: 'heartbeat', head: 1 });
  });

  it('pings every socket and cuts off one that stops answering', async () => {
    await server({ pingIntervalMs: 200 });
    const { token } = await deviceFor(t, 'alice');
    const healthy = await live(token);
    const mute = await TestClient.open(t.wsUrl, token, { autoPong: false });
    cleanups.unshift(() => mute.close());
    mute.send({ type: 'hello', v: 1 });
    await mute.next('synced');
    let pings = 0;
    const pinged = new Promise<void>((resolve) => healthy.ws.on('ping', () => ++pings === 3 && resolve()));
    expect((await mute.closed).code).toBe(1006);
    await pinged;
    expect(healthy.ws.readyState).toBe(WebSocket.OPEN);
  });

  it("sends an idle device's ping in the same write as its heartbeat", async () => {
    await server({ heartbeatMs: 150, pingIntervalMs: 150 });
    const { token } = await deviceFor(t, 'alice');
    const ws = new WebSocket(t.wsUrl, { headers: { authorization: `Bearer ${token}` } });
    // ws parses a chunk and emits its events before this listener runs: `chunks` numbers the chunk being parsed.
    let chunks = 0;
    ws.once('upgrade', (res) => res.socket.on('data', () => chunks++));
    const client = TestClient.wrap(ws);
    cleanups.unshift(() => client.close());
    const pingChunks: number[] = [];
    ws.on('ping', () => pingChunks.push(chunks));
    await once(ws, 'open');
    client.send({ type: 'hello', v: 1 });
    await client.next('synced');
    const heartbeatChunk = new Promise<number>((resolve) => ws.on('message', (data: Buffer) => data.toString().includes('"heartbeat"') && resolve(chunks)));
    clock += 150;
    expect(pingChunks).toContain(await heartbeatChunk);
  });

  it('closes a socket with 4501 when its token expires', async () => {
    await server({ heartbeatMs: 150 });
    await deviceFor(t, 'alice');
    const short = await t.api<{ token: string; expiresAt: string }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'alice', expiresIn: 60 } });
    expect(Date.parse(short.body.expiresAt)).toBe(clock + 60_000);
    const client = await live(short.body.token);
    clock += 61_000;
    expect((await client.closed).code).toBe(4501);
    expect((await t.api('GET', '/v1/me', { token: short.body.token })).status).toBe(401);
  });
});

describe('login', () => {
  it('trades a user name and password for a device token, and nothing else', async () => {
    await server({ rateLimits: { login: { perSecond: 0.001, burst: 4 } } });
    await t.api('POST', '/v1/users', { body: { name: 'alice', password: 'correct horse' } });
    await t.api('POST', '/v1/users', { body: { name: 'nopass' } });
    const login = await t.api<{ token: string; user: { name: string } }>('POST', '/v1/login', { token: '', body: { name: 'alice', password: 'correct horse', label: 'laptop' } });
    expect(login.status).toBe(200);
    expect(login.body.user.name).toBe('alice');
    expect((await t.api('GET', '/v1/me', { token: login.body.token })).status).toBe(200);
    const tokens = await t.api<{ tokens: { label: string; user: string }[] }>('GET', '/v1/tokens');
    expect(tokens.body.tokens).toContainEqual(expect.objectContaining({ label: 'laptop', user: 'alice' }));
    for (const body of [
      { name: 'alice', password: 'wrong' },
      { name: 'ghost', password: 'whatever' },
      { name: 'nopass', password: 'anything' },
    ]) {
      const refused = await t.api<{ error: { code: string; message: string } }>('POST', '/v1/login', { token: '', body });
      expect(refused.status).toBe(401);
      expect(refused.body.error).toEqual({ code: 'unauthorized', message: 'wrong user name or password' });
    }
    expect((await t.api('POST', '/v1/login', { token: '', body: { name: 'alice', password: 'correct horse' } })).status).toBe(429);
  });
});

describe('JWT device auth', () => {
  it('accepts an HS256 JWT for its sub and creates the user', async () => {
    const secret = 'k'.repeat(48);
    await server({ jwt: { secret, issuer: 'https://example.com' } });
    const sign = (iss: string) =>
      new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('newcomer').setIssuer(iss).setExpirationTime('10m').sign(new TextEncoder().encode(secret));
    const client = await live(await sign('https://example.com'));
    expect(client.frames[0]).toMatchObject({ type: 'welcome', user: { name: 'newcomer' } });
    expect((await publish(t, { to: { users: ['newcomer'] }, title: 'hi' })).body.recipients).toBe(1);
    expect(await client.next('notification')).toMatchObject({ title: 'hi' });
    const wrongIssuer = await TestClient.open(t.wsUrl, await sign('https://evil.example'));
    expect((await wrongIssuer.closed).code).toBe(4501);
  });

  it('a JWT verified before still expires on time, and a tampered copy is refused', async () => {
    const secret = 'k'.repeat(48);
    await server({ jwt: { secret } });
    const exp = Math.floor(clock / 1000) + 60;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('roamer').setExpirationTime(exp).sign(new TextEncoder().encode(secret));
    // The second use is answered from the cache of verified tokens.
    for (let i = 0; i < 2; i++) expect((await t.api('GET', '/v1/me', { token })).body).toMatchObject({ user: { name: 'roamer' } });
    const [head, payload] = token.split('.');
    const forged = `${head}.${payload}.${'A'.repeat(43)}`;
    expect((await t.api('GET', '/v1/me', { token: forged })).status).toBe(401);
    clock = exp * 1000;
    expect((await t.api('GET', '/v1/me', { token })).status).toBe(401);
  });

  it('accepts a JWT signed by a key from the JWKS URL', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    const keyServer: Server = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)));
    keyServer.listen(0, '127.0.0.1');
    await once(keyServer, 'listening');
    cleanups.push(() => new Promise((resolve) => keyServer.close(resolve)));
    await server({ jwt: { jwksUrl: `http://127.0.0.1:${(keyServer.address() as AddressInfo).port}/jwks.json` } });
    const sign = (key: Parameters<SignJWT['sign']>[0]) => new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setSubject('sso-user').setExpirationTime('10m').sign(key);
    expect((await t.api('GET', '/v1/me', { token: await sign(privateKey) })).body).toMatchObject({ user: { name: 'sso-user' } });
    expect((await t.api('GET', '/v1/me', { token: await sign(other.privateKey) })).status).toBe(401);
  });
});
