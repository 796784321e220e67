/**
 * Herald next to its peers (bench/peers/: a bare `ws` server and Socket.IO), the identical workload from the
 * same load generator: idle connections, broadcast fan-out, and broadcast with permessage-deflate. Every
 * figure is the median of several runs with their min–max, and Herald's is also given as a ratio to each
 * peer's, because this shared 2-core machine moves absolute figures by tens of percent between runs.
 */
import { barChart, type Bar } from './chart.js';
import { runBroadcast, type BroadcastResult, type BroadcastRun } from './broadcast.js';
import { runMemory, type MemoryResult } from './memory.js';
import { fullTargeted, quickTargeted, runTargeted, targetedCharts, targetedMarkdown, type TargetedResult, type TargetedSettings } from './targeted.js';
import { fullStorm, quickStorm, runStorm, stormTargets, type StormResult, type StormSettings } from './storm.js';
import { peerNames, peerTargets, type PeerTarget } from './servers.js';
import { progress, showSpread, spread, thousands, type Spread } from './stats.js';


/** The side-by-side targets of the benchmark issue. */
export const peerTargetsGoals = {
  /** Herald's server CPU per broadcast delivery is at most 1/1.2 of each peer's. */
  cpuPerDeliveryRatio: 1.2,
  /** Server RSS per idle connection, bytes. */
  bytesPerConnection: 10_000,
};

export interface SideBySideSettings {
  /** Idle connections in `connections`. */
  connections: number;
  /** Idle window after connecting, in which keep-alive CPU is measured, ms. */
  idleMs: number;
  /** Client counts of `broadcast`. */
  broadcastClients: number[];
  /** Client count of `compression`. */
  compressionClients: number;
  /** Notifications per `compression` run: with deflate on, a delivery costs ten times as much. */
  compressionMessages: number;
  /** Notifications per broadcast run, at least. */
  messages: number;
  /**
   * Deliveries per broadcast run, at least: runs with fewer clients send more notifications, so that every run's
   * CPU time is long against /proc's 10 ms accounting tick.
   */
  deliveries: number;
  /** Runs per server and setting; the report takes the median. */
  runs: number;
  /** Notifications every `broadcast` client gets before the measured ones (`--history`): Herald's inboxes in use. */
  history: number;
  /** The `targeted` scenario. */
  targeted: TargetedSettings;
  /** The `storm` scenario (Herald alone: the peers have nothing to resume). */
  storm: StormSettings;
}

export const fullSideBySide: SideBySideSettings = { connections: 15_000, idleMs: 30_000, broadcastClients: [1_000, 5_000, 15_000], compressionClients: 5_000, compressionMessages: 20, messages: 50, deliveries: 200_000, runs: 3, history: 0, targeted: fullTargeted, storm: fullStorm };
export const quickSideBySide: SideBySideSettings = { connections: 2_000, idleMs: 5_000, broadcastClients: [1_000], compressionClients: 1_000, compressionMessages: 10, messages: 10, deliveries: 20_000, runs: 3, history: 0, targeted: quickTargeted, storm: quickStorm };

/** When, where, on what code and by which command a scenario's figures were measured. */
export interface Measured {
  at: string;
  machine: string;
  code: string;
  command: string;
}

export interface PeersSection {
  at: string;
  settings: SideBySideSettings;
  /** By scenario: a scenario rerun alone replaces its own figures, and the others keep theirs and their stamp. */
  measured?: Partial<Record<PeerScenario, Measured>>;
  connections?: MemoryResult[];
  broadcast?: BroadcastResult[];
  compression?: BroadcastResult[];
  targeted?: TargetedResult[];
  storm?: StormResult[];
}

export type PeerScenario = 'connections' | 'broadcast' | 'compression' | 'targeted' | 'storm';

