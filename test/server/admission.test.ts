import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { envVariables, loadConfig } from '../../server/src/config-sources.js';
import { defaults } from '../../server/src/defaults.js';
import type { ConfigInput } from '../../server/src/index.js';
import { TestClient, deviceFor, startServer, type TestServer } from '../helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(overrides: ConfigInput): Promise<TestServer> {
  const t = await startServer(overrides);
  cleanups.push(() => t.close());
  return t;
}

/** An upgrade the server refused: its status, headers and JSON body. */
interface Refused {
  status: number;
  headers: IncomingMessage['headers'];
  body: unknown;
}

/** Opens a real `ws` socket: the client once it is open, or what the server answered instead of 101. */
async function attempt(url: string, token?: string): Promise<{ client: TestClient } | { refused: Refused }> {
  const ws = new WebSocket(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      const client = TestClient.wrap(ws);
      cleanups.push(() => client.close());
      resolve({ client });
    });
    ws.once('unexpected-response', (_request, response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        resolve({ refused: { status: response.statusCode ?? 0, headers: response.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown } });
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

/** A device that says hello and waits for `synced`. */
async function sync(client: TestClient, token: string): Promise<void> {
  client.send({ type: 'hello', v: 1, token, since: 0 });
  await client.next('synced');
}

async function metrics(t: TestServer): Promise<string> {
  return (await fetch(`${t.url}/metrics`)).text();
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function expectOverloaded(refused: Refused): void {
  expect(refused.status).toBe(503);
  expect(refused.body).toEqual({ error: { code: 'overloaded', message: expect.any(String) as unknown } });
  expect(refused.headers['content-type']).toBe('application/json');
  expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  expect(Number.isInteger(Number(refused.headers['retry-after']))).toBe(true);
}

describe('admission control of stream upgrades', () => {
  it('admits a burst, refuses the rest with 503 overloaded and Retry-After, counts them, and admits again once the bucket refills', async () => {
    const t = await server({ admission: { perSecond: 1, burst: 5, maxPending: 0 } });
    const { token } = await deviceFor(t, 'alice');

    const results = await Promise.all(Array.from({ length: 12 }, () => attempt(t.wsUrl)));
    const admitted = results.flatMap((r) => ('client' in r ? [r.client] : []));
    const refused = results.flatMap((r) => ('refused' in r ? [r.refused] : []));
    // The bucket holds 5; it gains 1 per second, so a slow machine may let one or two more in.
    expect(admitted.length).toBeGreaterThanOrEqual(5);
    expect(admitted.length).toBeLessThanOrEqual(7);
    expect(refused.length).toBe(12 - admitted.length);
    refused.forEach(expectOverloaded);

    // Admitted sockets are whole sessions.
    await Promise.all(admitted.map((client) => sync(client, token)));

    const text = await metrics(t);
    expect(metricValue(text, 'herald_connections_refused_total{reason="overloaded"}')).toBe(refused.length);
    expect(metricValue(text, 'herald_connections_refused_total{reason="rate_limited"}')).toBe(0);
    expect(metricValue(text, 'herald_rejected_total{code="overloaded"}')).toBe(refused.length);

    // Refused attempts take no token, so the bucket refills at its rate and lets the next device in.
    let late: TestClient | undefined;
    await expect
      .poll(
        async () => {
          const result = await attempt(t.wsUrl);
          if ('client' in result) late = result.client;
          else expectOverloaded(result.refused);
          return late !== undefined;
        },
        { timeout: 10_000, interval: 250 },
      )
      .toBe(true);
    if (late === undefined) throw new Error('unreachable');
    await sync(late, token);
  });

  it('refuses on the cap of handshakes in flight alone, and admits again as they finish', async () => {
    // No rate: only handshakes that have not reached `synced` (or closed) count.
    const t = await server({ admission: { perSecond: 0, burst: 1, maxPending: 3 } });
    const { token } = await deviceFor(t, 'bob');

    // Sockets that have not said hello yet are handshakes in flight.
    const pending = await Promise.all(Array.from({ length: 3 }, () => attempt(t.wsUrl)));
    const [first, second, third] = pending.map((r) => {
      if (!('client' in r)) throw new Error(`refused: ${JSON.stringify(r.refused.body)}`);
      return r.client;
    });
    if (!first || !second || !third) throw new Error('three clients expected');
    expect(metricValue(await metrics(t), 'herald_handshakes_pending')).toBe(3);

    const over = await attempt(t.wsUrl);
    if (!('refused' in over)) throw new Error('a fourth handshake in flight was admitted');
    expectOverloaded(over.refused);
    expect(over.refused.headers['retry-after']).toBe('1');

    // `synced` ends a handshake: its slot goes to the next device.
    await sync(first, token);
    const fourth = await attempt(t.wsUrl);
    if (!('client' in fourth)) throw new Error(`refused after a handshake finished: ${JSON.stringify(fourth.refused.body)}`);

    // So does a close, and an authentication failure (which closes).
    await second.close();
    await expect.poll(async () => metricValue(await metrics(t), 'herald_handshakes_pending')).toBe(2);
    third.send({ type: 'hello', v: 1, token: 'not-a-valid-token'.padEnd(43, 'x') });
    expect((await third.closed).code).toBe(4501);
    await expect.poll(async () => metricValue(await metrics(t), 'herald_handshakes_pending')).toBe(1);

    // A header-authenticated socket that has not sent hello yet no longer costs anything: it does not hold a slot.
    const waiting = await attempt(t.wsUrl, token);
    if (!('client' in waiting)) throw new Error('refused with two slots free');
    await expect.poll(async () => metricValue(await metrics(t), 'herald_handshakes_pending')).toBe(1);
    await sync(waiting.client, token);
    await sync(fourth.client, token);
    await expect.poll(async () => metricValue(await metrics(t), 'herald_handshakes_pending')).toBe(0);
    expect(metricValue(await metrics(t), 'herald_connections_refused_total{reason="overloaded"}')).toBe(1);
  });

  it('counts per-address refusals as rate_limited, apart from admission control', async () => {
    const t = await server({ rateLimits: { connect: { perSecond: 0.001, burst: 1 } } });
    const { token } = await deviceFor(t, 'carol');
    const first = await attempt(t.wsUrl);
    if (!('client' in first)) throw new Error('the first connect was refused');
    await sync(first.client, token);
    const second = await attempt(t.wsUrl);
    if (!('refused' in second)) throw new Error('the second connect was admitted');
    expect(second.refused.status).toBe(429);
    expect(second.refused.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String) as unknown } });
    const text = await metrics(t);
    expect(metricValue(text, 'herald_connections_refused_total{reason="rate_limited"}')).toBe(1);
    expect(metricValue(text, 'herald_connections_refused_total{reason="overloaded"}')).toBe(0);
  });

  it('is off with admission: false: nothing is refused or counted as pending', async () => {
    const t = await server({ admission: false });
    const { token } = await deviceFor(t, 'dave');
    const results = await Promise.all(Array.from({ length: 20 }, () => attempt(t.wsUrl)));
    const clients = results.map((r) => {
      if (!('client' in r)) throw new Error('refused with admission control off');
      return r.client;
    });
    await Promise.all(clients.map((client) => sync(client, token)));
    const text = await metrics(t);
    expect(metricValue(text, 'herald_connections_refused_total{reason="overloaded"}')).toBe(0);
    expect(metricValue(text, 'herald_handshakes_pending')).toBe(0);
  });
});

