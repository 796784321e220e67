/**
 * `npm run bench -- [throughput|latency|memory|scale …] [options]`: runs the scenarios against real server processes,
 * prints progress on stderr and a results table on stdout, writes bench/results/latest.json and the charts
 * under docs/. See docs/benchmarks.md.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { barChart, latencyChart, type Bar } from './chart.js';
import { runLatency, type LatencyResult } from './latency.js';
import { runMemory, type MemoryResult } from './memory.js';
import { fullSideBySide, type Measured, peersCharts, peersMarkdown, quickSideBySide, runSideBySide, type PeerScenario, type PeersSection } from './side-by-side.js';
import { fullScale, quickScale, reportScale, runScale, scaleTargets, type ScaleSection } from './scale.js';
import { awaitQuiet, cpuCells, cpuHeadings, machine } from './proc.js';
import { formatProfile, summarizeProfile, type ProfileSummary } from './profile.js';
import type { ConfigInput } from '../server/src/index.js';
import { peerNames, type Target } from './servers.js';
import { progress, thousands } from './stats.js';
import { runThroughput, type PublishMode, type ThroughputResult } from './throughput.js';
import { fullInbox, inboxMarkdown, quickInbox, runInbox } from './inbox.js';
import { fullLoopback, loopbackMarkdown, quickLoopback, runLoopback } from './loopback.js';

const usage = `Usage: npm run bench -- [scenario …] [options]

Benchmarks the Herald server (a child process on loopback, SQLite WAL with synchronous=full,
in-process broker, rate limits off) against its targets, next to a bare node:http + ws relay,
and side by side with two peers (bench/peers/: a bare ws server and Socket.IO).
Run it on an otherwise idle machine: the load generator shares the CPU with the server.

Scenarios (default: all but scale, about 45 minutes):
  throughput   targeted notifications/s with every device receiving: single and batch publishes
  latency      publish → deliver p50/p95/p99, open loop, at half the throughput target (7,500/s)
               and at half the single-publish rate measured in this run, when that is higher
  memory       server RSS per idle authenticated connection, at 15,000 connections
  connections  side by side: 15,000 idle connections on Herald, bare ws and Socket.IO: RSS and heap
               per connection, CPU of keep-alives over 30 s; 3 runs each
  broadcast    side by side: 1,000 / 5,000 / 15,000 clients, 50 notifications of 200 B to all:
               server CPU per delivery, deliveries/s, time to the last recipient, event-loop lag;
               3 runs each
  compression  side by side: broadcast to 5,000 clients with permessage-deflate off, then on
  targeted     side by side: open-loop publishes to random users at rising rates until a server no
               longer keeps up (its knee), then latency at 25, 50 and 90% of each one's knee; 3 runs
  inbox        the SQLite store alone, in this process: a broadcast to 5,000 users whose inboxes are new,
               then hold 200 rows each: store CPU per delivery and bytes written per broadcast; 3 runs
  loopback     no server: this machine's CPU for one 200-byte write to a loopback TCP socket and for
               reading it (node:net, 5,000 sockets × 20 rounds), the floor under every server's CPU
               per delivery and under the load generator's; 3 runs
  storm        Herald alone: 15,000 devices (the desktop app's connection code) resume after a server
               restart: time until all are back, lost, duplicates, event-loop lag; 3 runs
  scale        scale-out, 8 minutes or more: 2 nodes (herald-server start --workers N) on the shared
               PostgreSQL (a schema of its own, dropped afterwards) and Redis. Throughput and latency (at
               2,500/s and half the measured rate) through both nodes, 1 worker each; then 3 workers each:
               100,000 idle devices from holder processes: RSS per connection, heartbeat CPU; then 3
               broadcasts to all of them

Options:
  --rate N          publishes/s for latency, instead of the default rates above
  --connections N   idle connections for memory (default 15000)
  --scale-connections N
                    idle devices for scale (default 100000; --quick 5000)
  --scale-workers N worker processes per node for scale's connections and broadcasts (default 3;
                    --quick 2)
  --scale-publish-workers N
                    worker processes per node for scale's throughput and latency (default 1)
  --single-connections N, --batch-connections N
                    publishing connections for throughput (default 128 and 16)
  --history N       broadcast: N notifications to every client before the measured ones, so that Herald's
                    inboxes are in use rather than new (default 0)
  --no-baseline     skip the bare-relay reference runs
  --synchronous S   SQLite synchronous=full (default, the target's setting) or normal, for comparison
  --profile         run the Herald server with --cpu-prof (throughput and latency) and print where its
                    time goes; profiling slows it down, so these runs are marked profiled
  --quick           short windows and 2,000 connections (scale: 2 × 2 workers, 5,000): a smoke test,
                    not figures to publish
  --out NAME        write bench/results/NAME.json instead of latest.json (and leave the charts alone)
  --no-charts       do not rewrite docs/bench-*.svg
  --report          run nothing: redraw the side-by-side charts and the generated section of
                    docs/benchmarks.md from bench/results/latest.json
  -h, --help        this text

Progress goes to stderr, the results table to stdout, everything to bench/results/latest.json, whose
sections are kept for the scenarios not run. --quick writes quick.json and --profile profile.json;
only runs that write latest.json redraw the charts, so docs/ always matches latest.json.
`;

const targets = {
  /** Accepted targeted notifications per second, single or batch publishes. */
  throughput: 15_000,
  /** Publish → deliver p99 at half the throughput target (7,500/s), ms. */
  latencyP99Ms: 5,
  /** Server RSS per idle authenticated connection, bytes. */
  bytesPerConnection: 10_000,
};

