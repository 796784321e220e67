/**
 * Scale-out: two Herald nodes, each `herald-server start --workers N`, on one PostgreSQL schema and one Redis
 * prefix, measured against the scale-out targets of the performance issue:
 * - throughput: targeted durable publishes through both nodes, closed loop, every device receiving;
 * - latency: publish → deliver, open loop, through both nodes (a device on the other node hears through Redis);
 * - connections: idle authenticated devices held by holder processes, half on each node: worker RSS per
 *   connection and the CPU that idle connections (heartbeats and pings) cost;
 * - broadcast: one `{ to: { all: true } }` publish with every device connected, until the last device has it.
 * The nodes start once and serve every step in that order; everything started is stopped, and the schema
 * dropped, on success, on failure and on SIGINT/SIGTERM.
 */
import { Child } from './child.js';
import { connectDevices, signJwt, type Device } from './device.js';
import { openConnections, postRequest, type Connection } from './http-load.js';
import { measureLatency, type LatencyResult } from './latency.js';
import { countHolders, startHolder } from './memory.js';
import { dropClusterSpace, newClusterSpace, openFiles, startNode, type ClusterSpace, type HeraldNode } from './nodes.js';
import { batchBody, singleBody } from './payload.js';
import { awaitQuiet, cpuCells, cpuHeadings, readCpuMsOf, readMachineCpu, readRss } from './proc.js';
import { userName } from './servers.js';
import { distribution, progress, rounded, sleep, sorted, thousands, waitFor, type Distribution } from './stats.js';
import { batchSize, closedLoop, type PublishMode, type ThroughputResult } from './throughput.js';

/** The targets of the scale-out part of the performance issue. */
export const scaleTargets = {
  /** Targeted durable notifications/s through Redis + PostgreSQL across 2 nodes. */
  throughput: 5_000,
  /** Publish → deliver p99 at half the throughput target (2,500/s), ms. */
  latencyP99Ms: 10,
  /** Concurrent authenticated connections on this box. */
  connections: 100_000,
  /** Server RSS per idle connection, bytes. */
  bytesPerConnection: 10_000,
  /** A broadcast to every connected device reaches the last one within, ms. */
  broadcastMs: 2_000,
};

export interface ScaleSettings {
  /**
   * Worker processes per node (2 nodes) in the connections and broadcast steps: 100,000 sockets need at least five
   * processes of 20,000 open files.
   */
  workers: number;
  /**
   * Worker processes per node in the throughput and latency steps. One: on two cores, two nodes of one process each
   * use them fully, and more processes only split each node's group commits into smaller ones.
   */
  publishWorkers: number;
  /** Users, one device each, of the throughput and latency steps; half on each node. */
  users: number;
  /** Publishing connections in the throughput step, split between the nodes. */
  publishConnections: Record<PublishMode, number>;
  /** Publishing connections in the latency step, split between the nodes. */
  latencyConnections: number;
  warmupMs: number;
  throughputMs: number;
  latencyMs: number;
  /** Idle devices held in the connections and broadcast steps. */
  connections: number;
  /** Sockets per holder process, at most 5,000. */
  perHolder: number;
  /** Handshakes in flight per holder. */
  parallel: number;
  /** Loopback source addresses the holders connect from (each has about 28,000 ephemeral ports). */
  sourceAddresses: number;
  /** Heartbeat interval of the nodes, ms (HERALD_HEARTBEAT_MS); the default is 25 s. */
  heartbeatMs: number;
  /** Window over which the nodes' CPU is measured with no connections, ms. */
  baselineIdleMs: number;
  /** Window over which the nodes' CPU is measured with every device connected and idle, ms. */
  idleMs: number;
  broadcasts: number;
  /** How long a broadcast may take to reach every device before the missing ones count as lost, ms. */
  broadcastTimeoutMs: number;
  /** Waits at most this long before each measurement for other jobs on the machine to go quiet, ms. */
  quietWaitMs: number;
}

