/**
 * Reconnect storm (Herald only): every device of a server comes back at once after a restart.
 *
 * Herald (the embedded default, JWT device auth, rate limits off as in every bench run, admission control on at
 * its defaults) starts on a fixed port. N devices connect from holder processes (bench/storm-process.ts), each one
 * the desktop app's own reconnecting connection (main/connection.ts over StreamClient: full-jitter backoff,
 * Retry-After as a floor, cursor resume). One notification per device is published and delivered. Then the server
 * gets SIGTERM (every socket closes with 4000), a replacement process that has already loaded its modules starts
 * on the same port and data directory, and one more notification per device is published while the devices
 * reconnect. Measured: the time from the SIGTERM until every device is synced again; notifications accepted (202)
 * but never handed to their device (lost) or handed over twice (duplicates); the replacement server's event-loop
 * delay while the devices come back; upgrades refused by admission control; and the server's CPU.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { z } from 'zod';
import { resolveConfig, type Config, type ConfigInput } from '../server/src/index.js';
import { readCpuMs, readCpuMsOf } from './proc.js';
import { userName } from './servers.js';
import { distribution, sorted, thousands, waitFor } from './stats.js';
import {
  fromHolder,
  fromServer,
  holderOptions,
  type DeviceReport,
  type FromHolder,
  type FromServer,
  type HolderOptions,
  type LagFigures,
  type ToHolder,
  type ToServer,
} from './storm-protocol.js';

export interface StormSettings {
  /** Devices, one user each. */
  devices: number;
  /** Devices per holder process; at most 5,000. */
  perHolder: number;
  /** The first connects (not measured) are spread over this long, ms. */
  rampMs: number;
  /** Notifications per device published before the restart, and after it while the devices reconnect. */
  before: number;
  after: number;
  /** The publishes after the restart are spread over this long, so they meet devices offline, replaying and live, ms. */
  afterSpreadMs: number;
  /** The storm gives up this long after the SIGTERM, ms. */
  timeoutMs: number;
  /** Herald settings over the storm's (e.g. `admission`). */
  config?: ConfigInput;
}

/** The storm as issue 5 states it: 15,000 devices. */
export const fullStorm: StormSettings = { devices: 15_000, perHolder: 5_000, rampMs: 10_000, before: 1, after: 1, afterSpreadMs: 3_000, timeoutMs: 120_000 };
/** A smoke test, not figures to publish. */
export const quickStorm: StormSettings = { ...fullStorm, devices: 2_000, rampMs: 2_000 };

/** Targets of issue 5; the runner judges a result against them. */
export const stormTargets = {
  /** Every device synced again after the SIGTERM, ms. */
  resumeMs: 10_000,
  lost: 0,
  duplicates: 0,
  /** Event-loop delay p99 of the restarted server while the devices come back, ms. */
  lagP99Ms: 250,
};

export interface StormResult {
  devices: number;
  holders: number;
  sourceAddresses: string[];
  /** The admission control the server ran with. */
  admission: Config['admission'];
  /** Notifications accepted (202) before and after the restart. */
  published: { before: number; after: number };
  /** SIGTERM → the old server gone (every socket closed with 4000), ms. */
  stopMs: number;
  /** SIGTERM → the replacement listening, ms. */
  downMs: number;
  /** Devices synced again after the SIGTERM (all of them, or the run throws). */
  resumed: number;
  /** SIGTERM → each device synced again, ms: the storm's length is `max`. */
  resume: { p50: number; p90: number; p99: number; max: number };
  /** Accepted notifications never handed to their device, and a few of them as `user/id`. */
  lost: number;
  lostExamples: string[];
  /** (user, id) or (user, seq) handed to the app more than once. */
  duplicates: number;
  /** Event-loop delay of the replacement server from its listen until every device was back, ms (beyond the 10 ms sampling interval). */
  lag: LagFigures;
  /** The worst delay of each second of the storm, ms. */
  lagBySecond: number[];
  /** Upgrades the replacement refused: admission control (503) and per-address limits (429), from its /metrics. */
  refused: { overloaded: number; rateLimited: number };
  /** Failed attempts the devices made after the SIGTERM (refused while down, 503, resets), and of those 503s. */
  failedAttempts: number;
  overloadedAttempts: number;
  /**
   * The worst event-loop delay of a holder process during the storm, ms. Devices of a holder that lags send their
   * `hello` late; past the server's `liveOnlyAfterMs` (2 s) that meets a live-only session (see errorFrames).
   */
  holderLagMax: number;
  /**
   * CPU from the replacement's listen until every device was back: server and holders (the load generator, whose CPU
   * on two shared cores is CPU the server did not get), percent of one core and ms per device.
   */
  cpu: { serverPercent: number; holdersPercent: number; serverMsPerDevice: number; holdersMsPerDevice: number };
  /** `error` frames the devices got, by code. */
  errorFrames: Record<string, number>;
  /** Problems the devices reported (error frames, sign-outs, listener errors): the first few. */
  problems: string[];
}

