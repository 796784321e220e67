/**
 * `targeted`, a side-by-side scenario: Herald and its two peers (bench/peers/) under open-loop publishes to one
 * random user each, through `POST /v1/notifications`, with Herald's durable store on (the bench's embedded
 * default: SQLite WAL, synchronous=full, 202 after the commit). For each server it finds the knee, the highest
 * rate it keeps up with, and then measures publish → deliver latency at fractions of that knee.
 *
 * Every step is the open loop of bench/latency.ts (`measureLatency`): notification n is due at start + n / rate
 * whatever happened to earlier ones, so a server that falls behind shows it in the figures instead of slowing
 * the sender down. Each step connects its clients afresh, one per user, and closes them afterwards, so a frame
 * late from one step cannot be counted in the next.
 *
 * **A run keeps up** when, over its measured window (after the warm-up):
 * - every publish was answered 202 and the loop did not fail (no broken connection, nothing unanswered);
 * - at most `maxLost` of its publishes were never delivered (measureLatency waits 10 s after the last 202);
 * - the p99 of the latency from each publish's *scheduled* time to its delivery is at most `maxP99Ms`. That
 *   figure includes the sender's lateness, so it also catches a backlog of publishes waiting for a connection,
 *   which grows without bound once the server answers slower than the rate.
 *
 * **A rate keeps up** when one of its first `1 + retries` runs keeps up: a run on this shared box can miss
 * because another job took the CPU for a second, and one such second should not end the ladder.
 *
 * **The knee** is the highest rate that kept up. The ladder tries `startRate × factor^i` upwards and stops at
 * the first rate that does not keep up; then `refinements` rates bisect (geometrically) between the last rate
 * that kept up and the lowest that did not, each moving whichever bound it lands on. So the knee is within a
 * factor of `factor^(1/2^refinements)` below the highest rate this box sustains. A ladder that reaches the last
 * rate not above `maxRate` still keeping up reports that rate as the knee, marked `capped` ("at least"); one
 * whose first rate does not keep up reports a knee of 0 and measures no points.
 *
 * **The points** follow on the same server, warm, once the machine has settled (`quiet`): at each fraction of
 * the knee, `runs` times, the runs interleaved (25 %, 50 %, 90 %, 25 %, …). One server per target runs its
 * ladder and points; it is stopped, with every client, whatever happens.
 *
 * The load generator shares the two cores with the server, so a knee is that of server and generator together;
 * the generator's cost per publish is the same for every server (bench/clients.ts).
 */
import { lineChart, type LineSeries, type XMarker } from './chart.js';
import { openConnections, postRequest } from './http-load.js';
import { measureLatency, type LatencyResult, type LatencySetup } from './latency.js';
import { notificationJson } from './payload.js';
import { connectClients, peerNames, peerTargets, startServer, userName, type PeerTarget, type RunningServer } from './servers.js';
import { progress, showSpread, spread, thousands, type Spread } from './stats.js';

export interface TargetedSettings {
  /** Users, one connected client each. Notification n goes to user {@link targetedUser}(n), the same on every server and run. */
  users: number;
  /** Keep-alive publishing connections, used in turn, one request in flight each (bench/http-load.ts). */
  connections: number;
  /** The ladder's first rate, publishes/s. */
  startRate: number;
  /** Each ladder step's rate over the previous one's. */
  factor: number;
  /** The ladder goes no higher than this, publishes/s; a server still keeping up there gets a capped knee. */
  maxRate: number;
  /** Bisection steps after the first rate that did not keep up. */
  refinements: number;
  /** Runs of a ladder rate after one that did not keep up, before the rate counts as missed. */
  retries: number;
  /** Publishes before each measured window that are sent but not counted, ms. */
  warmupMs: number;
  /** Measured window of each ladder step, ms. */
  stepMs: number;
  /** Measured window of each run at a point, ms. */
  pointMs: number;
  /** Fractions of the knee at which latency is measured. */
  fractions: number[];
  /** Runs at each point; the report takes the median. */
  runs: number;
  /** A step keeps up only if the p99 of its latency from the scheduled send time is at most this, ms. */
  maxP99Ms: number;
  /** A step keeps up only if at most this fraction of its publishes was never delivered. */
  maxLost: number;
}