export const fullScale: ScaleSettings = {
  workers: 3,
  publishWorkers: 1,
  users: 1_000,
  publishConnections: { single: 128, batch: 16 },
  latencyConnections: 64,
  warmupMs: 3_000,
  throughputMs: 10_000,
  latencyMs: 10_000,
  connections: 100_000,
  perHolder: 5_000,
  parallel: 25,
  sourceAddresses: 8,
  // The default: a shorter interval would put its own load (100,000 heartbeats and heads reads per interval) on the connect step.
  heartbeatMs: 25_000,
  baselineIdleMs: 10_000,
  // Two heartbeat intervals.
  idleMs: 50_000,
  broadcasts: 3,
  broadcastTimeoutMs: 30_000,
  quietWaitMs: 10_000,
};

export const quickScale: ScaleSettings = {
  ...fullScale,
  workers: 2,
  users: 200,
  warmupMs: 1_000,
  throughputMs: 3_000,
  latencyMs: 4_000,
  connections: 5_000,
  perHolder: 2_500,
  baselineIdleMs: 3_000,
  // Two heartbeats in the idle window; 5,000 devices put little load on the connect step.
  heartbeatMs: 5_000,
  idleMs: 10_000,
  broadcastTimeoutMs: 15_000,
  quietWaitMs: 2_000,
};

/** A throughput run through both nodes; `cpu.server` is every process of both nodes together. */
export type ScaleThroughput = Omit<ThroughputResult, 'target' | 'config'> & { machineBusyBeforePercent: number };

export type ScaleLatency = Omit<LatencyResult, 'samples' | 'target'> & { rateFrom: string; machineBusyBeforePercent: number };

export interface ScaleConnections {
  requested: number;
  synced: number;
  failed: number;
  errors: string[];
  holders: number;
  sourceAddresses: string[];
  connectSeconds: number;
  handshakesPerSecond: number;
  /** Server CPU (all processes) per handshake during the connect phase, ms. */
  cpuMsPerHandshake: number;
  /** Sum of the worker processes' VmRSS before the holders connected and after they had settled, bytes. */
  workerRssBefore: number;
  workerRssAfter: number;
  /** (after − before) / synced, bytes; without a forced GC (the CLI workers cannot be asked for one). */
  rssPerConnection: number;
  primaryRss: number[];
  /** Open file descriptors of each worker with every device connected: sockets, mostly; the limit is 20,000. */
  workerOpenFiles: number[];
  /** Devices still open after the idle window. */
  openAfterIdle: number;
  heartbeatMs: number;
  /** Nodes' CPU, all processes, with no connections and with every device connected and idle, ms per second. */
  baselineCpuMsPerSecond: number;
  idleCpuMsPerSecond: number;
  idleWindowS: number;
  /** Heartbeat frames the devices received in the idle window. */
  heartbeats: number;
  /** (idle − baseline CPU) over the window / heartbeats, µs; it also carries the window's ws pings (every 30 s). */
  cpuUsPerHeartbeat: number;
  /** What heartbeats would cost at the default 25 s interval at this many connections, percent of one core. */
  cpuPercentAtDefaultInterval: number;
}

export interface ScaleBroadcast {
  round: number;
  /** Node that took the publish. */
  node: string;
  recipients: number;
  devices: number;
  received: number;
  /** Request written → 202 read, ms. */
  ackMs: number;
  /** Request written → frame read by each device, ms. */
  arrival: Distribution;
  /** Server CPU of both nodes from the publish to the last arrival, ms. */
  serverCpuMs: number;
  /** CPU of the holder processes (the devices' side) over the same window, ms; absent in runs before it was recorded. */
  generatorCpuMs?: number;
  /** Busy CPU of the whole machine over the same window, all cores, ms: the rest is PostgreSQL, Redis and the kernel. */
  machineCpuMs?: number;
  machineBusyBeforePercent: number;
}

export interface ScaleSection {
  at: string;
  nodes: number;
  /** In the connections and broadcast steps. */
  workersPerNode: number;
  /** In the throughput and latency steps; absent in runs from before it could differ (then `workersPerNode`). */
  publishWorkersPerNode?: number;
  settings: ScaleSettings;
  throughput: ScaleThroughput[];
  latency: ScaleLatency[];
  /** Latency runs the nodes could not keep up with: the backlog did not drain within 30 s of the last publish. */
  latencyFailures: { rate: number; rateFrom: string; error: string }[];
  connections?: ScaleConnections;
  broadcasts: ScaleBroadcast[];
  /** Median of the broadcasts' last arrivals, with min and max, ms. */
  broadcastLastMs?: { median: number; min: number; max: number };
  /** Log lines (warnings, errors) the nodes wrote. */
  serverLogLines: number;
}

