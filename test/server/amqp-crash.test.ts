import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { amqpConnectionName } from '../../server/src/amqp.js';
import { TestBroker, amqpUrl, connectionsNamed, killConnection, metricValue, uniqueQueue } from '../amqp-broker.js';
import { CliProcess, freshApi as api } from '../cli-process.js';
import { TestClient, tempDir } from '../helpers.js';

const children: CliProcess[] = [];
let broker: TestBroker;
const queue = uniqueQueue();
const data = tempDir();

beforeAll(async () => {
  broker = await TestBroker.open();
  await broker.declare(queue);
});

afterAll(async () => {
  for (const child of children.splice(0)) child.kill();
  await broker.deleteQueues(queue);
  await broker.close();
  rmSync(data, { recursive: true, force: true });
});

async function startProcess(): Promise<{ process: CliProcess; url: string }> {
  const server = CliProcess.start(['--port', '0', '--data', data], { HERALD_AMQP_URL: amqpUrl, HERALD_AMQP_QUEUE: queue });
  children.push(server);
  return { process: server, url: await server.url() };
}

function notificationCount(client: TestClient): number {
  return client.frames.filter((f) => f.type === 'notification').length;
}

it('stores each message once when the server is killed between store and ack, and redelivery follows', async () => {
  const total = 3000;
  const first = await startProcess();
  await api(first.url, 'POST', '/v1/users', { name: 'alice' });
  const device = (await api(first.url, 'POST', '/v1/tokens', { kind: 'device', user: 'alice' })).body.token as string;
  const wsUrl = (url: string) => url.replace(/^http/, 'ws') + '/v1/stream';
  const watcher = await TestClient.open(wsUrl(first.url), device);
  watcher.send({ type: 'hello', v: 1 });
  await watcher.next('synced');

  const sending = broker.send(
    queue,
    Array.from({ length: total }, (_, n) => ({ body: { to: { users: ['alice'] }, title: `n${n}` }, options: { messageId: `m-${n}` } })),
  );
  // Frozen while it consumes, with publishes in flight; RabbitMQ drops its connection meanwhile (as after a network
  // partition) and requeues what it had not acked. Thawed, the server stores those in-flight publishes but can no
  // longer ack them; it is then killed. So some messages are acked, some stored but not acked, the rest not stored.
  await watcher.until((frames) => frames.filter((f) => f.type === 'notification').length >= 100);
  const pid = first.process.child.pid ?? 0;
  process.kill(pid, 'SIGSTOP');
  const frozenAt = notificationCount(watcher);
  for (const connection of await connectionsNamed(amqpConnectionName(queue))) await killConnection(connection);
  await broker.waitForCounts(queue, (c) => c.consumers === 0);
  process.kill(pid, 'SIGCONT');
  await watcher.until(() => notificationCount(watcher) > frozenAt);
  first.process.kill('SIGKILL');
  expect((await first.process.exited).signal).toBe('SIGKILL');
  await sending;

  // RabbitMQ requeues the unacked messages as it drops a dead consumer.
  const { messages: left } = await broker.waitForCounts(queue, (c) => c.consumers === 0);
  const acked = total - left;
  const db = new Database(join(data, 'herald.db'), { readonly: true });
  const stored = (db.prepare('SELECT count(*) AS n FROM notifications').get() as { n: number }).n;
  db.close();
  // The case under test: stored before the crash, never acked (at most a prefetch's worth).
  expect(stored - acked).toBeGreaterThan(0);
  expect(stored).toBeLessThan(total);

  const second = await startProcess();
  const client = await TestClient.open(wsUrl(second.url), device);
  client.send({ type: 'hello', v: 1, since: 0 });
  await client.until(() => notificationCount(client) >= total);
  await broker.waitForCounts(queue, (c) => c.messages === 0);

  const seen = client.frames.flatMap((f) => (f.type === 'notification' ? [f] : []));
  expect(seen.length).toBe(total);
  expect(new Set(seen.map((f) => f.title)).size).toBe(total);
  expect(seen.map((f) => f.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  // Every message stored before the crash but not acked came back and was absorbed by its messageId.
  const metrics = (await fetch(`${second.url}/metrics`).then((r) => r.text()));
  expect(metricValue(metrics, 'herald_publishes_total{result="duplicate"}')).toBe(stored - acked);

  await client.close();
  second.process.kill('SIGTERM');
  await second.process.exited;
});