/** About 2–2.5 minutes per server on the 2-core box, so 6–8 minutes for the three. */
export const fullTargeted: TargetedSettings = {
  users: 1_000,
  connections: 128,
  startRate: 2_000,
  factor: 1.5,
  maxRate: 60_000,
  refinements: 2,
  retries: 1,
  warmupMs: 1_000,
  stepMs: 3_000,
  pointMs: 5_000,
  fractions: [0.25, 0.5, 0.9],
  runs: 3,
  maxP99Ms: 100,
  maxLost: 0.001,
};

/** A smoke test, about half a minute per server: a coarse ladder, one short run per point. */
export const quickTargeted: TargetedSettings = { ...fullTargeted, startRate: 4_000, factor: 2, refinements: 0, retries: 0, warmupMs: 500, stepMs: 1_500, pointMs: 2_000, runs: 1 };

/** The `targeted` targets of the side-by-side issue, for Herald. */
export const targetedGoals = {
  /** The knee, publishes/s. */
  kneePerSecond: 15_000,
  /** Delivery p99 (from the request write) at `p99AtFraction` of the knee, ms. */
  p99Ms: 5,
  p99AtFraction: 0.5,
};

/** One step or run of the open loop, as stored: the {@link LatencyResult} without its samples. */
export interface TargetedRun extends Omit<LatencyResult, 'samples' | 'target' | 'users' | 'connections'> {
  /**
   * Server CPU time (all its processes and threads, from /proc) per measured publish, µs. Derived from
   * `cpu.server`, a whole percent of one core over the window, so it is good to about ±0.5 / `cpu.server`.
   */
  cpuUsPerNotification: number;
}

export interface LadderStep {
  /** Publishes/s. */
  rate: number;
  /** Whether this run kept up (see the top of bench/targeted.ts). */
  keptUp: boolean;
  /** Why it did not keep up; empty when it did. */
  missed: string[];
  /** The step's figures; absent when the loop itself failed (then `missed` says how). */
  run?: TargetedRun;
}

export interface TargetedPoint {
  /** Fraction of the knee. */
  fraction: number;
  /** Publishes/s. */
  rate: number;
  /** The runs that completed, in order. */
  runs: TargetedRun[];
  /** Runs that failed, as their error messages. */
  errors: string[];
  /**
   * The ascending delivery latencies (request written → frame read, ms) of the median run by delivery p99, for a
   * percentile chart. Not enumerable, so `JSON.stringify` (and object spread) leave it out; absent after a
   * round trip through the results file.
   */
  readonly samples?: Float64Array;
}

export interface TargetedResult {
  target: PeerTarget;
  settings: TargetedSettings;
  /** The highest rate that kept up, publishes/s; 0 when the ladder's first step did not. */
  knee: number;
  /** The ladder reached `maxRate` still keeping up: the knee is at least this. */
  capped: boolean;
  /** Every run of the ladder, in the order run: retries after the run they repeat, bisection steps last. */
  ladder: LadderStep[];
  /** One per fraction of `settings.fractions`; none when the knee is 0. */
  points: TargetedPoint[];
  /** Wall time this server's part took, s. */
  seconds: number;
}

/**
 * The user of notification n: a fixed 32-bit hash (murmur3's finalizer) of n, so the sequence looks random to
 * the server yet is identical on every server, step and run.
 */
export function targetedUser(n: number, users: number): number {
  let h = (n + 0x9e3779b9) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) % users;
}