/** Everything a step needs to reach the nodes. */
interface Cluster {
  space: ClusterSpace;
  nodes: HeraldNode[];
  publishToken: string;
  /** Primaries and workers of every node. */
  pids: number[];
  workerPids: number[];
}

const log = (message: string) => progress('scale', message);

async function quiet(settings: ScaleSettings): Promise<number> {
  return awaitQuiet(settings.quietWaitMs, (busy) => log(`waiting for the machine to go quiet (other jobs use ${busy}% of a core)`));
}

/** Sockets to both nodes, alternating, so consecutive requests and devices land on different nodes. */
function alternate<T>(a: T[], b: T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i < a.length) out.push(a[i] as T);
    if (i < b.length) out.push(b[i] as T);
  }
  return out;
}

async function openPool(cluster: Cluster, count: number, onFailure: (error: Error) => void): Promise<Connection[]> {
  const [a, b] = cluster.nodes as [HeraldNode, HeraldNode];
  const half = Math.ceil(count / 2);
  return alternate(await openConnections(a.url, half, onFailure), await openConnections(b.url, count - half, onFailure));
}

/** One device per user, user i on node i % 2. */
function connectSplit(cluster: Cluster, users: number, onNotification?: (body: string, at: number) => void): Promise<Device[]> {
  return connectDevices(users, 50, (i) => {
    const user = userName(i);
    const node = cluster.nodes[i % cluster.nodes.length] as HeraldNode;
    return { url: node.wsUrl, user, token: signJwt(user, cluster.space.jwtSecret), ...(onNotification === undefined ? {} : { onNotification }) };
  });
}

