/**
 * Latency: publish → deliver at a fixed rate, open loop. Notification n is due at start + n / rate whatever
 * happened to earlier ones, so a stall shows up in the figures instead of slowing the sender down
 * (no coordinated omission). Delivery latency is the time the device's `ws` client read the frame minus the
 * time the HTTP request was written; the same figure measured from the scheduled time is reported too, and
 * so is how late the sender was against its schedule, so the reader can see the generator kept up.
 */
import type { Client } from './clients.js';
import { startCpuMeter, type CpuShare } from './proc.js';
import { openConnections, postRequest, type Connection } from './http-load.js';
import { numberOf, singleBody } from './payload.js';
import { connectUsers, startServer, type ScenarioOptions, type Target } from './servers.js';
import { distribution, progress, rounded, sorted, thousands, waitFor, type Distribution } from './stats.js';

/**
 * Connections are used in turn so none sits idle into the server's keep-alive timeout; a publish that finds
 * all of them busy waits for one (and is late).
 */
export interface LatencyOptions extends ScenarioOptions {
  /** Publishes per second. */
  rate: number;
}

export interface LatencyResult {
  target: Target;
  rate: number;
  connections: number;
  users: number;
  durationS: number;
  /** Publishes measured (after warm-up). */
  measured: number;
  /** Measured publishes whose frame never arrived. */
  lost: number;
  outOfOrder: number;
  failedRequests: number;
  failures: string[];
  /** Request written → frame read by the device, ms. */
  delivery: Distribution;
  /** Scheduled send time → frame read by the device, ms (includes the sender's lateness). */
  deliveryFromSchedule: Distribution;
  /** Request written → 202 read, ms. */
  ack: Distribution;
  /** Request written − scheduled send time, ms. */
  senderLag: Distribution;
  /** How the CPU was shared while the measured publishes were sent, percent of one core each. */
  cpu: CpuShare;
  /** The ascending delivery latencies, from the write and from the schedule, for the chart; not written to the results file. */
  samples: { delivery: Float64Array; fromSchedule: Float64Array };
}

/** What the open loop reads from a connected device: Herald's `Device`, or a client of any protocol. */
export type Receiver = Pick<Client, 'outOfOrder' | 'problems' | 'close'>;

/**
 * Where a latency run publishes and who receives: one server here, several nodes in the scale scenario, any
 * side-by-side server in the targeted scenario.
 */
export interface LatencySetup {
  /** Connects one device per user; `onNotification` gets every notification frame's body and arrival time. */
  connectDevices(onNotification: (body: string, at: number) => void): Promise<readonly Receiver[]>;
  /** Opens the publishing connections; a broken one goes to `onFailure`. */
  openPool(onFailure: (error: Error) => void): Promise<Connection[]>;
  /** The complete request that publishes notification `n` on `connection`. */
  request(connection: Connection, n: number): string;
  /** Processes whose CPU time counts as the server's. */
  serverPids: readonly number[];
  /** Scenario named in the progress lines. Default `'latency'`. */
  scenario?: string;
}

export async function runLatency(o: LatencyOptions): Promise<LatencyResult> {
  const label = `${o.target} at ${thousands(o.rate)}/s`;
  progress('latency', `${label}: starting the server, ${o.users} devices, ${o.connections} publishing connections`);
  const server = await startServer(o.target, { config: o.config ?? {}, ...(o.profileDir === undefined ? {} : { profileDir: o.profileDir }) });
  try {
    return await measureLatency(o, label, {
      connectDevices: (onNotification) => connectUsers(server, o.users, { onNotification }),
      openPool: (onFailure) => openConnections(server.url, o.connections, onFailure),
      request: (_connection, n) => postRequest(server.url, '/v1/notifications', server.publishToken, singleBody(o.users, n)),
      serverPids: [server.child.pid],
    });
  } finally {
    await server.stop();
  }
}

