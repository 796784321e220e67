/**
 * `herald-server start --workers N`: several processes on one port, sharing the store and fanning out to each
 * other through the primary (embedded default) or through Redis.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ServerFrame } from '@herald/protocol';
import { CliProcess, freshApi } from '../cli-process.js';
import { TestClient, tempDir } from '../helpers.js';

const storeUrl = 'postgres://postgres@127.0.0.1:5432/test';
const schemas: string[] = [];
const running: CliProcess[] = [];

afterEach(() => {
  for (const server of running.splice(0)) server.kill();
});

afterAll(async () => {
  const client = new pg.Client({ connectionString: storeUrl });
  await client.connect();
  for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

function start(args: string[], env: Record<string, string> = {}): CliProcess {
  const server = CliProcess.start(['--port', '0', ...args], env);
  running.push(server);
  return server;
}

const seqsOf = (frames: ServerFrame[]) => frames.flatMap((f) => (f.type === 'notification' ? [f.seq] : []));

const backends = [
  { name: 'SQLite, fanning out through the primary', env: (): Record<string, string> => ({}) },
  {
    name: 'PostgreSQL and Redis',
    env: (): Record<string, string> => {
      const id = randomBytes(6).toString('hex');
      schemas.push(`herald_workers_${id}`);
      return { HERALD_STORE_URL: storeUrl, HERALD_STORE_SCHEMA: `herald_workers_${id}`, HERALD_REDIS_URL: 'redis://127.0.0.1:6379', HERALD_REDIS_PREFIX: `herald-workers-${id}:` };
    },
  },
];

describe.each(backends)('two workers on $name', ({ env }) => {
  it('delivers to sockets on both workers, shares read state, and replaces a killed worker while its devices resume', async () => {
    const server = start(['--data', tempDir(), '--workers', '2'], env());
    const url = await server.url();
    const [, first] = await server.line(/2 workers \(pids (\d+), (\d+)\), fanning out/);
    expect((await freshApi(url, 'POST', '/v1/users', { name: 'alice' })).status).toBe(201);
    const token = (await freshApi(url, 'POST', '/v1/tokens', { kind: 'device', user: 'alice' })).body.token as string;

    // New connections alternate between the workers, so these eight sockets sit on both.
    const wsUrl = url.replace(/^http/, 'ws') + '/v1/stream';
    const connect = async (since: number) => {
      const client = await TestClient.open(wsUrl, token);
      client.send({ type: 'hello', v: 1, since });
      await client.next('synced');
      return client;
    };
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(0)));

    // Each publish on a connection of its own, so both workers publish.
    for (let i = 1; i <= 4; i++) expect((await freshApi(url, 'POST', '/v1/notifications', { to: { users: ['alice'] }, title: `n${i}` })).status).toBe(202);
    for (const client of clients) await client.until((frames) => seqsOf(frames).length === 4);
    for (const client of clients) expect(seqsOf(client.frames)).toEqual([1, 2, 3, 4]);

    expect((await freshApi(url, 'POST', '/v1/inbox/read', { seqs: [1] }, token)).body).toEqual({ unread: 3 });
    for (const client of clients) expect(await client.next('read')).toMatchObject({ seqs: [1], unread: 3 });

    // kill -9 one worker: its sockets drop, the others keep receiving, and the primary starts a replacement.
    process.kill(Number(first), 'SIGKILL');
    await server.line(new RegExp(`\\(pid ${first ?? ''}\\) exited \\(SIGKILL\\); starting a replacement`));
    expect((await freshApi(url, 'POST', '/v1/notifications', { to: { users: ['alice'] }, title: 'n5' })).status).toBe(202);
    const outcomes = await Promise.all(clients.map((client) => Promise.race([client.until((frames) => seqsOf(frames).includes(5)).then(() => 'live' as const), client.closed.then(() => 'dropped' as const)])));
    const dropped = outcomes.filter((outcome) => outcome === 'dropped').length;
    expect(dropped).toBeGreaterThan(0);
    expect(dropped).toBeLessThan(clients.length);

    // The dropped devices come back (to whichever worker) and resume from their cursor.
    for (let i = 0; i < dropped; i++) {
      const client = await connect(4);
      expect(seqsOf(client.frames)).toEqual([5]);
      client.ws.close();
    }
    for (const client of clients) client.ws.close();

    server.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    await server.line(/herald-server: stopped/);
  });
});

it('keeps every user’s seqs 1..N without holes when workers write one SQLite file at once, and stops cleanly on SIGTERM', async () => {
  const data = tempDir();
  const server = start(['--data', data], { HERALD_WORKERS: 'auto' });
  const url = await server.url();
  await server.line(new RegExp(`${availableParallelism()} workers`));
  const users = ['u0', 'u1', 'u2'];
  for (const name of users) expect((await freshApi(url, 'POST', '/v1/users', { name })).status).toBe(201);

  const accepted = new Map(users.map((name) => [name, 0]));
  let next = 0;
  const lane = async () => {
    while (next < 1_500) {
      const i = next++;
      const to = [users[i % 3] ?? 'u0', users[(i + 1) % 3] ?? 'u0'];
      expect((await freshApi(url, 'POST', '/v1/notifications', { to: { users: to }, title: `p${i}` })).status).toBe(202);
      for (const name of to) accepted.set(name, (accepted.get(name) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 24 }, lane));
  server.kill('SIGTERM');
  expect((await server.exited).code).toBe(0);

  const db = new Database(join(data, 'herald.db'), { readonly: true });
  const rows = db
    .prepare<[], { name: string; n: number; lo: number; hi: number; distinct: number }>(
      'SELECT u.name, count(*) AS n, min(i.seq) AS lo, max(i.seq) AS hi, count(DISTINCT i.seq) AS "distinct" FROM inbox i JOIN users u ON u.id = i.user_id GROUP BY u.name ORDER BY u.name',
    )
    .all();
  db.close();
  expect(rows.map((r) => [r.name, r.n, r.lo, r.hi, r.distinct])).toEqual(users.map((name) => [name, accepted.get(name), 1, accepted.get(name), accepted.get(name)]));
});

it('exits with an error, and leaves no worker behind, when the workers cannot listen', async () => {
  const taken = createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const { port } = taken.address() as { port: number };
  try {
    const server = CliProcess.start(['--port', String(port), '--host', '127.0.0.1', '--data', tempDir(), '--workers', '2']);
    running.push(server);
    expect((await server.exited).code).toBe(1);
    expect(server.lines.join('\n')).toMatch(/already in use[\s\S]*exited \(code 1\) before listening/);
  } finally {
    taken.close();
  }
});

it('refuses a worker count that is not a positive whole number or auto', async () => {
  for (const [args, env] of [[['--workers', '0'], {}], [[], { HERALD_WORKERS: 'many' }]] as const) {
    const server = CliProcess.start([...args, '--data', tempDir()], env);
    running.push(server);
    expect((await server.exited).code).toBe(2);
    expect(server.lines.join('\n')).toMatch(/--workers|HERALD_WORKERS/);
  }
});