async function createAppToken(url: URL, adminToken: string): Promise<string> {
  const response = await fetch(new URL('/v1/tokens', url), {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'app', name: 'bench' }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as { token?: unknown };
  if (response.status !== 201 || typeof body.token !== 'string') throw new Error(`creating an app token: ${response.status} ${JSON.stringify(body)}`);
  return body.token;
}

async function throughputStep(cluster: Cluster, settings: ScaleSettings, mode: PublishMode): Promise<ScaleThroughput> {
  const busy = await quiet(settings);
  const connections = settings.publishConnections[mode];
  const label = `scale ${mode}`;
  log(`${label}: ${settings.users} devices and ${connections} publishing connections, half on each node`);
  let devices: Device[] = [];
  let pool: Connection[] = [];
  try {
    devices = await connectSplit(cluster, settings.users);
    const delivered = () => devices.reduce((sum, d) => sum + d.notifications, 0);
    let failure: Error | undefined;
    pool = await openPool(cluster, connections, (error) => (failure ??= error));
    const perRequest = mode === 'batch' ? batchSize : 1;
    const path = mode === 'batch' ? '/v1/notifications/batch' : '/v1/notifications';
    // Each connection's requests name the node it is connected to; the body does not depend on the node.
    const host = (cluster.nodes[0] as HeraldNode).url;
    const loop = await closedLoop({
      pool,
      request: (n) => postRequest(host, path, cluster.publishToken, mode === 'batch' ? batchBody(settings.users, n * batchSize, batchSize) : singleBody(settings.users, n)),
      perRequest,
      warmupMs: settings.warmupMs,
      durationMs: settings.throughputMs,
      delivered,
      serverPid: cluster.pids,
      failure: () => failure,
      label,
    });
    const allDelivered = await waitFor(() => delivered() >= loop.accepted, 30_000);
    const seconds = settings.throughputMs / 1000;
    const result: ScaleThroughput = {
      mode,
      connections,
      users: settings.users,
      perRequest,
      durationS: seconds,
      notificationsPerSecond: Math.round(loop.windowAccepted / seconds),
      requestsPerSecond: Math.round(loop.windowRequests / seconds),
      deliveredPerSecond: Math.round(loop.windowDelivered / seconds),
      accepted: loop.accepted,
      delivered: delivered(),
      allDelivered: allDelivered && delivered() === loop.accepted,
      outOfOrder: devices.reduce((sum, d) => sum + d.outOfOrder, 0),
      failedRequests: loop.failedRequests,
      failures: [...loop.failures, ...devices.flatMap((d) => d.problems).slice(0, 5)],
      ack: rounded(distribution(sorted(loop.ack))),
      cpu: loop.cpu,
      machineBusyBeforePercent: busy,
    };
    log(
      `${label}: ${thousands(result.notificationsPerSecond)}/s accepted, ${thousands(result.deliveredPerSecond)}/s delivered; ` +
        `${result.allDelivered ? 'every one delivered' : `DELIVERED ${result.delivered} OF ${result.accepted}`}, ${result.outOfOrder} out of order`,
    );
    return result;
  } finally {
    for (const connection of pool) connection.close();
    for (const device of devices) device.close();
  }
}

async function latencyStep(cluster: Cluster, settings: ScaleSettings, rate: number, rateFrom: string): Promise<ScaleLatency> {
  const busy = await quiet(settings);
  const label = `scale at ${thousands(rate)}/s`;
  log(`${label}: ${settings.users} devices and ${settings.latencyConnections} publishing connections, half on each node`);
  const result = await measureLatency(
    { target: 'herald', rate, connections: settings.latencyConnections, users: settings.users, warmupMs: settings.warmupMs, durationMs: settings.latencyMs },
    label,
    {
      connectDevices: (onNotification) => connectSplit(cluster, settings.users, onNotification),
      openPool: (onFailure) => openPool(cluster, settings.latencyConnections, onFailure),
      request: (connection, n) => postRequest(connection.url, '/v1/notifications', cluster.publishToken, singleBody(settings.users, n)),
      serverPids: cluster.pids,
    },
  );
  const copy: Partial<LatencyResult> = { ...result };
  delete copy.samples;
  delete copy.target;
  return { ...(copy as Omit<LatencyResult, 'samples' | 'target'>), rateFrom, machineBusyBeforePercent: busy };
}

const sumRss = (pids: number[]) => pids.reduce((sum, pid) => sum + readRss(pid), 0);

/** Server CPU of all the nodes' processes over `ms`, ms per second. */
async function cpuOver(cluster: Cluster, ms: number): Promise<number> {
  const before = readCpuMsOf(cluster.pids);
  const at = performance.now();
  await sleep(ms);
  return ((readCpuMsOf(cluster.pids) - before) / (performance.now() - at)) * 1000;
}

async function connectionsStep(cluster: Cluster, settings: ScaleSettings, holders: Child[]): Promise<ScaleConnections> {
  await quiet(settings);
  const baselineCpuMsPerSecond = await cpuOver(cluster, settings.baselineIdleMs);
  const workerRssBefore = sumRss(cluster.workerPids);
  const count = Math.ceil(settings.connections / settings.perHolder);
  const sourceAddresses = Array.from({ length: Math.min(count, settings.sourceAddresses) }, (_, i) => `127.0.0.${i + 2}`);
  log(`connections: ${thousands(settings.connections)} devices from ${count} holder processes on ${sourceAddresses.length} source addresses, half on each node`);
  const started = performance.now();
  const cpuBefore = readCpuMsOf(cluster.pids);
  const synced = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const first = i * settings.perHolder;
    const node = cluster.nodes[i % cluster.nodes.length] as HeraldNode;
    const options = {
      wsUrl: node.wsUrl,
      jwtSecret: cluster.space.jwtSecret,
      first,
      count: Math.min(settings.perHolder, settings.connections - first),
      localAddress: sourceAddresses[i % sourceAddresses.length],
      parallel: settings.parallel,
    };
    holders.push(startHolder(i, options, synced));
  }
  const ticker = setInterval(() => {
    const total = [...synced.values()].reduce((a, b) => a + b, 0);
    const seconds = (performance.now() - started) / 1000;
    log(`connections: ${thousands(total)} synced after ${seconds.toFixed(0)} s (${thousands(total / seconds)}/s), worker RSS ${(sumRss(cluster.workerPids) / 2 ** 20).toFixed(0)} MiB`);
  }, 5_000);
  // At 1,000 handshakes/s 100,000 devices take 100 s; far past that something is wrong.
  const done = await Promise.all(holders.map((h) => h.next('done', 1_200_000))).finally(() => clearInterval(ticker));
  const connectSeconds = (performance.now() - started) / 1000;
  const cpuMs = readCpuMsOf(cluster.pids) - cpuBefore;
  const total = done.reduce((sum, d) => sum + d.synced, 0);
  const failed = done.reduce((sum, d) => sum + d.failed, 0);
  log(`connections: ${thousands(total)} synced, ${failed} failed in ${connectSeconds.toFixed(1)} s; settling for 5 s`);
  await sleep(5_000);
  const workerRssAfter = sumRss(cluster.workerPids);
  const workerOpenFiles = cluster.workerPids.map(openFiles);
  log(`connections: worker RSS ${(workerRssBefore / 2 ** 20).toFixed(0)} → ${(workerRssAfter / 2 ** 20).toFixed(0)} MiB; open files per worker ${workerOpenFiles.map(thousands).join(', ')}`);

  log(`connections: measuring idle CPU for ${settings.idleMs / 1000} s (heartbeat every ${settings.heartbeatMs / 1000} s)`);
  const framesBefore = await countHolders(holders);
  const idleCpuMsPerSecond = await cpuOver(cluster, settings.idleMs);
  const framesAfter = await countHolders(holders);
  const heartbeats = framesAfter.heartbeats - framesBefore.heartbeats;
  const extraMs = ((idleCpuMsPerSecond - baselineCpuMsPerSecond) * settings.idleMs) / 1000;
  const cpuUsPerHeartbeat = heartbeats === 0 ? Number.NaN : (extraMs * 1000) / heartbeats;
  const result: ScaleConnections = {
    requested: settings.connections,
    synced: total,
    failed,
    errors: [...done.flatMap((d) => d.errors), ...framesAfter.problems].slice(0, 5),
    holders: count,
    sourceAddresses,
    connectSeconds: Math.round(connectSeconds * 10) / 10,
    handshakesPerSecond: Math.round(total / connectSeconds),
    cpuMsPerHandshake: Math.round((cpuMs / Math.max(1, total)) * 1000) / 1000,
    workerRssBefore,
    workerRssAfter,
    rssPerConnection: Math.round((workerRssAfter - workerRssBefore) / Math.max(1, total)),
    primaryRss: cluster.nodes.map((n) => readRss(n.primaryPid)),
    workerOpenFiles,
    openAfterIdle: framesAfter.open,
    heartbeatMs: settings.heartbeatMs,
    baselineCpuMsPerSecond: Math.round(baselineCpuMsPerSecond * 10) / 10,
    idleCpuMsPerSecond: Math.round(idleCpuMsPerSecond * 10) / 10,
    idleWindowS: settings.idleMs / 1000,
    heartbeats,
    cpuUsPerHeartbeat: Math.round(cpuUsPerHeartbeat * 10) / 10,
    cpuPercentAtDefaultInterval: Math.round(((cpuUsPerHeartbeat / 1000) * (total / 25)) / 10 * 100) / 100,
  };
  log(
    `connections: ${thousands(result.rssPerConnection)} B RSS per connection; idle CPU ${result.idleCpuMsPerSecond} ms/s (${result.baselineCpuMsPerSecond} with none), ` +
      `${thousands(heartbeats)} heartbeats, ${result.cpuUsPerHeartbeat} µs each; ${thousands(result.openAfterIdle)} still open`,
  );
  return result;
}