/** Runs the scenario on each side-by-side server in turn; `quiet` waits for the machine to settle before each step. */
export async function runTargeted(settings: TargetedSettings, quiet: (scenario: string) => Promise<unknown>): Promise<TargetedResult[]> {
  const results: TargetedResult[] = [];
  for (const target of peerTargets) {
    const started = performance.now();
    progress('targeted', `${peerNames[target]}: finding the knee from ${thousands(settings.startRate)}/s, ×${settings.factor} a step, ${thousands(settings.users)} clients`);
    const server = await startServer(target);
    try {
      const { knee, capped, ladder } = await findKnee(target, server, settings, quiet);
      progress('targeted', `${peerNames[target]}: knee ${kneeOf(knee, capped, settings)}`);
      const points = knee > 0 ? await measurePoints(target, server, knee, settings, quiet) : [];
      results.push({ target, settings, knee, capped, ladder, points, seconds: Math.round((performance.now() - started) / 1000) });
    } finally {
      await server.stop();
    }
  }
  return results;
}

async function findKnee(target: PeerTarget, server: RunningServer, settings: TargetedSettings, quiet: (scenario: string) => Promise<unknown>): Promise<Pick<TargetedResult, 'knee' | 'capped' | 'ladder'>> {
  const ladder: LadderStep[] = [];
  const step = async (rate: number) => {
    for (let attempt = 0; attempt <= settings.retries; attempt++) {
      await quiet('targeted');
      const result = await ladderStep(target, server, rate, settings);
      ladder.push(result);
      if (result.keptUp) return true;
    }
    return false;
  };
  let kept = 0;
  let failed: number | undefined;
  for (let i = 0; ; i++) {
    const rate = Math.round(settings.startRate * settings.factor ** i);
    if (rate > settings.maxRate) break;
    if (!(await step(rate))) {
      failed = rate;
      break;
    }
    kept = rate;
  }
  for (let i = 0; i < settings.refinements && failed !== undefined && kept > 0; i++) {
    const rate = Math.round(Math.sqrt(kept * failed));
    if (rate <= kept || rate >= failed) break;
    if (await step(rate)) kept = rate;
    else failed = rate;
  }
  return { knee: kept, capped: failed === undefined && kept > 0, ladder };
}

async function ladderStep(target: PeerTarget, server: RunningServer, rate: number, settings: TargetedSettings): Promise<LadderStep> {
  const label = `${peerNames[target]} at ${thousands(rate)}/s`;
  let run: TargetedRun;
  try {
    run = await measure(server, rate, settings.stepMs, settings, label);
  } catch (error) {
    const missed = [`failed: ${error instanceof Error ? error.message : String(error)}`];
    progress('targeted', `${label}: did not keep up (${missed.join('; ')})`);
    return { rate, keptUp: false, missed };
  }
  const missed: string[] = [];
  if (run.failedRequests > 0) missed.push(`${thousands(run.failedRequests)} publishes not answered 202 (${run.failures[0] ?? ''})`);
  if (run.lost > settings.maxLost * run.measured) missed.push(`${thousands(run.lost)} of ${thousands(run.measured)} never delivered`);
  if (!(run.deliveryFromSchedule.p99 <= settings.maxP99Ms)) missed.push(`p99 from schedule ${ms(run.deliveryFromSchedule.p99)} > ${ms(settings.maxP99Ms)}`);
  progress('targeted', `${label}: ${missed.length === 0 ? 'kept up' : `did not keep up (${missed.join('; ')})`}; p99 ${ms(run.delivery.p99)}, from schedule ${ms(run.deliveryFromSchedule.p99)}`);
  return { rate, keptUp: missed.length === 0, missed, run };
}