/** Runs the chosen scenarios for every server; `quiet` waits for the machine to settle before each step. */
export async function runSideBySide(chosen: Set<PeerScenario>, settings: SideBySideSettings, quiet: (scenario: string) => Promise<unknown>): Promise<PeersSection> {
  const section: PeersSection = { at: new Date().toISOString(), settings };
  if (chosen.has('connections')) {
    section.connections = [];
    for (let run = 0; run < settings.runs; run++) {
      for (const target of peerTargets) {
        await quiet('connections');
        section.connections.push(await runMemory({ target, connections: settings.connections, perHolder: 3_750, parallel: 50, idleMs: settings.idleMs }));
      }
    }
  }
  const broadcasts = async (clients: number, messages: number, compression: boolean, into: BroadcastResult[]) => {
    for (const target of peerTargets) {
      await quiet(compression ? 'compression' : 'broadcast');
      const history = compression ? 0 : settings.history;
      into.push(await runBroadcast({ target, clients, messages, runs: settings.runs, inflight: 4, compression, perHolder: 5_000, parallel: 50, history }));
    }
  };
  if (chosen.has('broadcast')) {
    section.broadcast = [];
    for (const clients of settings.broadcastClients) await broadcasts(clients, Math.max(settings.messages, Math.ceil(settings.deliveries / clients)), false, section.broadcast);
  }
  if (chosen.has('compression')) {
    section.compression = [];
    for (const compression of [false, true]) await broadcasts(settings.compressionClients, settings.compressionMessages, compression, section.compression);
  }
  if (chosen.has('targeted')) section.targeted = await runTargeted(settings.targeted, quiet);
  if (chosen.has('storm')) {
    section.storm = [];
    for (let run = 0; run < settings.runs; run++) {
      await quiet('storm');
      section.storm.push(await runStorm(settings.storm, (line) => progress('storm', line)));
    }
  }
  return section;
}

/** `a / b` for figures where less is better, as "1.35× less" or "1.2× more". */
function ratio(herald: number, peer: number): string {
  if (!(herald > 0) || !(peer > 0)) return '-';
  return herald <= peer ? `${(peer / herald).toFixed(2)}× less` : `${(herald / peer).toFixed(2)}× more`;
}

