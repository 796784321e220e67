import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TestClient, deviceFor, publish, startServer, type TestServer } from '../helpers.js';

let t: TestServer;
let clock = Date.now();
const clients: TestClient[] = [];
async function open(token: string): Promise<TestClient> {
  const client = await TestClient.open(t.wsUrl, token);
  clients.push(client);
  return client;
}

beforeEach(async () => {
  clock = Date.now();
  t = await startServer({}, { now: () => clock });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await t.close();
});

describe('delivery', () => {
  it('delivers to every device of the user and syncs read state between them', async () => {
    const { token } = await deviceFor(t, 'alice');
    const laptop = await open(token);
    const phone = await open(token);
    laptop.send({ type: 'hello', v: 1 });
    phone.send({ type: 'hello', v: 1 });
    await Promise.all([laptop.next('synced'), phone.next('synced')]);

    const accepted = await publish(t, { to: { users: ['alice'] }, title: 'Build failed', body: 'main is red', priority: 4 });
    expect(accepted.status).toBe(202);
    expect(accepted.body.recipients).toBe(1);
    const [a, b] = await Promise.all([laptop.next('notification'), phone.next('notification')]);
    expect(a).toMatchObject({ seq: 1, id: accepted.body.id, title: 'Build failed', body: 'main is red', priority: 4, read: false });
    expect(b).toEqual(a);

    await publish(t, { to: { users: ['alice'] }, title: 'second' });
    await Promise.all([laptop.next('notification'), phone.next('notification')]);
    laptop.send({ type: 'read', seqs: [1] });
    const [onPhone, onLaptop] = await Promise.all([phone.next('read'), laptop.next('read')]);
    expect(onPhone).toEqual({ type: 'read', seqs: [1], unread: 1 });
    expect(onLaptop).toEqual(onPhone);

    const inbox = await t.api<{ unread: number; items: { seq: number; read: boolean }[] }>('GET', '/v1/inbox', { token });
    expect(inbox.body.unread).toBe(1);
    expect(inbox.body.items.map((i) => [i.seq, i.read])).toEqual([
      [2, false],
      [1, true],
    ]);
  });

  it('replays exactly what an offline device missed, in order, then synced', async () => {
    const { token } = await deviceFor(t, 'bob');
    const first = await open(token);
    first.send({ type: 'hello', v: 1, since: 0 });
    expect(await first.next('synced')).toEqual({ type: 'synced', head: 0, replayed: 0, gap: false });
    await first.close();

    const ids: string[] = [];
    for (let i = 0; i < 500; i++) ids.push((await publish(t, { to: { users: ['bob'] }, title: `n${i}` })).body.id);

    const again = await open(token);
    again.send({ type: 'hello', v: 1, since: 0 });
    expect(await again.next('welcome')).toMatchObject({ v: 1, user: { name: 'bob' }, head: 500 });
    const synced = await again.next('synced');
    const replayed = again.frames.filter((f) => f.type === 'notification');
    expect(replayed.map((f) => f.seq)).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(replayed.map((f) => f.id)).toEqual(ids);
    expect(synced).toEqual({ type: 'synced', head: 500, replayed: 500, gap: false });
  });

  it('replays only what comes after since', async () => {
    const { token } = await deviceFor(t, 'carol');
    for (let i = 0; i < 5; i++) await publish(t, { to: { users: ['carol'] }, title: `n${i}` });
    const client = await open(token);
    client.send({ type: 'hello', v: 1, since: 3 });
    await client.next('synced');
    expect(client.frames.filter((f) => f.type === 'notification').map((f) => f.seq)).toEqual([4, 5]);
  });

  it('resends everything, flagged as a gap, to a device whose cursor is beyond the head', async () => {
    const { token } = await deviceFor(t, 'hank');
    await publish(t, { to: { users: ['hank'] }, title: 'only one' });
    const client = await open(token);
    client.send({ type: 'hello', v: 1, since: 100 });
    expect(await client.next('notification')).toMatchObject({ seq: 1, title: 'only one' });
    expect(await client.next('synced')).toEqual({ type: 'synced', head: 1, replayed: 1, gap: true });
    await publish(t, { to: { users: ['hank'] }, title: 'live' });
    expect(await client.next('notification')).toMatchObject({ seq: 2, title: 'live' });
  });

  it('tells a device with an old cursor that expired notifications are gone (gap)', async () => {
    const { token } = await deviceFor(t, 'dave');
    await publish(t, { to: { users: ['dave'] }, title: 'short-lived', ttl: 60 });
    await publish(t, { to: { users: ['dave'] }, title: 'durable' });
    clock += 61_000;
    const client = await open(token);
    client.send({ type: 'hello', v: 1, since: 0 });
    const synced = await client.next('synced');
    expect(client.frames.flatMap((f) => (f.type === 'notification' ? [f.title] : []))).toEqual(['durable']);
    expect(synced).toEqual({ type: 'synced', head: 2, replayed: 1, gap: true });

    const current = await open(token);
    current.send({ type: 'hello', v: 1, since: 1 });
    expect(await current.next('synced')).toEqual({ type: 'synced', head: 2, replayed: 1, gap: false });
  });

  it('delivers a retried publish with the same Idempotency-Key once', async () => {
    const { token } = await deviceFor(t, 'erin');
    const client = await open(token);
    client.send({ type: 'hello', v: 1 });
    await client.next('synced');
    const body = { to: { users: ['erin'] }, title: 'charge succeeded' };
    const first = await publish(t, body, { 'idempotency-key': 'order-42' });
    const retry = await publish(t, body, { 'idempotency-key': 'order-42' });
    expect(first.status).toBe(202);
    expect(retry).toEqual(first);
    const reused = await publish(t, { ...body, title: 'something else' }, { 'idempotency-key': 'order-42' });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ error: { code: 'idempotency_key_reused' } });
    await publish(t, { to: { users: ['erin'] }, title: 'marker' });
    const frames = await client.notifications(2);
    expect(frames.map((f) => f.title)).toEqual(['charge succeeded', 'marker']);
    const inbox = await t.api<{ items: unknown[] }>('GET', '/v1/inbox', { token });
    expect(inbox.body.items).toHaveLength(2);
  });

  it('closes a revoked token’s live socket with 4501 and refuses its reconnect', async () => {
    const { token } = await deviceFor(t, 'frank');
    const client = await open(token);
    client.send({ type: 'hello', v: 1 });
    await client.next('synced');
    const list = await t.api<{ tokens: { id: string; user?: string }[] }>('GET', '/v1/tokens');
    const id = list.body.tokens.find((x) => x.user === 'frank')?.id;
    expect(id).toBeDefined();
    expect(JSON.stringify(list.body)).not.toContain(token);
    expect((await t.api('DELETE', `/v1/tokens/${id ?? ''}`)).status).toBe(204);
    expect((await client.closed).code).toBe(4501);

    const again = await open(token);
    expect((await again.closed).code).toBe(4501);
    const viaHello = await open('');
    viaHello.send({ type: 'hello', v: 1, token });
    expect((await viaHello.closed).code).toBe(4501);
    expect((await t.api('GET', '/v1/me', { token })).status).toBe(401);
  });

  it('delivers a notification published during a large replay exactly once', async () => {
    await t.close();
    t = await startServer({ replayPageSize: 25 }, { now: () => clock });
    const { token } = await deviceFor(t, 'gina');
    for (let batch = 0; batch < 30; batch++) {
      const notifications = Array.from({ length: 100 }, (_, i) => ({ to: { users: ['gina'] }, title: `old ${batch * 100 + i}` }));
      expect((await t.api('POST', '/v1/notifications/batch', { body: { notifications } })).status).toBe(202);
    }
    const client = await open(token);
    client.send({ type: 'hello', v: 1, since: 0 });
    await client.next('welcome');
    // Publish while the 3,000-item replay is paged out 25 at a time.
    const live = await Promise.all(Array.from({ length: 50 }, (_, i) => publish(t, { to: { users: ['gina'] }, title: `live ${i}` })));
    expect(live.every((r) => r.status === 202)).toBe(true);
    const synced = await client.next('synced');
    expect(synced.replayed).toBeGreaterThanOrEqual(3000);
    await publish(t, { to: { users: ['gina'] }, title: 'marker' });
    await client.until((frames) => frames.some((f) => f.type === 'notification' && f.title === 'marker'));
    const seqs = client.frames.flatMap((f) => (f.type === 'notification' ? [f.seq] : []));
    expect(seqs).toEqual(Array.from({ length: 3051 }, (_, i) => i + 1));
  });
});
