/**
 * Two real node processes on one PostgreSQL schema and one Redis, behind a real nginx that runs the committed
 * deploy/nginx/herald.conf. 2,000 desktop connections come in through nginx, one node is killed with SIGKILL
 * while publishes stream in, and every device resumes on the survivor with every accepted publish, once each.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createConnection, type Connection, type DisconnectCause } from '../../main/connection.js';
import { memoryCursor } from '../../main/cursor.js';
import { defaults } from '../../server/src/defaults.js';
import { freePort } from '../redis-process.js';

const root = new URL('../..', import.meta.url).pathname;
const nginxConf = join(root, 'deploy/nginx/herald.conf');
const storeUrl = 'postgres://postgres@127.0.0.1:5432/test';
const run = randomBytes(6).toString('hex');
const storeSchema = `herald_nginx_${run}`;
const adminToken = `nginx-test-admin-token-${randomBytes(24).toString('hex')}`;
/** Short, so an idle device hears from its node through nginx every second; see the dead-link check below. */
const heartbeatMs = 1_000;
/** A device's link counts as dead after heartbeatMs + this much silence. */
const deadLinkGraceMs = 5_000;
const userCount = 200;
const devicesPerUser = 10;
/** Publishes accepted before the kill, and at least as many after it. */
const acceptedPerPhase = 200;

const temp = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
const children: ChildProcess[] = [];

interface HeraldNode {
  child: ChildProcess;
  url: string;
  exited: Promise<unknown[]>;
}
let nodeA: HeraldNode;
let nodeB: HeraldNode;
let proxy: { child: ChildProcess; url: string };

/** Collects a child's output lines, for the error message when it fails. */
function lines(child: ChildProcess, onLine: (line: string) => void = () => undefined): string[] {
  const seen: string[] = [];
  for (const output of [child.stdout, child.stderr]) {
    if (!output) continue;
    createInterface({ input: output }).on('line', (line) => {
      seen.push(line);
      onLine(line);
    });
  }
  return seen;
}

/** The real CLI in its own process, so it can be killed; resolves once it listens. */
async function startNode(name: string): Promise<HeraldNode> {
  const data = mkdtempSync(join(temp, `${name}-`));
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/cli.ts', 'start', '--port', '0', '--data', data], {
    cwd: root,
    env: {
      ...process.env,
      HERALD_STORE_URL: storeUrl,
      HERALD_STORE_SCHEMA: storeSchema,
      HERALD_REDIS_URL: 'redis://127.0.0.1:6379',
      HERALD_REDIS_PREFIX: `herald-nginx-${run}:`,
      HERALD_ADMIN_TOKEN: adminToken,
      HERALD_RATE_LIMITS: 'off',
      HERALD_TRUST_PROXY: 'true',
      HERALD_HEARTBEAT_MS: String(heartbeatMs),
      HERALD_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const exited = once(child, 'exit');
  let found: ((url: string) => void) | undefined;
  const listening = new Promise<string>((resolve) => (found = resolve));
  const output = lines(child, (line) => {
    const url = /listening on (https?:\/\/\S+)/.exec(line)?.[1];
    if (url) found?.(url);
  });
  const died = exited.then(() => {
    throw new Error(`node ${name} exited before listening:\n${output.join('\n')}`);
  });
  died.catch(() => undefined);
  return { child, url: await Promise.race([listening, died]), exited };
}

/** Replaces the one line of the committed config that `pattern` matches; the test fails if it is not there. */
function replaceOnce(text: string, pattern: RegExp, replacement: string): string {
  const count = text.match(new RegExp(pattern.source, 'gm'))?.length ?? 0;
  if (count !== 1) throw new Error(`deploy/nginx/herald.conf: expected one line matching ${String(pattern)}, found ${count}`);
  return text.replace(new RegExp(pattern.source, 'm'), replacement);
}

/**
 * deploy/nginx/herald.conf inside the smallest nginx.conf that runs it unprivileged from a temp dir. Only the
 * listen address, the certificate lines (the test speaks plain HTTP) and the node addresses change.
 */
function nginxConfig(dir: string, port: number, upstreams: [string, string]): string {
  let snippet = readFileSync(nginxConf, 'utf8');
  snippet = replaceOnce(snippet, /^([ \t]*)listen 443 ssl;$/, `$1listen 127.0.0.1:${port};`);
  snippet = replaceOnce(snippet, /^[ \t]*ssl_certificate[ \t].*\n/, '');
  snippet = replaceOnce(snippet, /^[ \t]*ssl_certificate_key[ \t].*\n/, '');
  snippet = replaceOnce(snippet, /server 10\.0\.0\.11:8080 /, `server ${upstreams[0]} `);
  snippet = replaceOnce(snippet, /server 10\.0\.0\.12:8080 /, `server ${upstreams[1]} `);
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `${kind}_temp_path ${join(dir, kind)};`).join('\n  ');
  return `# Written by test/server/nginx-failover.test.ts around deploy/nginx/herald.conf.
# One process (no master and workers), so a SIGKILL in cleanup leaves nothing behind.
master_process off;
daemon off;
pid ${join(dir, 'nginx.pid')};
# notice: nginx then logs its OS status once its listen socket is bound, which is the start signal.
error_log stderr notice;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  ${temps}
${snippet}
}
`;
}

