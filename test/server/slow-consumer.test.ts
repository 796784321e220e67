import type { ClientRequestArgs } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { SignJWT } from 'jose';
import { TestClient, publish, startServer, type TestServer } from '../helpers.js';

const secret = 's'.repeat(40);
const others = 1000;
let t: TestServer;

function jwtFor(name: string): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(name).setExpirationTime('1h').sign(new TextEncoder().encode(secret));
}

beforeAll(async () => {
  t = await startServer({ jwt: { secret }, maxBufferedBytes: 256 * 1024 });
});
afterAll(async () => {
  await t.close();
});

it('closes a slow consumer with 4001 while 1,000 other sockets keep receiving', async () => {
  const clients = await Promise.all(
    Array.from({ length: others }, async (_, i) => {
      const client = await TestClient.open(t.wsUrl, await jwtFor(`user${i}`));
      client.send({ type: 'hello', v: 1 });
      await client.next('synced');
      return client;
    }),
  );

  // The slow device's own TCP socket, so the test can stop reading from it.
  let raw: Socket | undefined;
  const slowWs = new WebSocket(t.wsUrl, {
    headers: { authorization: `Bearer ${await jwtFor('slow')}` },
    createConnection: (options: ClientRequestArgs) => (raw = connect({ port: Number(options.port), host: options.host ?? '127.0.0.1' })),
  });
  const slow = await new Promise<TestClient>((resolve) => slowWs.once('open', () => resolve(TestClient.wrap(slowWs))));
  slow.send({ type: 'hello', v: 1 });
  await slow.next('synced');
  raw?.pause();

  // 40 MB for the stalled device (far past what the kernel buffers on loopback), interleaved with 20 broadcasts.
  const body = 'x'.repeat(4000);
  for (let round = 0; round < 100; round++) {
    const notifications = Array.from({ length: 100 }, (_, i) => ({ to: { users: ['slow'] }, title: `firehose ${round}.${i}`, body }));
    expect((await t.api('POST', '/v1/notifications/batch', { body: { notifications } })).status).toBe(202);
    if (round % 5 === 0) expect((await publish(t, { to: { all: true }, title: `broadcast ${round / 5}` })).status).toBe(202);
  }

  const received = await Promise.all(clients.map((c) => c.notifications(20)));
  for (const frames of received) expect(frames.map((f) => f.title)).toEqual(Array.from({ length: 20 }, (_, i) => `broadcast ${i}`));

  raw?.resume();
  expect((await slow.closed).code).toBe(4001);
  const metrics = await (await fetch(`${t.url}/metrics`)).text();
  expect(metrics).toMatch(/herald_closes_total\{code="4001"\} 1\b/);
  await Promise.all(clients.map((c) => c.close()));
});