/** The open loop itself, against servers that are already running; closes the devices and connections it opened. */
export async function measureLatency(o: LatencyOptions, label: string, setup: LatencySetup): Promise<LatencyResult> {
  const scenario = setup.scenario ?? 'latency';
  let devices: readonly Receiver[] = [];
  let pool: Connection[] = [];
  try {
    const total = Math.round((o.rate * (o.warmupMs + o.durationMs)) / 1000);
    const first = Math.round((o.rate * o.warmupMs) / 1000);
    const sentAt = new Float64Array(total).fill(Number.NaN);
    const receivedAt = new Float64Array(total).fill(Number.NaN);
    const ackAt = new Float64Array(total).fill(Number.NaN);
    let received = 0;
    devices = await setup.connectDevices((body, at) => {
      const n = numberOf(body);
      if (n >= 0 && n < total) receivedAt[n] = at;
      received++;
    });
    let failure: Error | undefined;
    pool = await setup.openPool((error) => (failure ??= error));
    const failures: string[] = [];
    let failedRequests = 0;
    let answered = 0;

    const start = performance.now() + 20;
    const interval = 1000 / o.rate;
    const idle = [...pool];
    const backlog: number[] = [];
    const send = (connection: Connection, n: number) => {
      sentAt[n] = performance.now();
      connection.send(setup.request(connection, n), (status, body, at) => {
        answered++;
        if (status === 202) ackAt[n] = at;
        else {
          failedRequests++;
          if (failures.length < 5) failures.push(`${status} ${body}`);
        }
        const queued = backlog.shift();
        if (queued === undefined) idle.push(connection);
        else send(connection, queued);
      });
    };

    // The sender sleeps on a timer until the next slot and then sends every publish that is due. Node's timers
    // have a 1 ms granularity, so publishes leave in small bursts up to 1 ms late (see senderLag); spinning on
    // setImmediate would be more punctual but would take a whole core from a 2-core box that the server needs.
    let next = 0;
    let lastReport = start;
    let meter: { stop(): CpuShare } | undefined;
    let cpu: CpuShare = { server: 0, client: 0, softirq: 0, other: 0 };
    const deadline = start + total * interval + 30_000;
    await new Promise<void>((resolve, reject) => {
      const tick = () => {
        const now = performance.now();
        if (failure || now > deadline) {
          reject(failure ?? new Error(`${total - answered} publishes unanswered 30 s after the last was due`));
          return;
        }
        while (next < total && start + next * interval <= now) {
          if (next === first) meter = startCpuMeter(setup.serverPids);
          const connection = idle.shift();
          if (connection) send(connection, next);
          else backlog.push(next);
          next++;
        }
        if (next === total && meter) {
          cpu = meter.stop();
          meter = undefined;
        }
        if (now - lastReport >= 1000) {
          lastReport = now;
          const phase = next < first ? 'warm-up' : `${Math.max(0, Math.ceil((start + total * interval - now) / 1000))} s left`;
          progress(scenario, `${label}: ${thousands(next)} sent, ${thousands(received)} delivered, ${backlog.length} waiting for a connection (${phase})`);
        }
        if (next < total) setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
        else if (answered < total) setTimeout(tick, 5);
        else resolve();
      };
      setTimeout(tick, 20);
    });
    await waitFor(() => received >= total, 10_000);

    const delivery: number[] = [];
    const fromSchedule: number[] = [];
    const ack: number[] = [];
    const lag: number[] = [];
    let lost = 0;
    for (let n = first; n < total; n++) {
      const scheduled = start + n * interval;
      const sent = sentAt[n] ?? Number.NaN;
      const got = receivedAt[n] ?? Number.NaN;
      lag.push(sent - scheduled);
      if (!Number.isNaN(ackAt[n] ?? Number.NaN)) ack.push((ackAt[n] ?? 0) - sent);
      if (Number.isNaN(got)) {
        lost++;
        continue;
      }
      delivery.push(got - sent);
      fromSchedule.push(got - scheduled);
    }
    const samples = { delivery: sorted(delivery), fromSchedule: sorted(fromSchedule) };
    const result: LatencyResult = {
      target: o.target,
      rate: o.rate,
      connections: o.connections,
      users: o.users,
      durationS: o.durationMs / 1000,
      measured: total - first,
      lost,
      outOfOrder: devices.reduce((sum, d) => sum + d.outOfOrder, 0),
      failedRequests,
      failures: [...failures, ...devices.flatMap((d) => d.problems).slice(0, 5)],
      delivery: rounded(distribution(samples.delivery)),
      deliveryFromSchedule: rounded(distribution(samples.fromSchedule)),
      ack: rounded(distribution(sorted(ack))),
      senderLag: rounded(distribution(sorted(lag))),
      cpu,
      samples,
    };
    const d = result.delivery;
    progress(scenario, `${label}: delivery p50 ${d.p50} ms, p95 ${d.p95} ms, p99 ${d.p99} ms, max ${d.max} ms; ${lost} lost`);
    return result;
  } finally {
    for (const connection of pool) connection.close();
    for (const device of devices) device.close();
  }
}
