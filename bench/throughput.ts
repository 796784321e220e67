/**
 * Throughput: how many targeted notifications per second the server accepts (202) while every recipient's
 * device is connected and receiving. Closed loop: each keep-alive connection sends its next publish as soon as
 * the previous one's 202 is back. Only the measurement window counts; afterwards every device must have
 * received every accepted notification, in seq order.
 */
import type { ConfigInput } from '../server/src/index.js';
import type { Device } from './device.js';
import { startCpuMeter, type CpuShare } from './proc.js';
import { openConnections, postRequest, type Connection } from './http-load.js';
import { batchBody, singleBody } from './payload.js';
import { connectUsers, startServer, type ScenarioOptions, type Target } from './servers.js';
import { distribution, progress, rounded, sorted, thousands, waitFor, type Distribution } from './stats.js';

export type PublishMode = 'single' | 'batch';

/** Notifications per `POST /v1/notifications/batch` (the contract's maximum). */
export const batchSize = 100;

/** Each connection has one request in flight. */
export interface ThroughputOptions extends ScenarioOptions {
  mode: PublishMode;
}

export interface ThroughputResult {
  target: Target;
  mode: PublishMode;
  /** Herald settings that differ from the bench defaults. */
  config: ConfigInput;
  connections: number;
  users: number;
  /** Notifications per request. */
  perRequest: number;
  durationS: number;
  /** Notifications whose 202 came back within the window, per second. */
  notificationsPerSecond: number;
  requestsPerSecond: number;
  /** Notification frames the devices received within the window, per second. */
  deliveredPerSecond: number;
  /** Every accepted notification, warm-up included. */
  accepted: number;
  /** Every notification frame received, warm-up included. */
  delivered: number;
  /** Whether every accepted notification reached its device. */
  allDelivered: boolean;
  /** Frames whose seq was not the previous one plus one (loss or duplicates). */
  outOfOrder: number;
  failedRequests: number;
  failures: string[];
  /** Publish round trip (request written → 202 read) within the window, ms. */
  ack: Distribution;
  /** How the CPU was shared within the window, percent of one core each. */
  cpu: CpuShare;
}

export interface LoopResult {
  accepted: number;
  windowAccepted: number;
  windowRequests: number;
  windowDelivered: number;
  failedRequests: number;
  failures: string[];
  ack: number[];
  cpu: CpuShare;
}

export interface LoopOptions {
  pool: Connection[];
  request: (n: number) => string;
  perRequest: number;
  warmupMs: number;
  durationMs: number;
  delivered: () => number;
  /** Processes whose CPU time counts as the server's. */
  serverPid: number | readonly number[];
  failure: () => Error | undefined;
  label: string;
}

/** Runs every connection in a closed loop until the window ends, then lets the last requests finish. */
export function closedLoop(o: LoopOptions): Promise<LoopResult> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const windowStart = start + o.warmupMs;
    const windowEnd = windowStart + o.durationMs;
    const result: LoopResult = { accepted: 0, windowAccepted: 0, windowRequests: 0, windowDelivered: 0, failedRequests: 0, failures: [], ack: [], cpu: { server: 0, client: 0, softirq: 0, other: 0 } };
    let next = 0;
    let active = o.pool.length;
    let meter: { stop(): CpuShare } | undefined;
    let deliveredAtStart = 0;
    let lastReport = { at: start, accepted: 0, delivered: 0 };

    const ticker = setInterval(() => {
      const now = performance.now();
      const error = o.failure() ?? (now > windowEnd + 30_000 ? new Error(`${active} publishes still unanswered 30 s after the window closed`) : undefined);
      if (error) {
        clearInterval(ticker);
        reject(error);
        return;
      }
      const delivered = o.delivered();
      const seconds = (now - lastReport.at) / 1000;
      const phase = now < windowStart ? 'warm-up' : `${Math.max(0, Math.ceil((windowEnd - now) / 1000))} s left`;
      progress('throughput', `${o.label}: ${thousands((result.accepted - lastReport.accepted) / seconds)}/s accepted, ${thousands((delivered - lastReport.delivered) / seconds)}/s delivered (${phase})`);
      lastReport = { at: now, accepted: result.accepted, delivered };
    }, 1000);

    const windowTimer = setTimeout(() => {
      meter = startCpuMeter(o.serverPid);
      deliveredAtStart = o.delivered();
    }, o.warmupMs);
    const endTimer = setTimeout(() => {
      if (meter) result.cpu = meter.stop();
      result.windowDelivered = o.delivered() - deliveredAtStart;
    }, o.warmupMs + o.durationMs);

    const fire = (connection: Connection) => {
      const n = next++;
      const sentAt = performance.now();
      connection.send(o.request(n), (status, body, at) => {
        const inWindow = at >= windowStart && at < windowEnd;
        if (status === 202) {
          result.accepted += o.perRequest;
          if (inWindow) {
            result.windowAccepted += o.perRequest;
            result.windowRequests++;
            result.ack.push(at - sentAt);
          }
        } else {
          result.failedRequests++;
          if (result.failures.length < 5) result.failures.push(`${status} ${body}`);
        }
        if (at < windowEnd) {
          fire(connection);
          return;
        }
        if (--active > 0) return;
        clearInterval(ticker);
        // The last response can beat the end timer by a hair; wait for it so the window's counters are set.
        setTimeout(() => {
          clearTimeout(windowTimer);
          clearTimeout(endTimer);
          resolve(result);
        }, Math.max(0, windowEnd - performance.now()) + 5);
      });
    };
    o.pool.forEach(fire);
  });
}

export async function runThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const label = `${o.target} ${o.mode}`;
  progress('throughput', `${label}: starting the server, ${o.users} devices, ${o.connections} publishing connections`);
  const server = await startServer(o.target, { config: o.config ?? {}, ...(o.profileDir === undefined ? {} : { profileDir: o.profileDir }) });
  let devices: Device[] = [];
  let pool: Connection[] = [];
  try {
    devices = await connectUsers(server, o.users);
    const delivered = () => devices.reduce((sum, d) => sum + d.notifications, 0);
    let failure: Error | undefined;
    pool = await openConnections(server.url, o.connections, (error) => (failure ??= error));
    const perRequest = o.mode === 'batch' ? batchSize : 1;
    const path = o.mode === 'batch' ? '/v1/notifications/batch' : '/v1/notifications';
    const loop = await closedLoop({
      pool,
      request: (n) => postRequest(server.url, path, server.publishToken, o.mode === 'batch' ? batchBody(o.users, n * batchSize, batchSize) : singleBody(o.users, n)),
      perRequest,
      warmupMs: o.warmupMs,
      durationMs: o.durationMs,
      delivered,
      serverPid: server.child.pid,
      failure: () => failure,
      label,
    });
    const allDelivered = await waitFor(() => delivered() >= loop.accepted, 30_000);
    const seconds = o.durationMs / 1000;
    const result: ThroughputResult = {
      target: o.target,
      mode: o.mode,
      config: o.config ?? {},
      connections: o.connections,
      users: o.users,
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
    };
    progress(
      'throughput',
      `${label}: ${thousands(result.notificationsPerSecond)} notifications/s accepted, ${thousands(result.deliveredPerSecond)}/s delivered; ` +
        `${result.allDelivered ? 'every one delivered' : `DELIVERED ${result.delivered} OF ${result.accepted}`}, ${result.outOfOrder} out of order`,
    );
    return result;
  } finally {
    for (const connection of pool) connection.close();
    for (const device of devices) device.close();
    await server.stop();
  }
}