async function measurePoints(target: PeerTarget, server: RunningServer, knee: number, settings: TargetedSettings, quiet: (scenario: string) => Promise<unknown>): Promise<TargetedPoint[]> {
  const points = settings.fractions.map((fraction) => ({ fraction, rate: Math.round(knee * fraction), runs: [] as TargetedRun[], errors: [] as string[] }));
  const samples = points.map(() => [] as Float64Array[]);
  for (let run = 0; run < settings.runs; run++) {
    for (const [i, point] of points.entries()) {
      await quiet('targeted');
      const label = `${peerNames[target]} at ${Math.round(point.fraction * 100)} % of the knee (${thousands(point.rate)}/s), run ${run + 1} of ${settings.runs}`;
      try {
        point.runs.push(await measure(server, point.rate, settings.pointMs, settings, label, samples[i]));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        point.errors.push(message);
        progress('targeted', `${label}: failed: ${message}`);
      }
    }
  }
  return points.map((point, i) => {
    const byP99 = point.runs.map((run, index) => ({ p99: run.delivery.p99, index })).sort((a, b) => a.p99 - b.p99);
    const median = byP99[Math.floor((byP99.length - 1) / 2)];
    const values = median === undefined ? undefined : samples[i]?.[median.index];
    if (values !== undefined) Object.defineProperty(point, 'samples', { value: values, enumerable: false });
    return point;
  });
}

/** One open loop at `rate` on fresh clients; the delivery samples go to `samples` when given. */
async function measure(server: RunningServer, rate: number, durationMs: number, settings: TargetedSettings, label: string, samples?: Float64Array[]): Promise<TargetedRun> {
  const users = Array.from({ length: settings.users }, (_, i) => userName(i));
  const setup: LatencySetup = {
    connectDevices: (onNotification) => connectClients(server, settings.users, { onNotification }),
    openPool: (onFailure) => openConnections(server.url, settings.connections, onFailure),
    request: (_connection, n) => postRequest(server.url, '/v1/notifications', server.publishToken, notificationJson(users[targetedUser(n, settings.users)] ?? '', n)),
    serverPids: [server.child.pid],
    scenario: 'targeted',
  };
  const result = await measureLatency({ target: server.target, rate, connections: settings.connections, users: settings.users, warmupMs: settings.warmupMs, durationMs }, label, setup);
  samples?.push(result.samples.delivery);
  const { durationS, measured, lost, outOfOrder, failedRequests, failures, delivery, deliveryFromSchedule, ack, senderLag, cpu } = result;
  // cpu.server is percent of one core over the window, which lasts measured / rate seconds.
  const cpuUsPerNotification = Math.round((cpu.server * 10_000 * 100) / rate) / 100;
  return { rate, durationS, measured, lost, outOfOrder, failedRequests, failures, delivery, deliveryFromSchedule, ack, senderLag, cpu, cpuUsPerNotification };
}

