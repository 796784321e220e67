/**
 * Broadcast, side by side: N idle clients held by holder processes, then M notifications of 200 bytes each
 * published to all of them through `POST /v1/notifications` with `{ "to": { "all": true } }`, the same
 * requests for Herald and for the peers. Herald stores an inbox row per recipient before it sends (its
 * persistence stays on); the peers only send.
 *
 * The primary figure is server CPU time per delivery: the server process's own CPU accounting (all threads,
 * from /proc) over the window from the first publish to the last arrival, divided by the frames the clients
 * received. On two cores shared with the load generator, deliveries/s often measures the generator; CPU per
 * delivery does not.
 */
import type { Child } from './child.js';
import { countHolders, startHolder } from './memory.js';
import { readCpuMs, readMainThreadCpuMs, readRss } from './proc.js';
import { protocolOf, startServer, type RunningServer, type Target } from './servers.js';
import { distribution, progress, rounded, sorted, thousands, type Distribution } from './stats.js';

export interface BroadcastOptions {
  target: Target;
  /** Connected clients. */
  clients: number;
  /** Notifications per measured run. */
  messages: number;
  /** Measured runs on the same connections (the report takes their median). */
  runs: number;
  /** Publishes in flight at once. */
  inflight: number;
  /** permessage-deflate on for every message, on the server and offered by every client. */
  compression: boolean;
  /** Clients per holder process, at most 5,000. */
  perHolder: number;
  /** Handshakes in flight per holder. */
  parallel: number;
  /** Directory for the server's `--cpu-prof` output, when profiling. */
  profileDir?: string;
  /**
   * Notifications broadcast and delivered before the warm-up, so that every user already holds this many (Herald's
   * inbox rows: a database in use rather than a new one; the peers get them too and keep nothing). Default 0.
   */
  history?: number;
}

/** One measured run of `messages` broadcasts. */
export interface BroadcastRun {
  /** Frames the clients received, of clients × messages. */
  deliveries: number;
  expected: number;
  /** From the first publish's request to the last frame's arrival, ms. */
  windowMs: number;
  deliveriesPerSecond: number;
  /** Server CPU, all threads, over the window, ms. */
  serverCpuMs: number;
  serverCpuUsPerDelivery: number;
  /** Of that, the server's main thread (the event loop that writes to the sockets), µs per delivery. */
  mainThreadCpuUsPerDelivery: number;
  /** Per notification: from its request to the arrival at its last recipient, ms. */
  timeToLast: Distribution;
  /** Every delivery: from its notification's request to its arrival, ms. */
  delivery: Distribution;
  /** The server's event-loop delay during the run, ms. */
  lagP99Ms: number;
  lagMaxMs: number;
  /** Bytes the clients' sockets read per delivery (framing, and compression when on, included). */
  bytesPerDelivery: number;
}

export interface BroadcastResult {
  target: Target;
  clients: number;
  messages: number;
  compression: boolean;
  /** Handshakes per second while the clients connected. */
  handshakesPerSecond: number;
  /** Server RSS after GC with no clients, and after GC once the runs are done, bytes. */
  rssBefore: number;
  rssAfter: number;
  rssPerConnection: number;
  runs: BroadcastRun[];
}

/** 200 bytes of title and body, as the issue asks; the body starts with the holders' `broadcast #<n>` marker. */
export function broadcastJson(n: number): string {
  const title = 'Deploy finished';
  const head = `broadcast #${n} `;
  const body = head + 'production: api, web and worker rolled out to 12 hosts in 48 s; no errors, p99 steady, 0 alerts, release notes at the usual address'.padEnd(200 - title.length - head.length, '.').slice(0, 200 - title.length - head.length);
  return JSON.stringify({ to: { all: true }, title, body, priority: 3, tags: ['deploy'] });
}

