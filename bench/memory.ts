/**
 * Memory: server RSS per idle authenticated connection. RSS of the server process (VmRSS) is sampled after a
 * forced GC before and after `connections` devices have connected, authenticated with a JWT and received
 * `synced`; the difference divided by the count is the cost of one connection in the process. The kernel's
 * socket buffers are not part of RSS. The sockets are held by several child processes from several loopback
 * addresses, because one process may open 20,000 files and one address has about 28,000 ephemeral ports.
 */
import type { ConfigInput } from '../server/src/index.js';
import { Child } from './child.js';
import { readCpuMs } from './proc.js';
import type { Client } from './clients.js';
import { connectClients, protocolOf, startServer, type RunningServer, type Target } from './servers.js';
import { progress, sleep, thousands } from './stats.js';

export interface MemoryOptions {
  target: Target;
  connections: number;
  /** Sockets per holder process; at most 5,000. */
  perHolder: number;
  /** Handshakes in flight per holder. */
  parallel: number;
  /** Herald settings over the bench defaults. */
  config?: ConfigInput;
  /**
   * After measuring memory, measure the server's CPU over this long with the connections idle (keep-alive traffic
   * only), and over up to 10 s before any connected, ms. Unset: not measured.
   */
  idleMs?: number;
}

/** What idle connections cost in CPU: the server's own keep-alive work (Herald heartbeats and pings, Socket.IO pings). */
export interface IdleCpu {
  windowMs: number;
  /** Server CPU with no connections, and with every connection idle, ms per second. */
  emptyCpuMsPerSecond: number;
  idleCpuMsPerSecond: number;
  /** Keep-alive frames the clients received in the idle window (Herald `heartbeat`, Socket.IO ping). */
  keepAlives: number;
}

export interface MemoryResult {
  target: Target;
  connections: number;
  /** Connections that reached `synced`. */
  synced: number;
  failed: number;
  errors: string[];
  /** Connections the server itself counts (herald_connections), where it exposes that. */
  serverCount: number | undefined;
  holders: number;
  sourceAddresses: string[];
  /** Time from the first connect to the last `synced`, s. */
  connectSeconds: number;
  handshakesPerSecond: number;
  /** Median RSS of the settled server before and after, bytes. */
  rssBefore: number;
  rssAfter: number;
  /** (rssAfter − rssBefore) / synced, bytes. */
  rssPerConnection: number;
  /** V8 heap plus external memory after GC, before and after, bytes. */
  heapBefore: number;
  heapAfter: number;
  heapPerConnection: number;
  idle?: IdleCpu;
}

/** Starts holder process `i` (bench/holder-process.ts), keeping its count of synced devices in `synced`. */
export function startHolder(i: number, options: object, synced: Map<number, number>): Child {
  const holder = Child.start(`holder ${i + 1}`, new URL('./holder-process.ts', import.meta.url), [JSON.stringify(options)]);
  holder.onMessage((message) => {
    if (message.type === 'progress' || message.type === 'done') synced.set(i, message.synced);
  });
  return holder;
}

/** Devices connected (and closed again) before the first sample, so code compiled on first use is not counted. */
const warmupConnections = 100;
/** Longest window over which the CPU of the server without connections is measured, ms: it is nearly constant. */
const emptyWindowMs = 10_000;
/** First user number of the holders; the warm-up uses the ones below. */
const firstHeldUser = 1_000;

async function settledMemory(server: RunningServer, samples: number): Promise<{ rss: number; heap: number }> {
  await sleep(1_000);
  server.child.send({ type: 'gc' });
  const usage = await server.child.next('memory', 30_000);
  const rss: number[] = [];
  for (let i = 0; i < samples; i++) {
    rss.push(server.child.rss());
    await sleep(300);
  }
  rss.sort((a, b) => a - b);
  return { rss: rss[Math.floor(rss.length / 2)] ?? Number.NaN, heap: usage.heapUsed + usage.external };
}

/** The server's CPU use over the next `windowMs`, all threads, ms per second. */
async function cpuMsPerSecond(server: RunningServer, windowMs: number): Promise<number> {
  const started = performance.now();
  const cpu = readCpuMs(server.child.pid);
  await sleep(windowMs);
  return Math.round(((readCpuMs(server.child.pid) - cpu) / (performance.now() - started)) * 1000 * 10) / 10;
}