/** Messages that only listeners see: periodic, and never waited for. */
const streamed = new Set(['progress', 'counts', 'tick']);

/** A child process forked directly, speaking the storm's own messages (bench/storm-protocol.ts). */
class StormChild<In, Out extends { type: string }> {
  readonly #inbox: Out[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #listeners = new Set<(message: Out) => void>();
  readonly exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  constructor(
    readonly name: string,
    readonly process: ChildProcess,
    schema: z.ZodType<Out>,
  ) {
    process.on('message', (raw: unknown) => {
      const message = schema.parse(raw);
      for (const listener of this.#listeners) listener(message);
      if (streamed.has(message.type)) return;
      this.#inbox.push(message);
      for (const wake of this.#waiters) wake();
    });
    this.exited = new Promise((resolve) => {
      process.on('exit', (code) => {
        this.#exitCode = code;
        for (const wake of this.#waiters) wake();
        resolve(code);
      });
    });
  }

  /** `node --import tsx <file>`; its output goes to the runner's stderr, apart from the results. */
  static start<In, Out extends { type: string }>(name: string, file: string, args: string[], schema: z.ZodType<Out>): StormChild<In, Out> {
    const child = fork(new URL(file, import.meta.url), args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 2, 2, 'ipc'], serialization: 'json' });
    return new StormChild<In, Out>(name, child, schema);
  }

  get pid(): number {
    const pid = this.process.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid`);
    return pid;
  }

  get running(): boolean {
    return this.#exitCode === undefined;
  }

  send(message: In): void {
    if (this.process.connected) this.process.send(message as object);
  }

  onMessage(listener: (message: Out) => void): void {
    this.#listeners.add(listener);
  }

  /** The next message of `type` not yet taken; rejects on `failed`, on exit and after `timeoutMs`. */
  next<T extends Out['type']>(type: T, timeoutMs: number): Promise<Extract<Out, { type: T }>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.#inbox.findIndex((m) => m.type === type || m.type === 'failed');
        if (index >= 0) {
          const [message] = this.#inbox.splice(index, 1);
          done();
          if (message?.type === 'failed') reject(new Error(`${this.name}: ${String((message as { message?: unknown }).message)}`));
          else resolve(message as Extract<Out, { type: T }>);
          return;
        }
        if (this.#exitCode !== undefined) {
          done();
          reject(new Error(`${this.name} exited with ${String(this.#exitCode)} while the storm waited for ${type}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Sends `signal` (this pid only), then SIGKILL if it has not exited within `timeoutMs`. Resolves once it exited. */
  async stop(signal: 'SIGTERM' | 'message', stopMessage: In, timeoutMs: number): Promise<void> {
    if (this.#exitCode !== undefined) return;
    if (signal === 'SIGTERM') this.process.kill('SIGTERM');
    else this.send(stopMessage);
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}

type ServerChild = StormChild<ToServer, FromServer>;
type HolderChild = StormChild<ToHolder, FromHolder>;

async function freePort(): Promise<number> {
  const probe = createTcpServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function createAppToken(url: string, adminToken: string): Promise<string> {
  const response = await fetch(`${url}/v1/tokens`, {
    signal: AbortSignal.timeout(10_000),
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'app', name: 'storm' }),
  });
  const body = (await response.json()) as { token?: unknown };
  if (response.status !== 201 || typeof body.token !== 'string') throw new Error(`creating an app token: ${response.status} ${JSON.stringify(body)}`);
  return body.token;
}

/** Notifications per batch request: the contract's maximum. */
const batchSize = 100;
/** Batch requests in flight at once. */
const publishParallel = 4;
/** Once every device is back and every publish accepted, the rest must arrive within this long or counts as lost, ms. */
const settleMs = 15_000;
/** A publish that has no answer after this long fails the run, ms. */
const publishTimeoutMs = 30_000;

/**
 * Publishes one notification to each user of `users` per round, `rounds` times, in batches, spread over `spreadMs`
 * (0: as fast as they go). Returns the accepted ids per user; anything but a 202 throws.
 */
async function publishRound(url: string, token: string, users: string[], rounds: number, label: string, spreadMs: number): Promise<Map<string, string[]>> {
  const items: { user: string; title: string }[] = [];
  for (let round = 0; round < rounds; round++) users.forEach((user) => items.push({ user, title: `storm ${label} ${round} for ${user}` }));
  const batches: (typeof items)[] = [];
  for (let i = 0; i < items.length; i += batchSize) batches.push(items.slice(i, i + batchSize));
  const accepted = new Map<string, string[]>();
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const index = next++;
      const batch = batches[index] ?? [];
      const due = started + (spreadMs * index) / batches.length;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const response = await fetch(`${url}/v1/notifications/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ notifications: batch.map((item) => ({ to: { users: [item.user] }, title: item.title, body: 'reconnect storm' })) }),
        signal: AbortSignal.timeout(publishTimeoutMs),
      });
      const body = (await response.json()) as { notifications?: { id: string }[] };
      if (response.status !== 202 || body.notifications?.length !== batch.length) throw new Error(`publishing ${label}: ${response.status} ${JSON.stringify(body).slice(0, 200)}`);
      batch.forEach((item, i) => {
        const id = body.notifications?.[i]?.id;
        if (id === undefined) return;
        const ids = accepted.get(item.user) ?? [];
        ids.push(id);
        accepted.set(item.user, ids);
      });
    }
  };
  await Promise.all(Array.from({ length: publishParallel }, worker));
  return accepted;
}

function count(ids: Map<string, string[]>): number {
  let total = 0;
  for (const list of ids.values()) total += list.length;
  return total;
}

/** Live figures from /metrics, for the progress lines. */
async function gauges(url: string): Promise<{ connections: number; pending: number; overloaded: number }> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { connections: value('herald_connections'), pending: value('herald_handshakes_pending'), overloaded: value('herald_connections_refused_total{reason="overloaded"}') };
}

async function refusals(url: string): Promise<{ overloaded: number; rateLimited: number }> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const value = (reason: string) => Number(new RegExp(`^herald_connections_refused_total\\{reason="${reason}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { overloaded: value('overloaded'), rateLimited: value('rate_limited') };
}

function startServerProcess(name: string): ServerChild {
  return StormChild.start<ToServer, FromServer>(name, './storm-server.ts', [], fromServer);
}

export async function runStorm(settings: StormSettings, log: (line: string) => void): Promise<StormResult> {
  if (settings.perHolder > 5_000) throw new RangeError('perHolder must be at most 5,000 (sockets per process)');
  const port = await freePort();
  const data = mkdtempSync(join(tmpdir(), 'herald-storm-'));
  const adminToken = randomBytes(32).toString('hex');
  const jwtSecret = randomBytes(32).toString('hex');
  // The bench's Herald settings (servers.ts), on a fixed port so that the replacement takes the same one.
  const config: ConfigInput = { port, host: '127.0.0.1', data, adminToken, jwt: { secret: jwtSecret }, logLevel: 'warn', rateLimits: false, sqliteSynchronous: 'full', ...settings.config };
  const servers: ServerChild[] = [];
  const holders: HolderChild[] = [];
  const label = `${thousands(settings.devices)} devices`;
  try {
    log(`${label}: starting Herald on 127.0.0.1:${port}`);
    const first = startServerProcess('storm server');
    servers.push(first);
    await first.next('loaded', 60_000);
    first.send({ type: 'start', config });
    const { url } = await first.next('ready', 60_000);
    const appToken = await createAppToken(url, adminToken);
    // The replacement loads its modules now, so the restart costs Herald's own start, not the TypeScript loader.
    const second = startServerProcess('storm server (restarted)');
    servers.push(second);

    const holderCount = Math.ceil(settings.devices / settings.perHolder);
    const sourceAddresses = Array.from({ length: holderCount }, (_, i) => `127.0.0.${i + 2}`);
    const progress = new Map<number, { synced: number; resumed: number; received: number }>();
    const holderLag = new Map<number, number>();
    let stormRunning = false;
    let holderLagMax = 0;
    for (let i = 0; i < holderCount; i++) {
      const share = Math.floor(settings.devices / holderCount) + (i < settings.devices % holderCount ? 1 : 0);
      const firstUser = i * Math.floor(settings.devices / holderCount) + Math.min(i, settings.devices % holderCount);
      const options: HolderOptions = holderOptions.parse({ server: url, jwtSecret, first: firstUser, count: share, localAddress: sourceAddresses[i], rampMs: settings.rampMs });
      const holder = StormChild.start<ToHolder, FromHolder>(`storm holder ${i + 1}`, './storm-process.ts', [JSON.stringify(options)], fromHolder);
      holder.onMessage((message) => {
        if (message.type === 'progress' || message.type === 'counts') progress.set(i, { synced: message.synced, resumed: message.resumed, received: message.received });
        if (message.type !== 'progress') return;
        holderLag.set(i, Math.round(message.lagMax));
        if (stormRunning) holderLagMax = Math.max(holderLagMax, message.lagMax);
      });
      holders.push(holder);
    }
    const total = (key: 'synced' | 'resumed' | 'received') => [...progress.values()].reduce((sum, p) => sum + p[key], 0);
    const failIfGone = () => {
      const gone = [...holders, ...servers.slice(1)].find((child) => !child.running);
      if (gone) throw new Error(`${gone.name} exited during the storm`);
    };

    const connectTimeoutMs = settings.rampMs + 120_000;
    const connectStarted = performance.now();
    const ticker = setInterval(() => log(`${label}: ${thousands(total('synced'))} connected`), 2_000);
    const connected = await waitFor(() => total('synced') >= settings.devices || holders.some((h) => !h.running), connectTimeoutMs, 100).finally(() => clearInterval(ticker));
    failIfGone();
    if (!connected) throw new Error(`storm: only ${thousands(total('synced'))} of ${label} connected within ${connectTimeoutMs / 1000} s`);
    log(`${label}: all connected in ${((performance.now() - connectStarted) / 1000).toFixed(1)} s; publishing ${thousands(settings.devices * settings.before)} before the restart`);

    const users = Array.from({ length: settings.devices }, (_, i) => userName(i));
    const before = await publishRound(url, appToken, users, settings.before, 'before', 0);
    const delivered = await waitFor(
      () => {
        holders.forEach((h) => h.send({ type: 'count' }));
        return total('received') >= count(before);
      },
      60_000,
      250,
    );
    if (!delivered) throw new Error(`storm: only ${thousands(total('received'))} of ${thousands(count(before))} notifications delivered before the restart`);
    await second.next('loaded', 60_000);

    // The storm.
    holders.forEach((h) => h.send({ type: 'mark' }));
    stormRunning = true;
    log(`${label}: SIGTERM to the server`);
    const killedAt = Date.now();
    await first.stop('SIGTERM', { type: 'stop' }, 30_000);
    const stopMs = Date.now() - killedAt;
    second.send({ type: 'start', config });
    const ready = await second.next('ready', 30_000);
    const downMs = ready.at - killedAt;
    const serverCpu0 = readCpuMs(second.pid);
    const holderCpu0 = readCpuMsOf(holders.map((h) => h.pid));
    const cpuStarted = performance.now();
    log(`${label}: old server gone after ${stopMs} ms, new one listening ${downMs} ms after the SIGTERM; publishing ${thousands(settings.devices * settings.after)} more`);

    const lagBySecond: number[] = [];
    second.onMessage((message) => {
      if (message.type === 'tick' && stormRunning) lagBySecond.push(Math.round(message.max));
    });
    let publishError: Error | undefined;
    const publishing = publishRound(url, appToken, users, settings.after, 'after', settings.afterSpreadMs).catch((error: unknown) => {
      publishError = error instanceof Error ? error : new Error(String(error));
      return new Map<string, string[]>();
    });
    const stormTicker = setInterval(() => {
      holders.forEach((h) => h.send({ type: 'count' }));
      const at = ((Date.now() - killedAt) / 1000).toFixed(1);
      const holdersDelay = [...holderLag.values()].join('/');
      gauges(url).then(
        (g) =>
          log(
            `${label}: ${thousands(total('resumed'))} resumed after ${at} s; server: delay ${lagBySecond.at(-1) ?? 0} ms, ` +
              `${thousands(g.connections)} connections, ${g.pending} handshakes pending, ${thousands(g.overloaded)} refused; holders' delay ${holdersDelay} ms`,
          ),
        () => log(`${label}: ${thousands(total('resumed'))} resumed after ${at} s; /metrics did not answer within 2 s`),
      );
    }, 1_000);
    const deadline = killedAt + settings.timeoutMs;
    const allBack = await waitFor(
      () => {
        failIfGone();
        return total('resumed') >= settings.devices;
      },
      deadline - Date.now(),
      50,
    ).finally(() => {
      clearInterval(stormTicker);
      stormRunning = false;
    });
    if (!allBack) throw new Error(`storm: only ${thousands(total('resumed'))} of ${label} synced again within ${settings.timeoutMs / 1000} s of the SIGTERM`);
    const windowMs = performance.now() - cpuStarted;
    const serverCpuMs = readCpuMs(second.pid) - serverCpu0;
    const holderCpuMs = readCpuMsOf(holders.map((h) => h.pid)) - holderCpu0;
    second.send({ type: 'lag', reset: false });
    const { lag } = await second.next('lag', 10_000);

    const after = await publishing;
    if (publishError !== undefined) throw publishError;
    const expected = count(before) + count(after);
    const settled = await waitFor(
      () => {
        holders.forEach((h) => h.send({ type: 'count' }));
        return total('received') >= expected;
      },
      settleMs,
      250,
    );
    if (!settled) log(`${label}: ${thousands(total('received'))} of ${thousands(expected)} notifications handed over when the wait ended; the rest count as lost`);

    const reports: DeviceReport[] = [];
    let duplicates = 0;
    const problems: string[] = [];
    for (const holder of holders) {
      holder.send({ type: 'report' });
      const report = await holder.next('report', 60_000);
      reports.push(...report.devices);
      duplicates += report.duplicates;
      problems.push(...report.problems);
    }
    const receivedBy = new Map(reports.map((r) => [r.user, new Set(r.ids)]));
    const errorsBy = new Map(reports.map((r) => [r.user, r.errors]));
    const lostExamples: string[] = [];
    let lost = 0;
    for (const ids of [before, after]) {
      for (const [user, list] of ids) {
        for (const id of list) {
          if (receivedBy.get(user)?.has(id) === true) continue;
          lost++;
          const frames = errorsBy.get(user) ?? [];
          const when = ids === before ? 'before' : 'after';
          if (lostExamples.length < 5) lostExamples.push(`${user}/${id} (${when} the restart${frames.length > 0 ? `; error frames: ${frames.join(', ')}` : ''})`);
        }
      }
    }
    const resumeTimes = distribution(sorted(reports.flatMap((r) => (r.resumedAt === undefined ? [] : [r.resumedAt - killedAt]))));
    const result: StormResult = {
      devices: settings.devices,
      holders: holderCount,
      sourceAddresses,
      admission: resolveConfig(config).admission,
      published: { before: count(before), after: count(after) },
      stopMs,
      downMs,
      resumed: resumeTimes.count,
      resume: { p50: resumeTimes.p50, p90: resumeTimes.p90, p99: resumeTimes.p99, max: resumeTimes.max },
      lost,
      lostExamples,
      duplicates,
      lag: roundLag(lag),
      lagBySecond,
      refused: await refusals(url),
      holderLagMax: Math.round(holderLagMax),
      failedAttempts: reports.reduce((sum, r) => sum + r.failedAttempts, 0),
      overloadedAttempts: reports.reduce((sum, r) => sum + r.overloaded, 0),
      cpu: {
        serverPercent: Math.round((serverCpuMs / windowMs) * 100),
        holdersPercent: Math.round((holderCpuMs / windowMs) * 100),
        serverMsPerDevice: Math.round((serverCpuMs / settings.devices) * 1000) / 1000,
        holdersMsPerDevice: Math.round((holderCpuMs / settings.devices) * 1000) / 1000,
      },
      errorFrames: countCodes(reports.flatMap((r) => r.errors)),
      problems: problems.slice(0, 10),
    };
    log(
      `${label}: all synced again ${result.resume.max} ms after the SIGTERM (p50 ${result.resume.p50} ms); lost ${lost}, duplicates ${duplicates}; ` +
        `event-loop delay p99 ${result.lag.p99} ms, max ${result.lag.max} ms; ${thousands(result.refused.overloaded)} upgrades refused (503)`,
    );
    return result;
  } finally {
    await Promise.all(holders.map((h) => h.stop('message', { type: 'stop' }, 15_000)));
    await Promise.all(servers.map((s) => s.stop('SIGTERM', { type: 'stop' }, 30_000)));
    rmSync(data, { recursive: true, force: true });
  }
}

function countCodes(codes: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const code of codes) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}

function roundLag(lag: LagFigures): LagFigures {
  const r = (v: number) => Math.round(v * 10) / 10;
  return { p50: r(lag.p50), p99: r(lag.p99), max: r(lag.max), mean: r(lag.mean), samples: lag.samples };
}
