import type { ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Notification } from '@herald/protocol';
import { amqpConnectionName } from '../../server/src/amqp.js';
import { HeraldError } from '../../server/src/errors.js';
import { TestBroker, amqpUrl, killConnection, metricValue, uniqueQueue, waitForConnection } from '../amqp-broker.js';
import { TestClient, deviceFor, startServer, type TestServer } from '../helpers.js';

let broker: TestBroker;
const queues: string[] = [];

beforeAll(async () => {
  broker = await TestBroker.open();
});

afterAll(async () => {
  for (const queue of queues) await broker.deleteQueues(queue);
  await broker.close();
});

/** A server consuming a queue of its own, a user `alice`, and her device past `synced`. */
async function setup(): Promise<{ t: TestServer; queue: string; client: TestClient }> {
  const queue = uniqueQueue();
  queues.push(queue);
  await broker.declare(queue);
  const t = await startServer({ amqpUrl, amqpQueue: queue });
  const { token } = await deviceFor(t, 'alice');
  const client = await TestClient.open(t.wsUrl, token);
  client.send({ type: 'hello', v: 1 });
  await client.next('synced');
  return { t, queue, client };
}

function notifications(client: TestClient) {
  return client.frames.flatMap((f) => (f.type === 'notification' ? [f] : []));
}

/** Every inbox item of `token`'s user, paging back from the newest. */
async function wholeInbox(t: TestServer, token: string): Promise<Notification[]> {
  const items: Notification[] = [];
  for (let before: number | undefined; ; ) {
    const page = await t.api<{ items: Notification[] }>('GET', `/v1/inbox?limit=200${before === undefined ? '' : `&before=${before}`}`, { token });
    items.push(...page.body.items);
    const last = page.body.items.at(-1);
    if (last === undefined) return items;
    before = last.seq;
  }
}

it('publishes a queued message to a live device and acks it once stored', async () => {
  const { t, queue, client } = await setup();
  await broker.send(queue, [{ body: { to: { users: ['alice'] }, title: 'from rabbit', body: 'hello', priority: 4 }, options: { messageId: 'order-1' } }]);

  const frame = await client.next('notification');
  expect(frame).toMatchObject({ seq: 1, title: 'from rabbit', body: 'hello', priority: 4 });
  await client.close();
  // A graceful close acks before it disconnects; anything unacked would be back in the queue now.
  await t.close();
  expect(await broker.counts(queue)).toEqual({ messages: 0, consumers: 0 });
  expect((await broker.counts(`${queue}.dead`)).messages).toBe(0);
});

it('dead-letters invalid messages with the error code in a header, and delivers none of them', async () => {
  const { t, queue, client } = await setup();
  const dead: ConsumeMessage[] = [];
  const fourDead = new Promise<void>((resolve) => {
    void broker.channel.consume(
      `${queue}.dead`,
      (message) => {
        if (message !== null) dead.push(message);
        if (dead.length === 4) resolve();
      },
      { noAck: true },
    );
  });

  await broker.send(queue, [
    { body: '{"to":', options: { messageId: 'bad-json' } },
    { body: { to: { users: ['alice'] }, body: 'no title' }, options: { messageId: 'no-title' } },
    { body: { to: { users: ['nobody'] }, title: 'to nobody' }, options: { messageId: 'unknown-user' } },
    { body: { to: { users: ['alice'] }, title: 'long key' }, options: { messageId: 'long-key', headers: { 'Idempotency-Key': 'k'.repeat(256) } } },
    { body: { to: { users: ['alice'] }, title: 'valid' }, options: { messageId: 'valid', headers: { trace: 'abc' } } },
  ]);
  await fourDead;
  await client.next('notification');

  const byId = new Map(dead.map((m) => [String(m.properties.messageId), m]));
  expect([...byId.keys()].sort()).toEqual(['bad-json', 'long-key', 'no-title', 'unknown-user']);
  const header = (id: string, name: string) => byId.get(id)?.properties.headers?.[name] as unknown;
  expect(header('bad-json', 'x-herald-error-code')).toBe('invalid_json');
  expect(header('no-title', 'x-herald-error-code')).toBe('invalid_title');
  expect(header('unknown-user', 'x-herald-error-code')).toBe('unknown_user');
  expect(header('long-key', 'x-herald-error-code')).toBe('invalid_request');
  expect(header('unknown-user', 'x-herald-error')).toBe('no such user: nobody');
  expect(byId.get('bad-json')?.content.toString()).toBe('{"to":');
  expect(byId.get('no-title')?.properties.contentType).toBe('application/json');

  expect(notifications(client).map((f) => f.title)).toEqual(['valid']);
  const inbox = await t.api<{ items: Notification[] }>('GET', '/v1/inbox', { token: (await deviceToken(t)).token });
  expect(inbox.body.items.map((n) => n.title)).toEqual(['valid']);
  await client.close();
  await t.close();
  expect((await broker.counts(queue)).messages).toBe(0);
});