const scenarios = ['throughput', 'latency', 'memory', 'connections', 'broadcast', 'compression', 'targeted', 'inbox', 'loopback', 'storm', 'scale'] as const;
type Scenario = (typeof scenarios)[number];
/** What `npm run bench` runs without naming scenarios: scale needs PostgreSQL and Redis, and takes longer. */
const defaultScenarios: Scenario[] = scenarios.filter((s) => s !== 'scale');
const peerScenarios: PeerScenario[] = ['connections', 'broadcast', 'compression', 'targeted', 'storm'];

interface Settings {
  /** Not counted at the start of each throughput and latency run, ms. */
  warmupMs: number;
  /** Throughput measurement window, ms. */
  throughputMs: number;
  /** Latency measurement window for Herald, ms. */
  latencyMs: number;
  /** Latency measurement window for the bare relay, ms. */
  baselineLatencyMs: number;
  /** Idle connections in the memory scenario. */
  connections: number;
  /** Waits at most this long before each run for other jobs on the machine to go quiet, ms. */
  quietWaitMs: number;
  /** Herald settings over the bench defaults. */
  config: ConfigInput;
  /** Publishing connections in the throughput scenario. */
  publishConnections: Record<PublishMode, number>;
}

/** Publishing connections by default: past these, only latency grows (the sweep in docs/benchmarks.md). */
const defaultPublishConnections: Record<PublishMode, number> = { single: 128, batch: 16 };

const full: Settings = {
  warmupMs: 3_000,
  throughputMs: 10_000,
  latencyMs: 20_000,
  baselineLatencyMs: 10_000,
  connections: 15_000,
  quietWaitMs: 10_000,
  config: {},
  publishConnections: defaultPublishConnections,
};

const quick: Settings = { ...full, warmupMs: 1_000, throughputMs: 3_000, latencyMs: 4_000, baselineLatencyMs: 3_000, connections: 2_000, quietWaitMs: 2_000 };

/** Users, one device each, that notifications are spread over. */
const users = 100;
const latencyConnections = 64;

const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
const docs = fileURLToPath(new URL('../docs/', import.meta.url));

const names: Record<Target, string> = { ...peerNames, baseline: 'bare relay' };

async function quiet(scenario: string, settings: Settings): Promise<number> {
  return awaitQuiet(settings.quietWaitMs, (busy) => progress(scenario, `waiting for the machine to go quiet (other jobs use ${busy}% of a core)`));
}