/** What every holder's clients together have received so far, and how many of their sockets are open. */
export async function countHolders(holders: Child[]): Promise<{ heartbeats: number; bytesRead: number; open: number; problems: string[] }> {
  const counts = await Promise.all(
    holders.map((holder) => {
      holder.send({ type: 'count' });
      return holder.next('counts', 30_000);
    }),
  );
  return {
    heartbeats: counts.reduce((sum, c) => sum + c.heartbeats, 0),
    bytesRead: counts.reduce((sum, c) => sum + c.bytesRead, 0),
    open: counts.reduce((sum, c) => sum + c.open, 0),
    problems: counts.flatMap((c) => c.problems).slice(0, 5),
  };
}

async function connectionGauge(server: RunningServer): Promise<number | undefined> {
  if (server.target !== 'herald') return undefined;
  const text = await (await fetch(`${server.url.origin}/metrics`)).text();
  const value = /^herald_connections (\d+)$/m.exec(text)?.[1];
  return value === undefined ? undefined : Number(value);
}

export async function runMemory(o: MemoryOptions): Promise<MemoryResult> {
  const label = `${o.target} ${thousands(o.connections)} connections`;
  progress('memory', `${label}: starting the server`);
  const server = await startServer(o.target, { config: o.config ?? {} });
  const holders: Child[] = [];
  try {
    const warm: Client[] = await connectClients(server, warmupConnections);
    for (const device of warm) device.close();
    const before = await settledMemory(server, 3);
    const emptyCpuMsPerSecond = o.idleMs === undefined ? 0 : await cpuMsPerSecond(server, Math.min(o.idleMs, emptyWindowMs));
    progress('memory', `${label}: server RSS ${(before.rss / 2 ** 20).toFixed(1)} MiB before`);

    const count = Math.ceil(o.connections / Math.min(o.perHolder, 5_000));
    const sourceAddresses = Array.from({ length: count }, (_, i) => `127.0.0.${i + 2}`);
    const started = performance.now();
    const synced = new Map<number, number>();
    for (let i = 0; i < count; i++) {
      const share = Math.floor(o.connections / count) + (i < o.connections % count ? 1 : 0);
      const first = firstHeldUser + i * Math.ceil(o.connections / count);
      const options = { wsUrl: server.wsUrl, jwtSecret: server.jwtSecret, first, count: share, localAddress: sourceAddresses[i], parallel: o.parallel, protocol: protocolOf(o.target) };
      holders.push(startHolder(i, options, synced));
    }
    const ticker = setInterval(() => {
      const total = [...synced.values()].reduce((a, b) => a + b, 0);
      progress('memory', `${label}: ${thousands(total)} synced, server RSS ${(server.child.rss() / 2 ** 20).toFixed(1)} MiB`);
    }, 2_000);
    const done = await Promise.all(holders.map((h) => h.next('done', 240_000))).finally(() => clearInterval(ticker));
    const connectSeconds = (performance.now() - started) / 1000;
    const total = done.reduce((sum, d) => sum + d.synced, 0);
    const failed = done.reduce((sum, d) => sum + d.failed, 0);
    progress('memory', `${label}: ${thousands(total)} synced, ${failed} failed in ${connectSeconds.toFixed(1)} s; settling`);

    const after = await settledMemory(server, 5);
    const serverCount = await connectionGauge(server);
    const result: MemoryResult = {
      target: o.target,
      connections: o.connections,
      synced: total,
      failed,
      errors: done.flatMap((d) => d.errors).slice(0, 5),
      serverCount,
      holders: count,
      sourceAddresses,
      connectSeconds: Math.round(connectSeconds * 10) / 10,
      handshakesPerSecond: Math.round(total / connectSeconds),
      rssBefore: before.rss,
      rssAfter: after.rss,
      rssPerConnection: Math.round((after.rss - before.rss) / Math.max(1, total)),
      heapBefore: before.heap,
      heapAfter: after.heap,
      heapPerConnection: Math.round((after.heap - before.heap) / Math.max(1, total)),
    };
    progress('memory', `${label}: RSS ${(after.rss / 2 ** 20).toFixed(1)} MiB after, ${(result.rssPerConnection / 1024).toFixed(2)} KiB per connection`);
    if (o.idleMs !== undefined) {
      progress('memory', `${label}: measuring the CPU of idle connections for ${o.idleMs / 1000} s`);
      const keepAlivesBefore = (await countHolders(holders)).heartbeats;
      const idleCpuMsPerSecond = await cpuMsPerSecond(server, o.idleMs);
      result.idle = { windowMs: o.idleMs, emptyCpuMsPerSecond, idleCpuMsPerSecond, keepAlives: (await countHolders(holders)).heartbeats - keepAlivesBefore };
    }
    return result;
  } finally {
    await Promise.all(holders.map((h) => h.stop()));
    await server.stop();
  }
}