/** nginx in the foreground; resolves once its port is bound. */
async function startNginx(upstreams: [string, string]): Promise<{ child: ChildProcess; url: string }> {
  const dir = mkdtempSync(join(temp, 'nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, nginxConfig(dir, port, upstreams));
  // -e: the error log before the config is read; the default (/var/log/nginx) is not writable unprivileged.
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let bound: (() => void) | undefined;
  const ready = new Promise<void>((resolve) => (bound = resolve));
  // nginx logs its OS status (ngx_os_status) after ngx_init_cycle has bound the listen sockets.
  const output = lines(child, (line) => {
    if (line.includes('getrlimit(RLIMIT_NOFILE)')) bound?.();
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`nginx exited with ${String(code)}:\n${output.join('\n')}`)));
  });
  failed.catch(() => undefined);
  await Promise.race([ready, failed]);
  return { child, url: `http://127.0.0.1:${port}` };
}

async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await response.text();
  // nginx's own 502 page is HTML; only the node's answers are JSON.
  return { status: response.status, body: (response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T };
}

/** The `herald_connections` gauge of one node, read from the node itself rather than through nginx. */
async function connectionsOn(node: HeraldNode): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const value = /^herald_connections (\d+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error('no herald_connections in /metrics');
  return Number(value);
}

