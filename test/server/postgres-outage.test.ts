/**
 * PostgreSQL made unavailable under a running server, on a cluster of the test's own: publishes fail fast with 503
 * `store_unavailable` and write nothing, `/readyz` goes red, devices are closed with 1013, and everything recovers
 * once PostgreSQL is back.
 */
import pg from 'pg';
import { pino } from 'pino';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CloseCode, type Notification } from '@herald/protocol';
import { createConnection, type Disconnect } from '../../main/connection.js';
import { memoryCursor } from '../../main/cursor.js';
import { TestClient, deviceFor, publish, startServer, type TestServer } from '../helpers.js';
import { PostgresProcess } from '../postgres-process.js';
import { freePort } from '../redis-process.js';

const jwtSecret = 'outage-test-jwt-secret-' + 'j'.repeat(32);

/** How long a refused call may take while PostgreSQL is down: a correctness bound, not a benchmark. */
const failFastMs = 2_000;

let cluster: PostgresProcess;
let t: TestServer;

/** What the server logged at warn and above, to wait on and to check that nothing was logged as an error. */
const logs: { level: number; msg: string }[] = [];
let logWaiters: (() => void)[] = [];

/** Resolves once the server has logged `msg`. */
function logged(msg: string): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (logs.some((entry) => entry.msg === msg)) resolve();
      else logWaiters.push(check);
    };
    check();
  });
}

beforeAll(async () => {
  cluster = new PostgresProcess(await freePort());
  await cluster.start();
  const logger = pino(
    { level: 'warn' },
    {
      write(line: string) {
        logs.push(JSON.parse(line) as { level: number; msg: string });
        const waiters = logWaiters;
        logWaiters = [];
        for (const waiter of waiters) waiter();
      },
    },
  );
  // A fast scheduler and heartbeat, so both run (and fail) against the store while it is down.
  t = await startServer({ storeUrl: cluster.url, storeSchema: 'herald', scheduleIntervalMs: 100, heartbeatMs: 300, jwt: { secret: jwtSecret } }, { logger });
});

afterAll(async () => {
  try {
    await t.close();
  } finally {
    await cluster.dispose();
  }
});

type ErrorReply = { error: { code: string; message: string } };