/** Another device token for alice, for HTTP inbox reads. */
function deviceToken(t: TestServer) {
  return t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'alice' } }).then((r) => r.body);
}

it('loses nothing and stores nothing twice when the broker kills its connection mid-stream', async () => {
  const { t, queue, client } = await setup();
  const name = amqpConnectionName(queue);
  const first = await waitForConnection(name);

  // A producer that keeps sending; every 50th message is sent twice, as a producer retrying after a lost confirm would.
  let sent = 0;
  let resent = 0;
  let stopAt = Infinity;
  const producer = (async () => {
    while (sent < stopAt) {
      const batch = Array.from({ length: 20 }, (_, i) => sent + i);
      sent += batch.length;
      const messages = batch.map((n) => ({ body: { to: { users: ['alice'] }, title: `n${n}` }, options: { messageId: `m-${n}` } }));
      const again = messages.filter((_, i) => (batch[i] ?? 0) % 50 === 0);
      resent += again.length;
      await broker.send(queue, [...messages, ...again]);
    }
  })();

  await client.until((frames) => frames.filter((f) => f.type === 'notification').length >= 100);
  await killConnection(first);
  await waitForConnection(name, [first]);
  stopAt = sent + 200;
  await producer;

  await client.until((frames) => frames.filter((f) => f.type === 'notification').length >= sent);
  const live = notifications(client);
  expect(live.length).toBe(sent);
  expect(new Set(live.map((f) => f.title)).size).toBe(sent);

  const inbox = await wholeInbox(t, (await deviceToken(t)).token);
  expect(inbox.length).toBe(sent);
  expect(new Set(inbox.map((n) => n.title)).size).toBe(sent);
  const metrics = await (await fetch(`${t.url}/metrics`)).text();
  // At least the producer's own resends; more when the kill caught messages stored but not yet acked.
  expect(metricValue(metrics, 'herald_publishes_total{result="duplicate"}')).toBeGreaterThanOrEqual(resent);
  await client.close();
  await t.close();
  expect(await broker.counts(queue)).toEqual({ messages: 0, consumers: 0 });
});

it('waits out a store that is down instead of dead-lettering, then stores the message once', async () => {
  const { t, queue, client } = await setup();
  const { store } = t.server;
  const publishToStore = store.publish.bind(store);
  let refused = 0;
  store.publish = (input) => {
    if (refused === 3) return publishToStore(input);
    refused++;
    return Promise.reject(new HeraldError('store_unavailable', 'the store is down (test)'));
  };
  await broker.send(queue, [{ body: { to: { users: ['alice'] }, title: 'after the outage' }, options: { messageId: 'outage-1' } }]);

  expect(await client.next('notification')).toMatchObject({ seq: 1, title: 'after the outage' });
  expect(refused).toBe(3);
  await client.close();
  await t.close();
  expect(await broker.counts(queue)).toEqual({ messages: 0, consumers: 0 });
  expect((await broker.counts(`${queue}.dead`)).messages).toBe(0);
});