function table(headers: string[], rows: string[][]): string {
  return [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const of = (runs: BroadcastRun[], pick: (r: BroadcastRun) => number) => spread(runs.map(pick));

interface ConnectionsRow {
  target: PeerTarget;
  rss: Spread;
  heap: Spread;
  idleCpu: Spread;
  keepAlivesPerSecond: Spread;
  handshakes: Spread;
}

function connectionRows(results: MemoryResult[]): ConnectionsRow[] {
  return peerTargets.flatMap((target) => {
    const runs = results.filter((r) => r.target === target);
    if (runs.length === 0) return [];
    // Keep-alive CPU per 10,000 idle connections, ms per second of server CPU over the empty server's.
    // The server's whole CPU with every connection idle. Subtracting the empty server's is no better: right after
    // the forced GC that precedes it, the empty server measured busier than the idle one (see emptyCpuMsPerSecond).
    const idleCpu = spread(runs.map((r) => r.idle?.idleCpuMsPerSecond ?? Number.NaN));
    const keepAlivesPerSecond = spread(runs.map((r) => (r.idle ? (r.idle.keepAlives * 1000) / r.idle.windowMs : Number.NaN)));
    return [{ target, rss: spread(runs.map((r) => r.rssPerConnection)), heap: spread(runs.map((r) => r.heapPerConnection)), idleCpu, keepAlivesPerSecond, handshakes: spread(runs.map((r) => r.handshakesPerSecond)) }];
  });
}

function broadcastGroups(results: BroadcastResult[]): { clients: number; compression: boolean; rows: BroadcastResult[] }[] {
  const keys = [...new Set(results.map((r) => `${r.clients}:${r.compression}`))];
  return keys.map((key) => {
    const rows = results.filter((r) => `${r.clients}:${r.compression}` === key);
    return { clients: rows[0]?.clients ?? 0, compression: rows[0]?.compression ?? false, rows };
  });
}

const cpuOf = (r: BroadcastResult | undefined) => (r ? of(r.runs, (run) => run.serverCpuUsPerDelivery).median : Number.NaN);

/** Markdown for docs/benchmarks.md: the tables, each figure a median with min–max, and the targets. */
export function peersMarkdown(section: PeersSection): string {
  const out: string[] = [];
  const goals: string[][] = [];
  const settings = section.settings;
  if (section.connections) {
    const rows = connectionRows(section.connections);
    out.push(`### Idle connections (${thousands(settings.connections)} per server, ${settings.runs} runs each)`);
    out.push('');
    out.push(
      table(
        ['server', 'RSS per connection', 'V8 heap per connection', 'server CPU, all idle', 'keep-alive frames/s the clients got', 'handshakes/s'],
        rows.map((r) => [peerNames[r.target], showSpread(r.rss, 0, ' B'), showSpread(r.heap, 0, ' B'), showSpread(r.idleCpu, 1, ' ms/s'), showSpread(r.keepAlivesPerSecond), showSpread(r.handshakes)]),
      ),
    );
    const herald = rows.find((r) => r.target === 'herald');
    if (herald) goals.push(['`connections`: RSS per idle connection', `≤ ${thousands(peerTargetsGoals.bytesPerConnection)} B`, showSpread(herald.rss, 0, ' B'), herald.rss.median <= peerTargetsGoals.bytesPerConnection ? 'met' : 'missed']);
  }
  for (const [name, results] of [['broadcast', section.broadcast], ['compression', section.compression]] as const) {
    if (!results) continue;
    for (const group of broadcastGroups(results)) {
      out.push('');
      const messages = group.rows[0]?.messages ?? 0;
      const history = name === 'broadcast' && settings.history > 0 ? `, after ${thousands(settings.history)} to each` : '';
      out.push(`### ${name === 'broadcast' ? 'Broadcast' : `Broadcast with permessage-deflate ${group.compression ? 'on' : 'off'}`}: ${thousands(group.clients)} clients × ${messages} notifications of 200 B${history} (${settings.runs} runs each)`);
      out.push('');
      const herald = cpuOf(group.rows.find((r) => r.target === 'herald'));
      out.push(
        table(
          ['server', 'server CPU per delivery', 'Herald uses', 'of it, main thread', 'deliveries/s', 'last recipient p50', 'last recipient p99', 'event-loop lag p99', 'bytes read per delivery', 'RSS per connection', 'lost'],
          group.rows.map((r) => [
            peerNames[r.target as PeerTarget],
            showSpread(of(r.runs, (run) => run.serverCpuUsPerDelivery), 2, ' µs'),
            r.target === 'herald' ? '-' : ratio(herald, cpuOf(r)),
            showSpread(of(r.runs, (run) => run.mainThreadCpuUsPerDelivery), 2, ' µs'),
            showSpread(of(r.runs, (run) => run.deliveriesPerSecond)),
            showSpread(of(r.runs, (run) => run.timeToLast.p50), 0, ' ms'),
            showSpread(of(r.runs, (run) => run.timeToLast.p99), 0, ' ms'),
            showSpread(of(r.runs, (run) => run.lagP99Ms), 0, ' ms'),
            showSpread(of(r.runs, (run) => run.bytesPerDelivery), 0, ' B'),
            `${thousands(r.rssPerConnection)} B`,
            thousands(r.runs.reduce((sum, run) => sum + run.expected - run.deliveries, 0)),
          ]),
        ),
      );
      if (name !== 'broadcast') continue;
      for (const peer of ['ws', 'socketio'] as const) {
        const peerCpu = cpuOf(group.rows.find((r) => r.target === peer));
        goals.push([
          `\`broadcast\` ${thousands(group.clients)}: CPU per delivery, ${peerNames[peer]} ÷ Herald`,
          `≥ ${peerTargetsGoals.cpuPerDeliveryRatio}`,
          Number.isFinite(peerCpu / herald) ? (peerCpu / herald).toFixed(2) : '-',
          peerCpu / herald >= peerTargetsGoals.cpuPerDeliveryRatio ? 'met' : 'missed',
        ]);
      }
    }
  }
  if (section.targeted) {
    out.push('');
    out.push(targetedMarkdown(section.targeted).trimEnd());
  }
  if (section.storm && section.storm.length > 0) {
    const runs = section.storm;
    const pick = (f: (r: StormResult) => number) => spread(runs.map(f));
    const resume = pick((r) => r.resume.max);
    const lagP99 = pick((r) => r.lag.p99);
    const lost = runs.reduce((sum, r) => sum + r.lost, 0);
    const duplicates = runs.reduce((sum, r) => sum + r.duplicates, 0);
    out.push('');
    out.push(`### Reconnect storm: ${thousands(runs[0]?.devices ?? 0)} devices, Herald restarted (${runs.length} runs)`);
    out.push('');
    out.push(
      table(
        ['devices', 'SIGTERM → all resumed', 'resumed p50', 'SIGTERM → listening again', 'lost', 'duplicates', 'event-loop lag p99', 'lag max', 'refused (503)', 'server CPU per device', 'generator CPU per device'],
        [[
          thousands(runs[0]?.devices ?? 0),
          showSpread(resume, 0, ' ms'),
          showSpread(pick((r) => r.resume.p50), 0, ' ms'),
          showSpread(pick((r) => r.downMs), 0, ' ms'),
          `${thousands(lost)} of ${thousands(runs.reduce((sum, r) => sum + r.published.before + r.published.after, 0))}`,
          thousands(duplicates),
          showSpread(lagP99, 0, ' ms'),
          showSpread(pick((r) => r.lag.max), 0, ' ms'),
          showSpread(pick((r) => r.refused.overloaded)),
          showSpread(pick((r) => r.cpu.serverMsPerDevice), 2, ' ms'),
          showSpread(pick((r) => r.cpu.holdersMsPerDevice), 2, ' ms'),
        ]],
      ),
    );
    goals.push(['`storm`: all resumed after the restart', `≤ ${thousands(stormTargets.resumeMs)} ms`, showSpread(resume, 0, ' ms'), resume.median <= stormTargets.resumeMs ? 'met' : 'missed']);
    goals.push(['`storm`: lost and duplicated notifications', '0 and 0', `${thousands(lost)} and ${thousands(duplicates)}`, lost === 0 && duplicates === 0 ? 'met' : 'missed']);
    goals.push(['`storm`: event-loop lag p99', `≤ ${stormTargets.lagP99Ms} ms`, showSpread(lagP99, 0, ' ms'), lagP99.median <= stormTargets.lagP99Ms ? 'met' : 'missed']);
  }
  if (goals.length > 0) {
    out.push('');
    out.push('### Targets');
    out.push('');
    out.push(table(['target', 'goal', 'measured (median)', 'verdict'], goals));
  }
  return out.join('\n') + '\n';
}

/** The side-by-side charts, drawn from the results: `[file name, SVG]`. */
export function peersCharts(section: PeersSection): [string, string][] {
  const charts: [string, string][] = [];
  const color = (target: string) => peerTargets.indexOf(target as PeerTarget);
  if (section.broadcast) {
    const groups = broadcastGroups(section.broadcast);
    const cpu: Bar[] = groups.flatMap((g) =>
      g.rows.map((r) => {
        const s = of(r.runs, (run) => run.serverCpuUsPerDelivery);
        return { label: `${peerNames[r.target as PeerTarget]}, ${thousands(g.clients)} clients`, value: s.median, text: `${s.median.toFixed(2)} µs (${s.min.toFixed(2)}–${s.max.toFixed(2)})`, color: color(r.target) };
      }),
    );
    charts.push(['bench-peers-cpu.svg', barChart('Server CPU per broadcast delivery (median of runs; less is better)', 'µs of server CPU per delivery', cpu, undefined)]);
    const rate: Bar[] = groups.flatMap((g) =>
      g.rows.map((r) => {
        const s = of(r.runs, (run) => run.deliveriesPerSecond);
        return { label: `${peerNames[r.target as PeerTarget]}, ${thousands(g.clients)} clients`, value: s.median, text: `${thousands(s.median)}/s`, color: color(r.target) };
      }),
    );
    charts.push(['bench-peers-deliveries.svg', barChart('Broadcast deliveries per second (median of runs)', 'deliveries/s', rate, undefined)]);
  }
  if (section.connections) {
    const bars: Bar[] = connectionRows(section.connections).map((r) => ({
      label: peerNames[r.target],
      value: r.rss.median / 1000,
      text: `${(r.rss.median / 1000).toFixed(1)} KB (${(r.rss.min / 1000).toFixed(1)}–${(r.rss.max / 1000).toFixed(1)})`,
      color: color(r.target),
    }));
    charts.push(['bench-peers-memory.svg', barChart(`Server RSS per idle connection, ${thousands(section.settings.connections)} connections`, 'KB per connection', bars, { value: peerTargetsGoals.bytesPerConnection / 1000, label: 'target 10 KB' })]);
  }
  if (section.targeted) charts.push(...targetedCharts(section.targeted));
  return charts;
}