// The refusal comes before the socket exists, so a client sees neither a close code nor a frame: only HTTP.
it('answers a refused upgrade over plain HTTP/1.1 and closes the connection', async () => {
  const t = await server({ admission: { perSecond: 0, burst: 1, maxPending: 1 } });
  const held = await attempt(t.wsUrl);
  if (!('client' in held)) throw new Error('the first handshake was refused');
  const ws = new WebSocket(t.wsUrl);
  const [, response] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage];
  expect(response.statusCode).toBe(503);
  expect(response.headers.connection).toBe('close');
  const failed = once(ws, 'error');
  ws.terminate();
  await failed;
});

describe('admission settings', () => {
  it('come from HERALD_ADMISSION and HERALD_ADMISSION_*, and off with a member set is a contradiction', () => {
    expect(loadConfig({ flags: {}, env: {}, cwd: tmpdir() }).admission).toEqual(defaults.admission);
    const env = { HERALD_ADMISSION_PER_SECOND: '500.5', HERALD_ADMISSION_BURST: '50', HERALD_ADMISSION_MAX_PENDING: '0' };
    expect(loadConfig({ flags: {}, env, cwd: tmpdir() }).admission).toEqual({ perSecond: 500.5, burst: 50, maxPending: 0 });
    for (const off of ['off', '0', 'false']) expect(loadConfig({ flags: {}, env: { HERALD_ADMISSION: off }, cwd: tmpdir() }).admission).toBe(false);
    expect(loadConfig({ flags: { admission: 'off' }, env, cwd: tmpdir() }).admission).toBe(false);
    expect(() => loadConfig({ flags: {}, env: { HERALD_ADMISSION: 'off', HERALD_ADMISSION_BURST: '5' }, cwd: tmpdir() })).toThrow(
      'HERALD_ADMISSION_BURST: HERALD_ADMISSION turns admission off; unset one of them',
    );
    expect(() => loadConfig({ flags: {}, env: { HERALD_ADMISSION_BURST: '0' }, cwd: tmpdir() })).toThrow(/admission\.burst \(from HERALD_ADMISSION_BURST\)/);
    expect(envVariables().filter((v) => v.path[0] === 'admission').map((v) => v.name)).toEqual([
      'HERALD_ADMISSION',
      'HERALD_ADMISSION_PER_SECOND',
      'HERALD_ADMISSION_BURST',
      'HERALD_ADMISSION_MAX_PENDING',
    ]);
  });
});