interface Profiled {
  profiles: (ProfileSummary & { run: string })[];
}

/** Runs `run`, with the server under `--cpu-prof` when `profile` is set, and keeps the profile's summary. */
async function profiled<T>(section: Profiled, profile: boolean, label: string, run: (profileDir: string | undefined) => Promise<T>): Promise<T> {
  if (!profile) return run(undefined);
  const profileDir = mkdtempSync(join(tmpdir(), 'herald-profile-'));
  try {
    const result = await run(profileDir);
    const summary = summarizeProfile(profileDir, 20);
    process.stderr.write(`${label}: ${formatProfile(summary)}\n`);
    section.profiles.push({ ...summary, run: label, file: basename(summary.file) });
    return result;
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }
}

interface ThroughputSection extends Profiled {
  at: string;
  runs: (ThroughputResult & { machineBusyBeforePercent: number; profiled: boolean })[];
}

async function throughput(settings: Settings, baseline: boolean, profile: boolean): Promise<ThroughputSection> {
  const section: ThroughputSection = { at: new Date().toISOString(), runs: [], profiles: [] };
  const plan: [Target, PublishMode][] = [
    ['herald', 'single'],
    ['herald', 'batch'],
    ...(baseline ? ([['baseline', 'single'], ['baseline', 'batch']] as [Target, PublishMode][]) : []),
  ];
  for (const [target, mode] of plan) {
    const busy = await quiet('throughput', settings);
    const withProfile = profile && target === 'herald';
    const result = await profiled(section, withProfile, `${target} ${mode} publish`, (profileDir) =>
      runThroughput({
        target,
        mode,
        connections: settings.publishConnections[mode],
        users,
        warmupMs: settings.warmupMs,
        durationMs: settings.throughputMs,
        config: settings.config,
        ...(profileDir === undefined ? {} : { profileDir }),
      }),
    );
    section.runs.push({ ...result, machineBusyBeforePercent: busy, profiled: withProfile });
  }
  return section;
}

/** A rate the latency scenario runs at, and where it came from. */
interface LatencyRate {
  rate: number;
  from: string;
}

interface LatencySection extends Profiled {
  at: string;
  runs: (Omit<LatencyResult, 'samples'> & { rateFrom: string; machineBusyBeforePercent: number; profiled: boolean })[];
}

async function latency(
  settings: Settings,
  baseline: boolean,
  profile: boolean,
  rates: LatencyRate[],
): Promise<{ section: LatencySection; samples: LatencyResult[] }> {
  const section: LatencySection = { at: new Date().toISOString(), runs: [], profiles: [] };
  const samples: LatencyResult[] = [];
  // The bare relay runs once, at the first rate: it is the reference for the target's row.
  const plan: (LatencyRate & { target: Target })[] = rates.map((rate) => ({ target: 'herald', ...rate }));
  if (baseline && rates[0] !== undefined) plan.splice(1, 0, { target: 'baseline', ...rates[0] });
  for (const { target, rate, from } of plan) {
    const busy = await quiet('latency', settings);
    const withProfile = profile && target === 'herald';
    const result = await profiled(section, withProfile, `${target} latency at ${rate}/s`, (profileDir) =>
      runLatency({
        target,
        rate,
        connections: latencyConnections,
        users,
        warmupMs: settings.warmupMs,
        durationMs: target === 'herald' ? settings.latencyMs : settings.baselineLatencyMs,
        config: settings.config,
        ...(profileDir === undefined ? {} : { profileDir }),
      }),
    );
    section.runs.push({ ...withoutSamples(result), rateFrom: from, machineBusyBeforePercent: busy, profiled: withProfile });
    samples.push(result);
  }
  return { section, samples };
}

/**
 * `--rate`, or else half the throughput target, which is the target's own definition, and half the
 * single-publish rate this run measured, when that is higher: the stricter reading of "half that rate".
 */