/** A latency to three significant figures or so: `0.84 ms`, `12.3 ms`, `978 ms`. */
function ms(value: number): string {
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)} ms`;
}

function table(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** Herald's figure against a peer's where less is better: "1.35× less" or "1.2× more". */
function lessIsBetter(herald: number, peer: number): string {
  if (!(herald > 0) || !(peer > 0)) return '-';
  return herald <= peer ? `${(peer / herald).toFixed(2)}× less` : `${(herald / peer).toFixed(2)}× more`;
}

const percent = (fraction: number) => `${Math.round(fraction * 100)} %`;
const kneeOf = (knee: number, capped: boolean, settings: TargetedSettings) => (knee === 0 ? `< ${thousands(settings.startRate)}/s` : `${capped ? '≥ ' : ''}${thousands(knee)}/s`);
const kneeText = (r: TargetedResult) => kneeOf(r.knee, r.capped, r.settings);
const of = (point: TargetedPoint | undefined, pick: (run: TargetedRun) => number): Spread => spread((point?.runs ?? []).map(pick));
const pointAt = (r: TargetedResult | undefined, fraction: number) => r?.points.find((p) => p.fraction === fraction);

/** Markdown for docs/benchmarks.md: the knees, latency at the points (median of runs with min–max), Herald's ratios, the targets. */
export function targetedMarkdown(results: TargetedResult[]): string {
  const first = results[0];
  if (first === undefined) return '';
  const s = first.settings;
  const out: string[] = [];
  out.push(`### Targeted: open-loop publishes to random users (${thousands(s.users)} clients, one per user; ${s.connections} publishing connections)`);
  out.push('');
  out.push(
    `The knee is the highest rate of the ladder (${thousands(s.startRate)}/s × ${s.factor} a step, ${s.stepMs / 1000} s measured after ${s.warmupMs / 1000} s of warm-up, ` +
      `${s.refinements} bisection steps${s.retries > 0 ? `, a rate that missed tried ${s.retries} more ${s.retries === 1 ? 'time' : 'times'}` : ''}) at which every publish got its 202, at most ${s.maxLost * 100} % were lost and the p99 from the scheduled send time was at most ${s.maxP99Ms} ms. ` +
      `Latency is from the request write to the frame's arrival, measured at fractions of each server's own knee, ${s.runs} ${s.runs === 1 ? 'run' : 'runs'} of ${s.pointMs / 1000} s each: median (min–max).`,
  );
  out.push('');
  out.push(
    table(
      ['server', 'knee', 'lowest rate missed', 'why'],
      results.map((r) => {
        const missed = r.ladder.filter((step) => !r.ladder.some((other) => other.rate === step.rate && other.keptUp));
        const lowest = Math.min(...missed.map((step) => step.rate));
        const why = missed.filter((step) => step.rate === lowest).map((step) => step.missed.join('; '));
        return [peerNames[r.target], kneeText(r), missed.length > 0 ? `${thousands(lowest)}/s` : '-', why.length > 0 ? why.join(', then ') : '-'];
      }),
    ),
  );
  out.push('');
  out.push(
    table(
      ['server', 'at', 'publishes/s', 'p50', 'p99', 'p99.9', 'p99 from schedule', 'server CPU per notification', 'lost', 'out of order'],
      results.flatMap((r) =>
        r.points.map((p) => [
          peerNames[r.target],
          `${percent(p.fraction)} of the knee`,
          thousands(p.rate),
          showSpread(of(p, (run) => run.delivery.p50), 2, ' ms'),
          showSpread(of(p, (run) => run.delivery.p99), 2, ' ms'),
          showSpread(of(p, (run) => run.delivery.p999), 2, ' ms'),
          showSpread(of(p, (run) => run.deliveryFromSchedule.p99), 2, ' ms'),
          showSpread(of(p, (run) => run.cpuUsPerNotification), 1, ' µs'),
          `${thousands(p.runs.reduce((sum, run) => sum + run.lost, 0))}${p.errors.length > 0 ? `; ${p.errors.length} runs failed` : ''}`,
          thousands(p.runs.reduce((sum, run) => sum + run.outOfOrder, 0)),
        ]),
      ),
    ),
  );
  const herald = results.find((r) => r.target === 'herald');
  const peers = results.filter((r) => r.target !== 'herald');
  if (herald && peers.length > 0) {
    out.push('');
    out.push(`Herald against each peer (medians; the points are at each server's own knee, so the latencies compare servers at the same share of their capacity):`);
    out.push('');
    const rows: string[][] = [
      ['knee, Herald ÷ peer', ...peers.map((peer) => (herald.knee > 0 && peer.knee > 0 ? `${(herald.knee / peer.knee).toFixed(2)}×` : '-'))],
      ...s.fractions.flatMap((fraction) => [
        [`p99 at ${percent(fraction)} of the knee`, ...peers.map((peer) => lessIsBetter(of(pointAt(herald, fraction), (run) => run.delivery.p99).median, of(pointAt(peer, fraction), (run) => run.delivery.p99).median))],
        [`server CPU per notification at ${percent(fraction)} of the knee`, ...peers.map((peer) => lessIsBetter(of(pointAt(herald, fraction), (run) => run.cpuUsPerNotification).median, of(pointAt(peer, fraction), (run) => run.cpuUsPerNotification).median))],
      ]),
    ];
    out.push(table(['Herald', ...peers.map((peer) => `against ${peerNames[peer.target]}`)], rows));
  }
  out.push('');
  out.push('<details><summary>Every ladder step</summary>');
  out.push('');
  out.push(
    table(
      ['server', 'publishes/s', 'kept up', 'p50', 'p99', 'p99 from schedule', 'sender lag p99', 'server CPU per notification', 'lost', 'CPU % server/gen/softirq/other'],
      results.flatMap((r) =>
        r.ladder.map((step) => {
          const run = step.run;
          return [
            peerNames[r.target],
            thousands(step.rate),
            step.keptUp ? 'yes' : `no: ${step.missed.join('; ')}`,
            run ? ms(run.delivery.p50) : '-',
            run ? ms(run.delivery.p99) : '-',
            run ? ms(run.deliveryFromSchedule.p99) : '-',
            run ? ms(run.senderLag.p99) : '-',
            run ? `${run.cpuUsPerNotification.toFixed(1)} µs` : '-',
            run ? thousands(run.lost) : '-',
            run ? `${run.cpu.server}/${run.cpu.client}/${run.cpu.softirq}/${run.cpu.other}` : '-',
          ];
        }),
      ),
    ),
  );
  out.push('');
  out.push('</details>');
  if (herald) {
    const p99 = of(pointAt(herald, targetedGoals.p99AtFraction), (run) => run.delivery.p99);
    out.push('');
    out.push('### `targeted` targets');
    out.push('');
    out.push(
      table(
        ['target', 'goal', 'measured (median)', 'verdict'],
        [
          ['`targeted`: knee', `≥ ${thousands(targetedGoals.kneePerSecond)}/s`, kneeText(herald), herald.knee >= targetedGoals.kneePerSecond ? 'met' : 'missed'],
          [
            `\`targeted\`: p99 at ${percent(targetedGoals.p99AtFraction)} of the knee`,
            `≤ ${targetedGoals.p99Ms} ms`,
            showSpread(p99, 2, ' ms'),
            Number.isFinite(p99.median) ? (p99.median <= targetedGoals.p99Ms ? 'met' : 'missed') : '-',
          ],
        ],
      ),
    );
  }
  return out.join('\n') + '\n';
}