/** A publish with its status, body, Retry-After and duration. */
async function timedPost(path: string, body: object, headers: Record<string, string> = {}) {
  const started = performance.now();
  const response = await fetch(t.url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${t.adminToken}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as ErrorReply;
  return { status: response.status, body: json, retryAfter: response.headers.get('retry-after'), ms: performance.now() - started };
}

/** Polls `/readyz` until it answers 200. */
async function untilReady(): Promise<void> {
  while ((await t.api('GET', '/readyz', { token: '' })).status !== 200) await new Promise((resolve) => setTimeout(resolve, 25));
}

/** Every item of a device's inbox, all pages, in ascending seq. */
async function wholeInbox(token: string): Promise<Notification[]> {
  const items: Notification[] = [];
  let before = '';
  for (;;) {
    const page = await t.api<{ items: Notification[] }>('GET', `/v1/inbox?limit=200${before}`, { token });
    expect(page.status).toBe(200);
    items.push(...page.body.items);
    const last = page.body.items.at(-1);
    if (page.body.items.length < 200 || last === undefined) return items.reverse();
    before = `&before=${last.seq}`;
  }
}

it('answers 503 store_unavailable fast while PostgreSQL is down, writes nothing, and recovers by itself', async () => {
  const alice = await deviceFor(t, 'alice');
  const bob = await deviceFor(t, 'bob');
  expect(await t.api('GET', '/readyz', { token: '' })).toEqual({ status: 200, body: { status: 'ready', store: true, broker: true } });

  // A device that stays connected through the outage.
  const live = await TestClient.open(t.wsUrl, alice.token);
  live.send({ type: 'hello', v: 1, since: 0 });
  await live.next('synced');

  /** Titles that got 202, and of those their ids. */
  const accepted = new Map<string, string>();
  /** Titles that got 503 while a publish could be in flight as PostgreSQL went down: their outcome may be unknown. */
  const inFlight = new Set<string>();
  /** Titles that got 503 with PostgreSQL fully down: none of them may be stored. */
  const refused: string[] = [];

  // Eight publishers, and PostgreSQL is stopped (immediate: backends killed, as in a crash) while they are mid-flight.
  let down = false;
  let enough: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => (enough = resolve));
  const publisher = async (worker: number) => {
    for (let i = 0; !down; i += 1) {
      const title = `burst ${worker}.${i}`;
      const { status, body } = await t.api<{ id: string } & ErrorReply>('POST', '/v1/notifications', { body: { to: { users: ['alice'] }, title } });
      if (status === 202) accepted.set(title, body.id);
      else {
        expect({ status, code: body.error.code }).toEqual({ status: 503, code: 'store_unavailable' });
        inFlight.add(title);
      }
      if (accepted.size >= 40) enough();
    }
  };
  const publishers = Promise.all(Array.from({ length: 8 }, (_, w) => publisher(w)));
  await Promise.race([reached, publishers]);
  // Due while PostgreSQL is down, most likely: the scheduler delivers it once PostgreSQL is back.
  const scheduled = await publish(t, { to: { users: ['alice'] }, title: 'scheduled', deliverAt: new Date(Date.now() + 1_000).toISOString() });
  expect(scheduled.status).toBe(202);
  accepted.set('scheduled', scheduled.body.id);
  await cluster.stop('immediate');
  down = true;
  await publishers;
  const mark = live.frames.length;

  // Down: /readyz is red, and every store call fails fast with the stable code, a Retry-After, and no connection details.
  let started = performance.now();
  expect(await t.api('GET', '/readyz', { token: '' })).toEqual({ status: 503, body: { status: 'unavailable', store: false, broker: true } });
  expect(performance.now() - started).toBeLessThan(failFastMs);
  const attempts: [string, object, Record<string, string>, string[]][] = [
    ['/v1/notifications', { to: { users: ['alice'] }, title: 'outage single' }, {}, ['outage single']],
    ['/v1/notifications', { to: { users: ['alice'] }, title: 'outage keyed' }, { 'idempotency-key': 'outage-key' }, ['outage keyed']],
    ['/v1/notifications/batch', { notifications: [{ to: { users: ['alice'] }, title: 'outage batch 0' }, { to: { users: ['alice'] }, title: 'outage batch 1' }] }, {}, ['outage batch 0', 'outage batch 1']],
  ];
  for (const [path, body, headers, titles] of attempts) {
    const reply = await timedPost(path, body, headers);
    expect({ status: reply.status, code: reply.body.error.code, retryAfter: reply.retryAfter }).toEqual({ status: 503, code: 'store_unavailable', retryAfter: '1' });
    expect(reply.body.error.message).not.toMatch(/postgres:|127\.0\.0\.1|ECONN/);
    expect(reply.ms).toBeLessThan(failFastMs);
    refused.push(...titles);
  }
  started = performance.now();
  const inboxDown = await t.api<ErrorReply>('GET', '/v1/inbox', { token: alice.token });
  expect({ status: inboxDown.status, code: inboxDown.body.error.code }).toEqual({ status: 503, code: 'store_unavailable' });
  expect(performance.now() - started).toBeLessThan(failFastMs);
  expect((await t.api('GET', '/healthz', { token: '' })).status).toBe(200);

  // A device connecting now is closed with 1013 (try again later) after an error frame saying why: bob's token has to be
  // looked up in the store; alice's is known, so her session fails on reading its head instead.
  const refusedDevice = await TestClient.open(t.wsUrl, bob.token);
  expect(await refusedDevice.closed).toEqual({ code: CloseCode.tryAgainLater, reason: 'store_unavailable' });
  expect(refusedDevice.frames).toEqual([{ type: 'error', code: 'store_unavailable', message: expect.any(String) as string }]);
  // A valid JWT is not a bad token while its user cannot be looked up: 1013, so the device comes back, never 4501.
  const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('carol').setExpirationTime('10m').sign(new TextEncoder().encode(jwtSecret));
  const jwtDevice = await TestClient.open(t.wsUrl, jwt);
  expect(await jwtDevice.closed).toEqual({ code: CloseCode.tryAgainLater, reason: 'store_unavailable' });

  // The desktop app's connection, started during the outage: it is closed with 1013 and keeps retrying with backoff.
  const connection = createConnection({ server: t.url, token: alice.token, cursor: memoryCursor(), backoffCapMs: 1_000 });
  const seen: Notification[] = [];
  let onSeen: (() => void) | undefined;
  connection.on('notification', (item) => {
    seen.push(item);
    onSeen?.();
  });
  const firstDisconnect = new Promise<Disconnect>((resolve) => connection.on('disconnect', resolve));
  connection.start();
  try {
    expect(await firstDisconnect).toMatchObject({ code: CloseCode.tryAgainLater, reason: 'store_unavailable', willRetry: true });

    // The scheduler keeps ticking (and failing) without crashing, and the live device still gets heartbeats.
    await logged('scheduled delivery failed: store unavailable');
    await live.until((frames) => frames.slice(mark).some((frame) => frame.type === 'heartbeat'));

    // Back: ready again, publishes accepted, and the live device gets them.
    await cluster.start();
    await untilReady();
    const after = await publish(t, { to: { users: ['alice'] }, title: 'after recovery' });
    expect(after.status).toBe(202);
    accepted.set('after recovery', after.body.id);
    await live.until((frames) => frames.some((frame) => frame.type === 'notification' && frame.id === after.body.id));

    // The keyed publish that got 503 wrote nothing, so its retry is a new notification; a second retry is its duplicate.
    const retried = await publish(t, { to: { users: ['alice'] }, title: 'outage keyed' }, { 'idempotency-key': 'outage-key' });
    expect(retried.status).toBe(202);
    accepted.set('outage keyed', retried.body.id);
    expect(await publish(t, { to: { users: ['alice'] }, title: 'outage keyed' }, { 'idempotency-key': 'outage-key' })).toEqual(retried);
    refused.splice(refused.indexOf('outage keyed'), 1);

    // The inbox holds every 202 and none of the 503s, as seqs 1..N without holes. A publish in flight as PostgreSQL died
    // may have committed even though it got 503 (a connection lost during COMMIT); that is the only exception allowed.
    const ids = new Set(accepted.values());
    await new Promise<void>((resolve) => {
      onSeen = () => {
        if ([...ids].every((id) => seen.some((item) => item.id === id))) resolve();
      };
      onSeen();
    });
    const inbox = await wholeInbox(alice.token);
    expect(inbox.map((item) => item.seq)).toEqual(Array.from({ length: inbox.length }, (_, i) => i + 1));
    const stored = new Map(inbox.map((item) => [item.title, item.id]));
    for (const [title, id] of accepted) expect(stored.get(title), title).toBe(id);
    const unacknowledged = [...stored.keys()].filter((title) => !accepted.has(title));
    expect(unacknowledged.filter((title) => !inFlight.has(title))).toEqual([]);
    expect(refused.filter((title) => stored.has(title))).toEqual([]);
    // The reconnecting app got the same items, each once and in seq order.
    expect(seen.map((item) => item.id)).toEqual(inbox.map((item) => item.id));

    // Nothing half-written: every notification has its inbox row, and the user's head is the number of rows.
    const db = new pg.Client({ connectionString: cluster.url });
    await db.connect();
    try {
      const { rows } = await db.query<{ orphans: string; head: string; idempotency: string }>(
        `SELECT (SELECT count(*) FROM herald.notifications n WHERE NOT EXISTS (SELECT 1 FROM herald.inbox i WHERE i.nid = n.nid)) AS orphans,
                (SELECT head FROM herald.users WHERE name = 'alice') AS head,
                (SELECT count(*) FROM herald.idempotency) AS idempotency`,
      );
      expect(rows[0]).toEqual({ orphans: '0', head: String(inbox.length), idempotency: '1' });
    } finally {
      await db.end();
    }
    expect(logs.filter((entry) => entry.level >= 50)).toEqual([]);
  } finally {
    await connection.close();
    await live.close();
  }
});