function latencyRates(rate: number | undefined, t: ThroughputSection | undefined): LatencyRate[] {
  if (rate !== undefined) return [{ rate, from: 'set by --rate' }];
  const rates = [{ rate: targets.throughput / 2, from: 'half the target' }];
  const single = t?.runs.find((r) => r.target === 'herald' && r.mode === 'single');
  const measured = single === undefined ? 0 : Math.round(single.notificationsPerSecond / 2);
  if (single !== undefined && measured > targets.throughput / 2) rates.push({ rate: measured, from: `half the measured rate${single.profiled ? ', profiled' : ''}` });
  return rates;
}

function withoutSamples(result: LatencyResult): Omit<LatencyResult, 'samples'> {
  const copy: Partial<LatencyResult> = { ...result };
  delete copy.samples;
  return copy as Omit<LatencyResult, 'samples'>;
}

interface MemorySection {
  at: string;
  runs: MemoryResult[];
}

async function memory(settings: Settings, baseline: boolean, connections: number): Promise<MemorySection> {
  const section: MemorySection = { at: new Date().toISOString(), runs: [] };
  const plan: Target[] = baseline ? ['herald', 'baseline'] : ['herald'];
  for (const target of plan) {
    await quiet('memory', settings);
    section.runs.push(await runMemory({ target, connections, perHolder: 3_750, parallel: 50, config: settings.config }));
  }
  return section;
}

/**
 * Scale-out on 2 nodes (bench/scale.ts). The latency step runs at half the scale throughput target and at half
 * the single-publish rate this run measured through both nodes, when that is higher; or at `--rate`.
 */
async function scale(
  quickRun: boolean,
  rate: number | undefined,
  options: { connections?: string | undefined; workers?: string | undefined; publishWorkers?: string | undefined },
): Promise<ScaleSection> {
  const settings = { ...(quickRun ? quickScale : fullScale) };
  if (options.connections !== undefined) settings.connections = positiveInt('--scale-connections', options.connections);
  if (options.workers !== undefined) settings.workers = positiveInt('--scale-workers', options.workers);
  if (options.publishWorkers !== undefined) settings.publishWorkers = positiveInt('--scale-publish-workers', options.publishWorkers);
  // Each worker may hold 20,000 open files; leave room for its store and broker connections.
  if (settings.connections / (2 * settings.workers) > 19_000) throw new UsageError(`--scale-connections: at most ${thousands(19_000 * 2 * settings.workers)} with ${settings.workers} workers per node`);
  if (settings.connections / settings.sourceAddresses > 28_000) throw new UsageError('--scale-connections: more than 28,000 per loopback source address');
  return runScale(settings, (measuredSingle) => {
    if (rate !== undefined) return [{ rate, from: 'set by --rate' }];
    const rates = [{ rate: scaleTargets.throughput / 2, from: 'half the target' }];
    const measured = Math.round(measuredSingle / 2);
    if (measured > scaleTargets.throughput / 2) rates.push({ rate: measured, from: 'half the measured rate' });
    return rates;
  });
}

/** Plain-text table with aligned columns. */
function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const ms = (value: number) => value.toFixed(2);
const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const verdict = (met: boolean) => (met ? 'met' : 'MISSED');