/**
 * `bench-peers-latency.svg`: delivery p99 (solid) and p50 (dashed) against the publish rate for each server, over
 * the ladder's steps that kept up and the medians at the points (a point replaces a step at the same rate), with
 * each server's knee marked.
 */
export function targetedCharts(results: TargetedResult[]): [string, string][] {
  const series: LineSeries[] = [];
  const markers: XMarker[] = [];
  for (const r of results) {
    const color = peerTargets.indexOf(r.target);
    const kept = r.ladder.filter((step) => step.keptUp && step.run !== undefined);
    const measured = r.points.filter((p) => p.runs.length > 0);
    const figures = [
      ...kept.filter((step) => !measured.some((p) => p.rate === step.rate)).map((step) => ({ x: step.rate, p50: step.run?.delivery.p50 ?? Number.NaN, p99: step.run?.delivery.p99 ?? Number.NaN })),
      ...measured.map((p) => ({ x: p.rate, p50: of(p, (run) => run.delivery.p50).median, p99: of(p, (run) => run.delivery.p99).median })),
    ].filter((f) => Number.isFinite(f.p50) && Number.isFinite(f.p99));
    series.push({ name: `${peerNames[r.target]} p99`, color, points: figures.map((f) => ({ x: f.x, ms: f.p99 })) });
    series.push({ name: `${peerNames[r.target]} p50`, color, dashed: true, points: figures.map((f) => ({ x: f.x, ms: f.p50 })) });
    if (r.knee > 0) markers.push({ x: r.knee, label: `${peerNames[r.target]} knee, ${kneeText(r)}`, color });
  }
  const title = 'Targeted publishes to random users: latency against rate (open loop)';
  return [['bench-peers-latency.svg', lineChart(title, 'publishes/s', series, targetedGoals.p99Ms, markers)]];
}