async function broadcastStep(cluster: Cluster, settings: ScaleSettings, holders: Child[], round: number): Promise<ScaleBroadcast> {
  const busy = await quiet(settings);
  const node = cluster.nodes[(round - 1) % cluster.nodes.length] as HeraldNode;
  log(`broadcast ${round}: publishing to every user through ${node.name}`);
  const collecting = holders.map((holder) => {
    holder.send({ type: 'collect', round, timeoutMs: settings.broadcastTimeoutMs });
    return holder.next('arrivals', settings.broadcastTimeoutMs + 30_000);
  });
  const holderPids = holders.map((holder) => holder.pid);
  const cpuBefore = { server: readCpuMsOf(cluster.pids), generator: readCpuMsOf(holderPids), machine: readMachineCpu().busyMs };
  const sentAt = performance.timeOrigin + performance.now();
  const response = await fetch(new URL('/v1/notifications', node.url), {
    method: 'POST',
    headers: { authorization: `Bearer ${cluster.publishToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to: { all: true }, title: 'broadcast', body: `broadcast #${round}` }),
    signal: AbortSignal.timeout(settings.broadcastTimeoutMs),
  });
  const ackMs = performance.timeOrigin + performance.now() - sentAt;
  const body = (await response.json()) as { recipients?: unknown };
  if (response.status !== 202) throw new Error(`broadcast ${round}: ${response.status} ${JSON.stringify(body)}`);
  const arrivals = await Promise.all(collecting);
  const serverCpuMs = readCpuMsOf(cluster.pids) - cpuBefore.server;
  const generatorCpuMs = readCpuMsOf(holderPids) - cpuBefore.generator;
  const machineCpuMs = readMachineCpu().busyMs - cpuBefore.machine;
  const latencies = sorted(arrivals.flatMap((a) => a.times.map((t) => t - sentAt)));
  const result: ScaleBroadcast = {
    round,
    node: node.name,
    recipients: Number(body.recipients),
    devices: arrivals.reduce((sum, a) => sum + a.devices, 0),
    received: latencies.length,
    ackMs: Math.round(ackMs * 10) / 10,
    arrival: rounded(distribution(latencies), 1),
    serverCpuMs: Math.round(serverCpuMs),
    generatorCpuMs: Math.round(generatorCpuMs),
    machineCpuMs: Math.round(machineCpuMs),
    machineBusyBeforePercent: busy,
  };
  const a = result.arrival;
  log(`broadcast ${round}: ${thousands(result.received)} of ${thousands(result.devices)} devices; 202 after ${result.ackMs} ms; arrival p50 ${a.p50} ms, p99 ${a.p99} ms, last ${a.max} ms`);
  return result;
}

/** Runs every step against one pair of nodes; `rates` are the latency step's publish rates. */
export async function runScale(settings: ScaleSettings, rates: (measuredSingle: number) => { rate: number; from: string }[]): Promise<ScaleSection> {
  const space = newClusterSpace();
  const nodes: HeraldNode[] = [];
  const holders: Child[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      log('stopping the holders and the nodes, dropping the schema');
      await Promise.all(holders.map((h) => h.stop()));
      await Promise.all(nodes.map((n) => n.stop()));
      await dropClusterSpace(space).catch((error: unknown) => log(`could not drop schema ${space.schema}: ${String(error)}`));
    })());
  // The nodes are not children over IPC, so they would outlive a runner that dies: kill them by pid on the way out.
  const killNodes = () => nodes.forEach((n) => n.kill());
  const interrupted = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    const force = setTimeout(() => process.exit(130), 30_000);
    void cleanup().finally(() => {
      clearTimeout(force);
      process.exit(130);
    });
  };
  process.on('exit', killNodes);
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);

  const section: ScaleSection = {
    at: new Date().toISOString(),
    nodes: 2,
    workersPerNode: settings.workers,
    publishWorkersPerNode: settings.publishWorkers,
    settings,
    throughput: [],
    latency: [],
    latencyFailures: [],
    broadcasts: [],
    serverLogLines: 0,
  };
  let publishToken: string | undefined;
  /** Starts two nodes of `workers` workers each, after stopping the ones running. */
  const startCluster = async (workers: number): Promise<Cluster> => {
    for (const node of nodes.splice(0)) {
      section.serverLogLines += node.logLines();
      await node.stop();
    }
    log(`starting 2 nodes × ${workers} workers on schema ${space.schema}, Redis prefix ${space.redisPrefix}`);
    const env = { HERALD_HEARTBEAT_MS: String(settings.heartbeatMs) };
    const started = await Promise.allSettled(['node A', 'node B'].map((name) => startNode({ name, workers, space, env })));
    for (const s of started) if (s.status === 'fulfilled') nodes.push(s.value);
    const failed = started.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    publishToken ??= await createAppToken((nodes[0] as HeraldNode).url, space.adminToken);
    return {
      space,
      nodes,
      publishToken,
      // A node of one worker is one process, primary and worker at once.
      pids: [...new Set(nodes.flatMap((n) => [n.primaryPid, ...n.workerPids]))],
      workerPids: nodes.flatMap((n) => n.workerPids),
    };
  };
  try {
    let cluster = await startCluster(settings.publishWorkers);
    for (const mode of ['single', 'batch'] as const) section.throughput.push(await throughputStep(cluster, settings, mode));
    const single = section.throughput.find((t) => t.mode === 'single')?.notificationsPerSecond ?? 0;
    for (const { rate, from } of rates(single)) {
      try {
        section.latency.push(await latencyStep(cluster, settings, rate, from));
      } catch (error) {
        // Overload is a result, not a reason to skip the connection and broadcast steps.
        const message = error instanceof Error ? error.message : String(error);
        log(`latency at ${thousands(rate)}/s failed: ${message}`);
        section.latencyFailures.push({ rate, rateFrom: from, error: message });
        await sleep(5_000);
      }
    }

    if (settings.workers !== settings.publishWorkers) cluster = await startCluster(settings.workers);
    section.connections = await connectionsStep(cluster, settings, holders);
    for (let round = 1; round <= settings.broadcasts; round++) section.broadcasts.push(await broadcastStep(cluster, settings, holders, round));
    const last = section.broadcasts.map((b) => (b.received < b.devices ? Number.POSITIVE_INFINITY : b.arrival.max)).sort((a, b) => a - b);
    if (last.length > 0) section.broadcastLastMs = { median: last[Math.floor(last.length / 2)] ?? Number.NaN, min: last[0] ?? Number.NaN, max: last[last.length - 1] ?? Number.NaN };
    section.serverLogLines += nodes.reduce((sum, n) => sum + n.logLines(), 0);
    return section;
  } finally {
    await cleanup();
    process.off('exit', killNodes);
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
  }
}