/** Runs `work(i)` for i = 0..count-1 with `lanes` calls in flight. */
async function inLanes(count: number, lanes: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

beforeAll(async () => {
  // One after the other: B finds the schema that A migrated.
  nodeA = await startNode('a');
  nodeB = await startNode('b');
  proxy = await startNginx([new URL(nodeA.url).host, new URL(nodeB.url).host]);
});

afterAll(async () => {
  const running = children.filter((child) => child.exitCode === null && child.signalCode === null);
  const exits = running.map((child) => once(child, 'exit'));
  for (const child of running) child.kill('SIGKILL');
  await Promise.all(exits);
  rmSync(temp, { recursive: true, force: true });
  const client = new pg.Client({ connectionString: storeUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${storeSchema} CASCADE`);
  } finally {
    await client.end();
  }
});

it('keeps the stream timeouts of deploy/nginx/herald.conf above the heartbeat and ping, and never retries a publish on another node', () => {
  const conf = readFileSync(nginxConf, 'utf8').replace(/#.*$/gm, '');
  const stream = /location = \/v1\/stream \{([^}]*)\}/.exec(conf)?.[1] ?? '';
  for (const directive of ['proxy_read_timeout', 'proxy_send_timeout']) {
    const seconds = Number(new RegExp(`${directive} (\\d+)s;`).exec(stream)?.[1]);
    expect(seconds * 1000, directive).toBeGreaterThanOrEqual(2 * Math.max(defaults.heartbeatMs, defaults.pingIntervalMs));
  }
  // A POST that reached a node which then died may be committed: sending it to the next node would store it twice.
  expect(conf).toMatch(/proxy_next_upstream error timeout;/);
  expect(conf).not.toMatch(/non_idempotent/);
  expect(conf).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
});

it('shows deploy/nginx/herald.conf and deploy/systemd/herald.service in docs/self-hosting.md exactly as committed', () => {
  const docs = readFileSync(join(root, 'docs/self-hosting.md'), 'utf8');
  expect(docs).toContain('```nginx\n' + readFileSync(nginxConf, 'utf8') + '```');
  expect(docs).toContain('```ini\n' + readFileSync(join(root, 'deploy/systemd/herald.service'), 'utf8') + '```');
});

interface Device {
  user: string;
  connection: Connection;
  ids: string[];
  titles: string[];
  seqs: number[];
  /** performance.now() of every `synced`. */
  synced: number[];
  disconnects: { at: number; cause: DisconnectCause; code: number }[];
}

it('resumes 2,000 devices on the surviving node after kill -9 of the other, with 0 lost and 0 duplicated of every accepted publish', { timeout: 110_000 }, async () => {
  const base = proxy.url;
  const began = performance.now();
  expect((await api(base, 'GET', '/readyz')).body).toEqual({ status: 'ready', store: true, broker: true });

  // Users and one device token per device, created through nginx.
  const users = Array.from({ length: userCount }, (_, i) => `u${String(i).padStart(3, '0')}`);
  await inLanes(users.length, 16, async (i) => {
    expect((await api(base, 'POST', '/v1/users', { name: users[i] })).status).toBe(201);
  });
  const tokens: { user: string; token: string }[] = [];
  await inLanes(users.length * devicesPerUser, 32, async (i) => {
    const user = users[i % userCount] ?? '';
    const created = await api<{ token: string }>(base, 'POST', '/v1/tokens', { kind: 'device', user });
    expect(created.status).toBe(201);
    tokens.push({ user, token: created.body.token });
  });
  const setUpAt = performance.now();

  // Everything below waits on device events: each one re-checks whatever the test is waiting for.
  const waiting = new Set<() => void>();
  const poke = () => {
    for (const check of [...waiting]) check();
  };
  const waitFor = (done: () => boolean, what: () => string, ms = 45_000) =>
    new Promise<void>((resolve, reject) => {
      // A bound that turns a hang into a readable failure; nothing waits on this timer for a result.
      const timer = setTimeout(() => {
        waiting.delete(check);
        reject(new Error(`still waiting after ${ms} ms: ${what()}`));
      }, ms);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        waiting.delete(check);
        resolve();
      };
      waiting.add(check);
      check();
    });

  let killedAt = Infinity;
  let firstSynced = 0;
  let resumed = 0;
  let lastResumedAt = 0;
  /** Once publishing has ended: the accepted ids each device still lacks. */
  let missing: Map<Device, Set<string>> | undefined;
  let incomplete = 0;
  const reports: unknown[] = [];

  const devices: Device[] = tokens.map(({ user, token }) => {
    const connection = createConnection({
      server: base,
      token,
      cursor: memoryCursor(),
      // The default first window (500 ms) spreads the dropped devices' reconnects; a cap of 2 s instead of
      // 30 s keeps a device that is unlucky twice from stretching the test.
      backoffCapMs: 2_000,
      deadLinkGraceMs,
      report: (error) => reports.push(error),
    });
    const device: Device = { user, connection, ids: [], titles: [], seqs: [], synced: [], disconnects: [] };
    connection.on('notification', (item) => {
      device.ids.push(item.id);
      device.titles.push(item.title);
      device.seqs.push(item.seq);
      const lacking = missing?.get(device);
      if (lacking?.delete(item.id) === true && lacking.size === 0) {
        incomplete -= 1;
        poke();
      }
    });
    connection.on('synced', () => {
      const now = performance.now();
      device.synced.push(now);
      if (device.synced.length === 1) firstSynced += 1;
      // The first `synced` after this device was dropped by the kill: it has resumed on the survivor.
      const since = device.disconnects.find((d) => d.at >= killedAt)?.at;
      if (since !== undefined && device.synced.filter((at) => at > since).length === 1) {
        resumed += 1;
        lastResumedAt = now;
      }
      poke();
    });
    connection.on('disconnect', (disconnect) => {
      device.disconnects.push({ at: performance.now(), cause: disconnect.cause, code: disconnect.code });
      poke();
    });
    return device;
  });

  try {
    // In waves, as desktops come online through a morning rather than in one instant (which would overflow
    // the listen backlogs of nginx and the nodes on this small machine, and only test TCP's SYN retries).
    const wave = 250;
    for (let started = 0; started < devices.length; ) {
      for (const device of devices.slice(started, started + wave)) device.connection.start();
      started = Math.min(devices.length, started + wave);
      await waitFor(
        () => firstSynced >= started,
        () => `${firstSynced} of ${started} devices synced`,
      );
    }
    const connectedAt = performance.now();
    // Round robin put about half of them on each node.
    const onA = await connectionsOn(nodeA);
    const onB = await connectionsOn(nodeB);
    expect(onA + onB).toBe(devices.length);
    expect(onB).toBeGreaterThan(devices.length / 4);

    // Publishers through nginx: every 202 is recorded with its recipients, and so is every other outcome.
    const accepted = new Map<string, { id: string; to: string[] }>();
    const unanswered = new Map<string, { to: string[]; outcome: string }>();
    let acceptedAfterKill = 0;
    let stop = false;
    let sent = 0;
    const lane = async () => {
      while (!stop) {
        const title = `n${sent++}`;
        const first = Math.floor(Math.random() * userCount);
        const second = (first + 1 + Math.floor(Math.random() * (userCount - 1))) % userCount;
        const to = [users[first] ?? '', users[second] ?? ''];
        try {
          const { status, body } = await api<{ id: string }>(base, 'POST', '/v1/notifications', { to: { users: to }, title });
          if (status === 202) {
            accepted.set(title, { id: body.id, to });
            if (killedAt !== Infinity) acceptedAfterKill += 1;
          } else {
            unanswered.set(title, { to, outcome: String(status) });
          }
        } catch (error) {
          unanswered.set(title, { to, outcome: error instanceof Error ? error.message : String(error) });
        }
        if (killedAt === Infinity && accepted.size >= acceptedPerPhase) {
          // Mid-stream: the other lanes have publishes in flight, some of them on node B.
          killedAt = performance.now();
          nodeB.child.kill('SIGKILL');
        }
        // Go on until every dropped device is back, so publishes land before, during and after its resume.
        if (acceptedAfterKill >= acceptedPerPhase && resumed >= onB) stop = true;
        if (sent > 50_000) stop = true; // a bound for a failing run, far above a passing one
      }
    };
    await Promise.all(Array.from({ length: 8 }, lane));
    const publishedAt = performance.now();
    expect((await nodeB.exited)[1]).toBe('SIGKILL');
    expect(resumed, 'devices resumed when publishing stopped').toBe(onB);

    // One last publish to every user, accepted by the survivor.
    const last = await api<{ id: string }>(base, 'POST', '/v1/notifications', { to: { users }, title: 'last' });
    expect(last.status).toBe(202);
    accepted.set('last', { id: last.body.id, to: users });

    const acceptedIdsOf = new Map<string, Set<string>>(users.map((user) => [user, new Set()]));
    for (const { id, to } of accepted.values()) for (const user of to) acceptedIdsOf.get(user)?.add(id);
    missing = new Map(
      devices.map((device) => {
        const held = new Set(device.ids);
        return [device, new Set([...(acceptedIdsOf.get(device.user) ?? [])].filter((id) => !held.has(id)))];
      }),
    );
    incomplete = [...missing.values()].filter((lacking) => lacking.size > 0).length;
    await waitFor(
      () => incomplete === 0,
      () => `${incomplete} devices still lack accepted notifications`,
    );
    const caughtUpAt = performance.now();

    // Per device: every accepted publish of its user, once; nothing else but publishes whose answer was lost; seqs ascending.
    const titleOf = new Map([...accepted].map(([title, { id }]) => [id, title]));
    let lost = 0;
    let duplicated = 0;
    let foreign = 0;
    let unordered = 0;
    for (const device of devices) {
      const ids = new Set(device.ids);
      duplicated += device.ids.length - ids.size;
      duplicated += device.titles.length - new Set(device.titles).size; // one publish stored twice, under two ids
      for (const id of acceptedIdsOf.get(device.user) ?? []) if (!ids.has(id)) lost += 1;
      for (const [i, id] of device.ids.entries()) {
        const title = device.titles[i] ?? '';
        if (titleOf.get(id) !== title && unanswered.get(title)?.to.includes(device.user) !== true) foreign += 1;
      }
      for (let i = 1; i < device.seqs.length; i++) if ((device.seqs[i] ?? 0) <= (device.seqs[i - 1] ?? 0)) unordered += 1;
    }
    expect({ lost, duplicated, foreign, unordered }).toEqual({ lost: 0, duplicated: 0, foreign: 0, unordered: 0 });

    // A publish whose answer was lost (nginx's 502 when node B died under it) was either committed before the
    // kill, and then reached every device of every recipient, or not, and then reached none.
    for (const [title, { to }] of unanswered) {
      const holders = devices.filter((device) => to.includes(device.user) && device.titles.includes(title)).length;
      expect([0, to.length * devicesPerUser], `devices holding ${title}`).toContain(holders);
    }
    // Only node B's death failed publishes, and nginx answered each of those with 502 Bad Gateway.
    expect(new Set([...unanswered.values()].map((u) => u.outcome))).toEqual(new Set(unanswered.size === 0 ? [] : ['502']));

    // Exactly the devices on node B were dropped, by the network (nginx closing the relayed connection), and
    // each resumed through nginx on node A. No device took its link for dead: heartbeats pass through nginx.
    const dropped = devices.filter((device) => device.disconnects.some((d) => d.at >= killedAt));
    expect(dropped.length).toBe(onB);
    expect(devices.flatMap((device) => device.disconnects.map((d) => d.cause)).filter((cause) => cause !== 'network')).toEqual([]);
    expect(reports).toEqual([]);
    expect(await connectionsOn(nodeA)).toBe(devices.length);

    const ms = (from: number, to: number) => `${Math.round(to - from)} ms`;
    console.info(
      [
        `nginx failover: ${devices.length} devices (${onB} on the killed node), ${accepted.size} publishes accepted`,
        `(${acceptedAfterKill} after the kill), ${unanswered.size} answered 502 by nginx; lost ${lost}, duplicated ${duplicated}.`,
        `Setup ${ms(began, setUpAt)}, connect ${ms(setUpAt, connectedAt)}, publishing ${ms(connectedAt, publishedAt)} with 8 lanes;`,
        `after the kill: all resumed in ${ms(killedAt, lastResumedAt)},`,
        `all caught up in ${ms(killedAt, caughtUpAt)}.`,
      ].join(' '),
    );
  } finally {
    await Promise.all(devices.map((device) => device.connection.close()));
  }
});