/** Publishes notifications `first`…`first + count − 1`, `inflight` at a time; resolves with each one's request time (epoch ms). */
async function publish(server: RunningServer, first: number, count: number, inflight: number): Promise<Map<number, number>> {
  const sentAt = new Map<number, number>();
  let next = first;
  const url = new URL('/v1/notifications', server.url);
  const worker = async () => {
    while (next < first + count) {
      const n = next++;
      sentAt.set(n, performance.timeOrigin + performance.now());
      const response = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${server.publishToken}`, 'content-type': 'application/json' },
        body: broadcastJson(n),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await response.text();
      if (response.status !== 202) throw new Error(`${server.target}: broadcast ${n} answered ${response.status} ${text}`);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  return sentAt;
}

/** Every holder's arrival times for notifications `first`…, once all its clients have each or after `timeoutMs`. */
async function arrivals(holders: Child[], first: number, count: number, timeoutMs: number): Promise<Map<number, number[]>> {
  const byMessage = new Map<number, number[]>();
  await Promise.all(
    holders.flatMap((holder) =>
      Array.from({ length: count }, async (_, i) => {
        holder.send({ type: 'collect', round: first + i, timeoutMs });
        const answer = await holder.next('arrivals', timeoutMs + 30_000);
        byMessage.set(answer.round, [...(byMessage.get(answer.round) ?? []), ...answer.times]);
      }),
    ),
  );
  return byMessage;
}

async function settledRss(server: RunningServer): Promise<number> {
  server.child.send({ type: 'gc' });
  await server.child.next('memory', 30_000);
  return readRss(server.child.pid);
}

/** `ms` of CPU spread over `deliveries`, µs each. */
function perDelivery(ms: number, deliveries: number): number {
  return Math.round(((ms * 1000) / Math.max(1, deliveries)) * 100) / 100;
}

/** How long a run may take before the clients' missing frames count as lost, ms. */
const runTimeoutMs = 60_000;
/** The number of the first `history` notification; the measured runs use 1,000 onwards. */
const historyFirst = 1_000_000;

async function measure(server: RunningServer, holders: Child[], o: BroadcastOptions, first: number): Promise<BroadcastRun> {
  const bytesBefore = (await countHolders(holders)).bytesRead;
  server.child.send({ type: 'lag' });
  await server.child.next('lag', 10_000);
  const cpuBefore = readCpuMs(server.child.pid);
  const mainBefore = readMainThreadCpuMs(server.child.pid);
  const collecting = arrivals(holders, first, o.messages, runTimeoutMs);
  const sentAt = await publish(server, first, o.messages, o.inflight);
  const byMessage = await collecting;
  const serverCpuMs = readCpuMs(server.child.pid) - cpuBefore;
  const mainCpuMs = readMainThreadCpuMs(server.child.pid) - mainBefore;
  server.child.send({ type: 'lag' });
  const lag = await server.child.next('lag', 10_000);
  const bytes = (await countHolders(holders)).bytesRead - bytesBefore;

  const latencies: number[] = [];
  const toLast: number[] = [];
  let lastArrival = 0;
  for (const [n, times] of byMessage) {
    const start = sentAt.get(n) ?? Number.NaN;
    let last = start;
    for (const t of times) {
      latencies.push(t - start);
      if (t > last) last = t;
    }
    toLast.push(last - start);
    if (last > lastArrival) lastArrival = last;
  }
  const firstSent = Math.min(...sentAt.values());
  const windowMs = lastArrival - firstSent;
  const deliveries = latencies.length;
  return {
    deliveries,
    expected: o.clients * o.messages,
    windowMs: Math.round(windowMs),
    deliveriesPerSecond: Math.round(deliveries / (windowMs / 1000)),
    serverCpuMs: Math.round(serverCpuMs),
    serverCpuUsPerDelivery: perDelivery(serverCpuMs, deliveries),
    mainThreadCpuUsPerDelivery: perDelivery(mainCpuMs, deliveries),
    timeToLast: rounded(distribution(sorted(toLast)), 2),
    delivery: rounded(distribution(sorted(latencies)), 2),
    lagP99Ms: lag.p99,
    lagMaxMs: lag.max,
    bytesPerDelivery: Math.round(bytes / Math.max(1, deliveries)),
  };
}

/** Starts a fresh server and its clients, runs a warm-up and `runs` measured runs, and stops everything. */
export async function runBroadcast(o: BroadcastOptions): Promise<BroadcastResult> {
  const label = `${o.target}${o.compression ? ' deflate' : ''} ${thousands(o.clients)} clients`;
  const server = await startServer(o.target, { compression: o.compression, ...(o.profileDir === undefined ? {} : { profileDir: o.profileDir }) });
  const holders: Child[] = [];
  try {
    const rssBefore = await settledRss(server);
    const count = Math.ceil(o.clients / Math.min(o.perHolder, 5_000));
    const synced = new Map<number, number>();
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const share = Math.floor(o.clients / count) + (i < o.clients % count ? 1 : 0);
      const options = {
        wsUrl: server.wsUrl,
        jwtSecret: server.jwtSecret,
        first: i * Math.ceil(o.clients / count),
        count: share,
        localAddress: `127.0.0.${i + 2}`,
        parallel: o.parallel,
        protocol: protocolOf(o.target),
        compression: o.compression,
      };
      holders.push(startHolder(i, options, synced));
    }
    const done = await Promise.all(holders.map((h) => h.next('done', 240_000)));
    const connected = done.reduce((sum, d) => sum + d.synced, 0);
    if (connected !== o.clients) throw new Error(`${label}: ${connected} of ${o.clients} connected: ${done.flatMap((d) => d.errors).slice(0, 3).join('; ')}`);
    const handshakesPerSecond = Math.round(connected / ((performance.now() - started) / 1000));
    progress('broadcast', `${label}: connected at ${thousands(handshakesPerSecond)}/s; warming up`);
    if (o.history) {
      progress('broadcast', `${label}: ${thousands(o.history)} notifications to all first, so that every user holds that many`);
      await Promise.all([arrivals(holders, historyFirst, o.history, runTimeoutMs), publish(server, historyFirst, o.history, o.inflight)]);
    }

    // Code compiled on first use, and Herald's first statements, are not measured.
    await measure(server, holders, { ...o, messages: Math.min(o.messages, 10) }, 1);
    const runs: BroadcastRun[] = [];
    for (let r = 0; r < o.runs; r++) {
      const run = await measure(server, holders, o, 1_000 * (r + 1));
      runs.push(run);
      progress(
        'broadcast',
        `${label}: run ${r + 1}/${o.runs}: ${thousands(run.deliveries)}/${thousands(run.expected)} delivered, ${thousands(run.deliveriesPerSecond)}/s, ` +
          `${run.serverCpuUsPerDelivery} µs CPU each, last recipient p50 ${run.timeToLast.p50} ms, lag p99 ${run.lagP99Ms} ms`,
      );
    }
    const rssAfter = await settledRss(server);
    return {
      target: o.target,
      clients: o.clients,
      messages: o.messages,
      compression: o.compression,
      handshakesPerSecond,
      rssBefore,
      rssAfter,
      rssPerConnection: Math.round((rssAfter - rssBefore) / o.clients),
      runs,
    };
  } finally {
    await Promise.all(holders.map((h) => h.stop()));
    await server.stop();
  }
}