function report(t: ThroughputSection | undefined, l: LatencySection | undefined, m: MemorySection | undefined, sc: ScaleSection | undefined, synchronous: string): string {
  const out: string[] = [];
  const summary: string[][] = [];
  if (t) {
    out.push('Throughput (closed loop; notifications/s counted on 202, frames counted at the devices)');
    out.push(
      table(
        ['server', 'publish', 'conns', 'notifications/s', 'requests/s', 'delivered/s', 'all delivered', 'ack p50 ms', 'ack p99 ms', ...cpuHeadings],
        t.runs.map((r) => [
          names[r.target] + (r.profiled ? ' (profiled)' : ''),
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
    for (const r of t.runs.filter((run) => run.target === 'herald')) {
      summary.push([`throughput, ${r.mode} publish`, `≥ ${thousands(targets.throughput)}/s`, `${thousands(r.notificationsPerSecond)}/s`, verdict(r.notificationsPerSecond >= targets.throughput && r.allDelivered)]);
    }
  }
  if (l) {
    out.push('\nLatency (open loop; ms)');
    out.push(
      table(
        ['server', 'publishes/s', 'measured', 'p50', 'p95', 'p99', 'p99.9', 'max', 'p99 from schedule', 'ack p99', 'sender lag p99', 'lost', ...cpuHeadings],
        l.runs.map((r) => [
          names[r.target] + (r.profiled ? ' (profiled)' : ''),
          `${thousands(r.rate)} (${r.rateFrom})`,
          thousands(r.measured),
          ms(r.delivery.p50),
          ms(r.delivery.p95),
          ms(r.delivery.p99),
          ms(r.delivery.p999),
          ms(r.delivery.max),
          ms(r.deliveryFromSchedule.p99),
          ms(r.ack.p99),
          ms(r.senderLag.p99),
          String(r.lost),
          ...cpuCells(r.cpu),
        ]),
      ),
    );
    for (const r of l.runs.filter((run) => run.target === 'herald')) {
      summary.push([`latency p99 at ${thousands(r.rate)}/s (${r.rateFrom})`, `≤ ${targets.latencyP99Ms} ms`, `${ms(r.delivery.p99)} ms (p50 ${ms(r.delivery.p50)}, p95 ${ms(r.delivery.p95)})`, verdict(r.delivery.p99 <= targets.latencyP99Ms && r.lost === 0)]);
    }
  }
  if (m) {
    out.push('\nMemory (idle authenticated connections, server VmRSS after GC)');
    out.push(
      table(
        ['server', 'connections', 'synced', 'server count', 'handshakes/s', 'RSS before', 'RSS after', 'RSS per connection', 'heap per connection'],
        m.runs.map((r) => [
          names[r.target],
          thousands(r.connections),
          thousands(r.synced),
          r.serverCount === undefined ? '-' : thousands(r.serverCount),
          thousands(r.handshakesPerSecond),
          mib(r.rssBefore),
          mib(r.rssAfter),
          `${kib(r.rssPerConnection)} (${thousands(r.rssPerConnection)} B)`,
          kib(r.heapPerConnection),
        ]),
      ),
    );
    const herald = m.runs.find((r) => r.target === 'herald');
    if (herald) summary.push([`RSS per idle connection at ${thousands(herald.connections)}`, `≤ ${thousands(targets.bytesPerConnection)} B`, `${thousands(herald.rssPerConnection)} B`, verdict(herald.rssPerConnection <= targets.bytesPerConnection && herald.failed === 0)]);
  }
  if (sc) {
    const scaled = reportScale(sc);
    out.push(`${out.length > 0 ? '\n' : ''}${scaled.text}`);
    summary.push(...scaled.summary);
  }
  if (summary.length === 0) return out.join('\n') + '\n';
  out.push(synchronous === 'full' ? '\nTargets' : `\nTargets (NOT APPLICABLE: this run used synchronous=${synchronous}, the targets are for synchronous=full)`);
  out.push(table(['target', 'goal', 'measured', 'verdict'], summary));
  return out.join('\n') + '\n';
}

function writeCharts(t: ThroughputSection | undefined, latencySamples: LatencyResult[] | undefined, m: MemorySection | undefined): string[] {
  const written: string[] = [];
  const write = (name: string, content: string) => {
    writeFileSync(join(docs, name), content);
    written.push(`docs/${name}`);
  };
  mkdirSync(docs, { recursive: true });
  if (t) {
    const bars: Bar[] = t.runs.map((r) => ({
      label: `${names[r.target]}, ${r.mode === 'batch' ? `batch of ${r.perRequest}` : 'single publish'}`,
      value: r.notificationsPerSecond,
      text: `${thousands(r.notificationsPerSecond)}/s`,
      color: r.target === 'herald' ? 0 : 2,
    }));
    write('bench-throughput.svg', barChart('Targeted durable notifications per second (2 cores, loopback)', 'notifications/s', bars, { value: targets.throughput, label: `target ${thousands(targets.throughput)}/s` }));
  }
  if (latencySamples && latencySamples.length > 0) {
    const series = latencySamples.map((r) => ({ name: `${names[r.target]} at ${thousands(r.rate)}/s`, values: r.samples.delivery }));
    write('bench-latency.svg', latencyChart('Publish → deliver latency, from the request write (open loop)', series, targets.latencyP99Ms));
  }
  if (m) {
    const bars: Bar[] = m.runs.map((r) => ({
      label: `${names[r.target]}, ${thousands(r.connections)} connections`,
      value: r.rssPerConnection / 1000,
      text: `${(r.rssPerConnection / 1000).toFixed(1)} KB`,
      color: r.target === 'herald' ? 0 : 2,
    }));
    write('bench-memory.svg', barChart('Server RSS per idle authenticated connection', 'KB per connection', bars, { value: targets.bytesPerConnection / 1000, label: 'target 10 KB' }));
  }
  return written;
}

/** What a results file holds, as far as the generated docs need it. */
interface SavedResults {
  generatedAt: string;
  command: string;
  machine: ReturnType<typeof machine>;
  code: ReturnType<typeof codeVersion>;
  peers: PeersSection;
}

const generatedStart = '<!-- side by side: generated by `npm run bench` from bench/results/latest.json; edits here are overwritten -->';
const generatedEnd = '<!-- end of the generated side-by-side section -->';

/** Redraws the side-by-side charts and the generated section of docs/benchmarks.md from `results`. */
function writePeersDocs(results: SavedResults): string[] {
  const written: string[] = [];
  for (const [name, svgText] of peersCharts(results.peers)) {
    writeFileSync(join(docs, name), svgText);
    written.push(`docs/${name}`);
  }
  // One line per run that measured some of the scenarios shown.
  const runs = new Map<string, string[]>();
  for (const [scenario, measured] of Object.entries(results.peers.measured ?? measuredBefore(results))) {
    const line = `measured ${measured.at.slice(0, 16).replace('T', ' ')} UTC on ${measured.machine}, ${measured.code}, by \`${measured.command}\``;
    runs.set(line, [...(runs.get(line) ?? []), `\`${scenario}\``]);
  }
  const section = [
    generatedStart,
    '',
    ...[...runs].map(([line, names]) => `- ${names.join(', ')}: ${line}.`),
    '',
    ...peersCharts(results.peers).map(([name]) => `![${name.replace(/^bench-|\.svg$/g, '')}](${name})`),
    '',
    peersMarkdown(results.peers).trimEnd(),
    '',
    generatedEnd,
  ].join('\n');
  const file = join(docs, 'benchmarks.md');
  const doc = readFileSync(file, 'utf8');
  const start = doc.indexOf(generatedStart);
  const end = doc.indexOf(generatedEnd);
  if (start < 0 || end < start) throw new Error('docs/benchmarks.md has no generated side-by-side section to replace');
  writeFileSync(file, doc.slice(0, start) + section + doc.slice(end + generatedEnd.length));
  written.push('docs/benchmarks.md');
  return written;
}

function describeMachine(m: ReturnType<typeof machine>): string {
  return `${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, Linux ${m.kernel}, Node ${m.node}`;
}

function describeCode(code: ReturnType<typeof codeVersion>): string {
  return code === undefined ? 'unknown commit' : `commit \`${code.commit.slice(0, 7)}\`${code.uncommittedChanges ? ' with uncommitted changes' : ''}`;
}

/** This run's stamp for each side-by-side scenario it ran. */
function stamp(pe: PeersSection, chosen: Set<PeerScenario>, command: string): Partial<Record<PeerScenario, Measured>> {
  const measured: Measured = { at: pe.at, machine: describeMachine(machine()), code: describeCode(codeVersion()), command };
  return Object.fromEntries([...chosen].map((scenario) => [scenario, measured]));
}

/** The stamps of a results file's side-by-side scenarios; a file from before stamps were kept has one run's. */
function measuredBefore(previous: Partial<SavedResults>): Partial<Record<PeerScenario, Measured>> {
  const peers = previous.peers;
  if (peers === undefined) return {};
  if (peers.measured !== undefined) return peers.measured;
  if (previous.machine === undefined || previous.command === undefined) return {};
  const measured: Measured = { at: peers.at, machine: describeMachine(previous.machine), code: describeCode(previous.code), command: previous.command };
  const present = (['connections', 'broadcast', 'compression', 'targeted', 'storm'] as const).filter((scenario) => peers[scenario] !== undefined);
  return Object.fromEntries(present.map((scenario) => [scenario, measured]));
}

/** Keeps the sections of scenarios not run this time, so one scenario's rerun does not erase the others. */
function readPrevious(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      help: { type: 'boolean', short: 'h' },
      rate: { type: 'string' },
      connections: { type: 'string' },
      history: { type: 'string' },
      'no-baseline': { type: 'boolean' },
      profile: { type: 'boolean' },
      quick: { type: 'boolean' },
      'no-charts': { type: 'boolean' },
      report: { type: 'boolean' },
      out: { type: 'string' },
      synchronous: { type: 'string' },
      'single-connections': { type: 'string' },
      'batch-connections': { type: 'string' },
      'scale-connections': { type: 'string' },
      'scale-workers': { type: 'string' },
      'scale-publish-workers': { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  if (values.report) {
    const latest = readPrevious(join(resultsDir, 'latest.json')) as Partial<SavedResults>;
    if (latest.peers === undefined) throw new UsageError('--report: bench/results/latest.json has no side-by-side results yet');
    progress('bench', `wrote ${writePeersDocs(latest as SavedResults).join(', ')}`);
    return;
  }
  const unknown = positionals.filter((p) => !(scenarios as readonly string[]).includes(p));
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')}; choose from ${scenarios.join(', ')}`);
  const chosen = new Set<Scenario>(positionals.length === 0 ? defaultScenarios : (positionals as Scenario[]));
  const synchronous = values.synchronous ?? 'full';
  if (synchronous !== 'full' && synchronous !== 'normal') throw new UsageError(`--synchronous: full or normal, not ${synchronous}`);
  const settings: Settings = {
    ...(values.quick ? quick : full),
    config: synchronous === 'full' ? {} : { sqliteSynchronous: synchronous },
    publishConnections: {
      single: values['single-connections'] === undefined ? defaultPublishConnections.single : positiveInt('--single-connections', values['single-connections']),
      batch: values['batch-connections'] === undefined ? defaultPublishConnections.batch : positiveInt('--batch-connections', values['batch-connections']),
    },
  };
  const baseline = !values['no-baseline'];
  const rate = values.rate === undefined ? undefined : positiveInt('--rate', values.rate);
  if (values.out !== undefined && !/^[\w.-]+$/.test(values.out)) throw new UsageError('--out: a plain file name without .json, such as rate-2500');
  const connections = values.connections === undefined ? settings.connections : positiveInt('--connections', values.connections);
  if (connections > 20_000) throw new UsageError('--connections: at most 20,000 (the server runs in one process with a 20,000 open-file limit)');

  const started = performance.now();
  const t = chosen.has('throughput') ? await throughput(settings, baseline, values.profile === true) : undefined;
  let l: LatencySection | undefined;
  let samples: LatencyResult[] | undefined;
  if (chosen.has('latency')) {
    ({ section: l, samples } = await latency(settings, baseline, values.profile === true, latencyRates(rate, t)));
  }
  const m = chosen.has('memory') ? await memory(settings, baseline, connections) : undefined;
  const inbox = chosen.has('inbox') ? await runInbox(values.quick ? quickInbox : fullInbox, (line) => progress('inbox', line)) : undefined;
  const loopback = chosen.has('loopback') ? await runLoopback(values.quick ? quickLoopback : fullLoopback, (line) => progress('loopback', line)) : undefined;
  const chosenPeers = new Set(peerScenarios.filter((scenario) => chosen.has(scenario)));
  const sideBySide = { ...(values.quick ? quickSideBySide : fullSideBySide), history: values.history === undefined ? 0 : positiveInt('--history', values.history) };
  const pe = chosenPeers.size > 0 ? await runSideBySide(chosenPeers, sideBySide, (scenario) => quiet(scenario, settings)) : undefined;
  const sc = chosen.has('scale') ? await scale(values.quick === true, rate, {
        connections: values['scale-connections'],
        workers: values['scale-workers'],
        publishWorkers: values['scale-publish-workers'],
      }) : undefined;

  // Smoke tests and profiled runs are not the figures docs/benchmarks.md quotes, so they go to files of their own.
  const resultsName = values.out !== undefined ? `${values.out}.json` : values.quick ? 'quick.json' : values.profile ? 'profile.json' : 'latest.json';
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const previous = readPrevious(join(resultsDir, resultsName)) as Partial<SavedResults>;
  const results = {
    ...previous,
    generatedAt: new Date().toISOString(),
    command,
    quick: values.quick === true,
    sqliteSynchronous: synchronous,
    machine: machine(),
    code: codeVersion(),
    targets: { ...targets, scale: scaleTargets },
    ...(t ? { throughput: t } : {}),
    ...(l ? { latency: l } : {}),
    ...(m ? { memory: m } : {}),
    ...(inbox ? { inbox } : {}),
    ...(loopback ? { loopback } : {}),
    ...(sc ? { scale: sc } : {}),
    // A side-by-side scenario run alone replaces only its own part.
    ...(pe ? { peers: { ...previous.peers, ...pe, measured: { ...measuredBefore(previous), ...stamp(pe, chosenPeers, command) } } } : {}),
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, resultsName), JSON.stringify(results, null, 2) + '\n');
  const charts = values['no-charts'] || resultsName !== 'latest.json' ? [] : [...writeCharts(t, samples, m), ...(pe ? writePeersDocs({ ...results, peers: results.peers ?? pe }) : [])];
  const mach = results.machine;
  const code = results.code === undefined ? '' : `, commit ${results.code.commit.slice(0, 10)}${results.code.uncommittedChanges ? ' + uncommitted changes' : ''}`;
  process.stdout.write(`\nHerald benchmarks: ${mach.cpus} × ${mach.cpuModel}, ${mach.memoryGiB} GiB, Node ${mach.node}${code}; ${command}\n\n`);
  process.stdout.write(report(t, l, m, sc, synchronous));
  if (inbox) process.stdout.write(`\nA broadcast in the SQLite store alone\n\n${inboxMarkdown(inbox)}`);
  if (loopback) process.stdout.write(`\nOne small write on loopback TCP, no server\n\n${loopbackMarkdown(loopback)}`);
  if (pe) process.stdout.write(`\nSide by side\n\n${peersMarkdown(pe)}`);
  progress('bench', `done in ${((performance.now() - started) / 1000).toFixed(0)} s; wrote bench/results/${resultsName}${charts.length > 0 ? `, ${charts.join(', ')}` : ''}`);
}

class UsageError extends Error {}

/** The commit the figures belong to, and whether the server or protocol had uncommitted changes. */
function codeVersion(): { commit: string; uncommittedChanges: boolean } | undefined {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { commit: git('rev-parse', 'HEAD'), uncommittedChanges: git('status', '--porcelain', '--', 'server', 'protocol') !== '' };
  } catch {
    return undefined;
  }
}

function positiveInt(flag: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} wants a positive integer, got ${text}`);
  return value;
}

/**
 * Nothing here may run forever: the whole bench stops after this long, and its children with it (they exit when the
 * IPC channel closes; the scale scenario's nodes are killed by pid on exit). The default run, side-by-side scenarios
 * included, takes about 45 minutes here, and scale, which connects 100,000 devices, 20–25.
 */
const runLimitMs = 90 * 60 * 1000;
setTimeout(() => {
  progress('bench', `still running after ${runLimitMs / 60_000} minutes; giving up`);
  process.exit(1);
}, runLimitMs).unref();

main().then(
  () => process.exit(0),
  (error: unknown) => {
    if (error instanceof UsageError) process.stderr.write(`${error.message}\n\n${usage}`);
    else process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