// ---------------------------------------------------------------------------------------------
// Report

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const ms = (value: number) => value.toFixed(2);
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const verdict = (met: boolean) => (met ? 'met' : 'MISSED');

/** The results tables of the scale scenario and its rows of the targets table. */
export function reportScale(s: ScaleSection): { text: string; summary: string[][] } {
  const publishWorkers = s.publishWorkersPerNode ?? s.workersPerNode;
  const out: string[] = [
    `Scale-out: 2 nodes, PostgreSQL + Redis; ${publishWorkers} worker${publishWorkers === 1 ? '' : 's'} per node for throughput and latency, ${s.workersPerNode} for connections and broadcasts`,
  ];
  const summary: string[][] = [];
  out.push(
    table(
      ['publish', 'conns', 'notifications/s', 'requests/s', 'delivered/s', 'all delivered', 'ack p50 ms', 'ack p99 ms', ...cpuHeadings],
      s.throughput.map((r) => [
        r.mode === 'batch' ? `batch of ${r.perRequest}` : 'single',
        String(r.connections),
        thousands(r.notificationsPerSecond),
        thousands(r.requestsPerSecond),
        thousands(r.deliveredPerSecond),
        r.allDelivered && r.outOfOrder === 0 && r.failedRequests === 0 ? 'yes' : `NO (${r.delivered}/${r.accepted}, ${r.outOfOrder} out of order, ${r.failedRequests} failed)`,
        ms(r.ack.p50),
        ms(r.ack.p99),
        ...cpuCells(r.cpu),
      ]),
    ),
  );
  for (const r of s.throughput) {
    summary.push([`scale: throughput, ${r.mode} publish, 2 nodes`, `≥ ${thousands(scaleTargets.throughput)}/s`, `${thousands(r.notificationsPerSecond)}/s`, verdict(r.notificationsPerSecond >= scaleTargets.throughput && r.allDelivered)]);
  }
  if (s.latency.length > 0) {
    out.push('\nLatency through both nodes (open loop; ms)');
    out.push(
      table(
        ['publishes/s', 'measured', 'p50', 'p95', 'p99', 'p99.9', 'max', 'ack p99', 'sender lag p99', 'lost', ...cpuHeadings],
        s.latency.map((r) => [
          `${thousands(r.rate)} (${r.rateFrom})`,
          thousands(r.measured),
          ms(r.delivery.p50),
          ms(r.delivery.p95),
          ms(r.delivery.p99),
          ms(r.delivery.p999),
          ms(r.delivery.max),
          ms(r.ack.p99),
          ms(r.senderLag.p99),
          String(r.lost),
          ...cpuCells(r.cpu),
        ]),
      ),
    );
    for (const r of s.latency) {
      summary.push([`scale: latency p99 at ${thousands(r.rate)}/s (${r.rateFrom})`, `≤ ${scaleTargets.latencyP99Ms} ms`, `${ms(r.delivery.p99)} ms (p50 ${ms(r.delivery.p50)}, p95 ${ms(r.delivery.p95)})`, verdict(r.delivery.p99 <= scaleTargets.latencyP99Ms && r.lost === 0)]);
    }
  }
  for (const f of s.latencyFailures) {
    out.push(`\nLatency at ${thousands(f.rate)}/s (${f.rateFrom}): not measured, the nodes fell behind: ${f.error}`);
    summary.push([`scale: latency p99 at ${thousands(f.rate)}/s (${f.rateFrom})`, `≤ ${scaleTargets.latencyP99Ms} ms`, `not measurable: ${f.error}`, verdict(false)]);
  }
  const c = s.connections;
  if (c) {
    out.push('\nIdle connections (worker VmRSS, no forced GC; CPU of every node process)');
    out.push(
      table(
        ['connections', 'synced', 'handshakes/s', 'CPU per handshake', 'worker RSS before', 'after', 'RSS per connection', 'open files per worker', 'idle CPU', 'heartbeats', 'CPU per heartbeat'],
        [
          [
            thousands(c.requested),
            `${thousands(c.synced)} (${c.failed} failed, ${thousands(c.openAfterIdle)} open after idle)`,
            thousands(c.handshakesPerSecond),
            `${c.cpuMsPerHandshake} ms`,
            mib(c.workerRssBefore),
            mib(c.workerRssAfter),
            `${thousands(c.rssPerConnection)} B`,
            c.workerOpenFiles.map(thousands).join(', '),
            `${c.idleCpuMsPerSecond} ms/s (${c.baselineCpuMsPerSecond} with none)`,
            `${thousands(c.heartbeats)} in ${c.idleWindowS} s, every ${c.heartbeatMs / 1000} s`,
            `${c.cpuUsPerHeartbeat} µs`,
          ],
        ],
      ),
    );
    summary.push([`scale: concurrent authenticated connections`, `≥ ${thousands(scaleTargets.connections)}`, `${thousands(c.synced)} synced, ${thousands(c.openAfterIdle)} open after the idle window`, verdict(c.synced >= scaleTargets.connections && c.openAfterIdle >= scaleTargets.connections)]);
    summary.push([`scale: RSS per idle connection at ${thousands(c.synced)}`, `≤ ${thousands(scaleTargets.bytesPerConnection)} B`, `${thousands(c.rssPerConnection)} B`, verdict(c.rssPerConnection <= scaleTargets.bytesPerConnection)]);
    summary.push([`scale: heartbeat CPU`, 'report', `${c.cpuUsPerHeartbeat} µs per heartbeat; ${c.cpuPercentAtDefaultInterval}% of a core at the default 25 s`, '-']);
  }
  if (s.broadcasts.length > 0) {
    out.push('\nBroadcast to every connected device (ms from the request write)');
    out.push(
      table(
        ['round', 'via', 'recipients', 'received', '202 after', 'p50', 'p99', 'last', 'server CPU', 'generator CPU', 'whole machine CPU'],
        s.broadcasts.map((b) => {
          const cpu = (value: number | undefined) => (value === undefined ? 'not recorded' : `${thousands(value)} ms`);
          return [String(b.round), b.node, thousands(b.recipients), `${thousands(b.received)} of ${thousands(b.devices)}`, ms(b.ackMs), ms(b.arrival.p50), ms(b.arrival.p99), ms(b.arrival.max), cpu(b.serverCpuMs), cpu(b.generatorCpuMs), cpu(b.machineCpuMs)];
        }),
      ),
    );
    const last = s.broadcastLastMs;
    if (last) {
      const devices = s.broadcasts[0]?.devices ?? 0;
      summary.push([`scale: broadcast to ${thousands(devices)} devices, last arrival`, `≤ ${thousands(scaleTargets.broadcastMs)} ms`, `median ${thousands(last.median)} ms (${thousands(last.min)}–${thousands(last.max)}) over ${s.broadcasts.length}`, verdict(last.max <= scaleTargets.broadcastMs && devices >= scaleTargets.connections)]);
    }
  }
  if (s.serverLogLines > 0) out.push(`\nThe nodes wrote ${s.serverLogLines} warning or error lines (the first ones are on stderr above).`);
  return { text: out.join('\n') + '\n', summary };
}
