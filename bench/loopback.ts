/**
 * The `loopback` scenario: what this machine charges for the one thing every server in the side-by-side runs does
 * for every delivery, a small write to a loopback TCP socket, and what the receiving side pays to read it. No
 * server, no WebSocket framing, no JSON: `node:net` sockets and one 200-byte buffer, so the figures are a floor
 * under any server's CPU per delivery on this machine, Herald's and the peers' alike, and under the load generator's.
 *
 * The runner's process writes; a reader child (bench/loopback-reader.ts) holds the sockets, from 127.0.0.2–5, and
 * reads. Each round writes the buffer once to every socket and yields to the event loop, as a broadcast does. CPU
 * comes from each process's own accounting (`process.cpuUsage()`), and from /proc/stat for the kernel work that
 * neither process is charged with (softirq).
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { Child } from './child.js';
import { readMachineCpu } from './proc.js';
import { showSpread, spread, thousands, waitFor, type Spread } from './stats.js';

export interface LoopbackSettings {
  sockets: number;
  rounds: number;
  bytes: number;
  runs: number;
}

export const fullLoopback: LoopbackSettings = { sockets: 5_000, rounds: 20, bytes: 200, runs: 3 };
export const quickLoopback: LoopbackSettings = { sockets: 1_000, rounds: 10, bytes: 200, runs: 1 };

export interface LoopbackRun {
  writerUsPerWrite: number;
  readerUsPerWrite: number;
  softirqUsPerWrite: number;
  writesPerSecond: number;
}

export interface LoopbackResult {
  settings: LoopbackSettings;
  runs: LoopbackRun[];
  writerUs: Spread;
  readerUs: Spread;
  softirqUs: Spread;
  /** Writer, reader and softirq together: the machine's CPU per delivery, before any server does anything. */
  totalUs: Spread;
}

/** How long the reader may take to connect, and to read everything, ms. */
const readerTimeoutMs = 60_000;

async function loopbackRun(s: LoopbackSettings): Promise<LoopbackRun> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    accepted.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const reader = Child.start('loopback reader', new URL('./loopback-reader.ts', import.meta.url), [String(port), String(s.sockets), String(s.sockets * s.rounds * s.bytes)]);
  try {
    await reader.next('opened', readerTimeoutMs);
    if (!(await waitFor(() => accepted.length === s.sockets, readerTimeoutMs))) throw new Error(`accepted ${accepted.length} of ${s.sockets} sockets`);
    const read = reader.next('read', readerTimeoutMs);
    reader.send({ type: 'start' });
    const buffer = Buffer.alloc(s.bytes, 'x');
    const machine = readMachineCpu();
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let round = 0; round < s.rounds; round++) {
      for (const socket of accepted) socket.write(buffer);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const written = process.cpuUsage(cpu);
    const { cpuUs } = await read;
    const elapsedMs = performance.now() - started;
    const writes = s.sockets * s.rounds;
    return {
      writerUsPerWrite: (written.user + written.system) / writes,
      readerUsPerWrite: cpuUs / writes,
      softirqUsPerWrite: ((readMachineCpu().softirqMs - machine.softirqMs) * 1000) / writes,
      writesPerSecond: writes / (elapsedMs / 1000),
    };
  } finally {
    await reader.stop();
    for (const socket of accepted) socket.destroy();
    server.close();
  }
}

export async function runLoopback(settings: LoopbackSettings, log: (line: string) => void): Promise<LoopbackResult> {
  const runs: LoopbackRun[] = [];
  for (let run = 1; run <= settings.runs; run++) {
    log(`${thousands(settings.sockets)} sockets × ${settings.rounds} writes of ${settings.bytes} B: run ${run} of ${settings.runs}`);
    runs.push(await loopbackRun(settings));
  }
  return {
    settings,
    runs,
    writerUs: spread(runs.map((r) => r.writerUsPerWrite)),
    readerUs: spread(runs.map((r) => r.readerUsPerWrite)),
    softirqUs: spread(runs.map((r) => r.softirqUsPerWrite)),
    totalUs: spread(runs.map((r) => r.writerUsPerWrite + r.readerUsPerWrite + r.softirqUsPerWrite)),
  };
}

export function loopbackMarkdown(r: LoopbackResult): string {
  const { sockets, rounds, bytes } = r.settings;
  const rate = spread(r.runs.map((run) => run.writesPerSecond));
  return [
    '| sockets × writes | bytes | runs | writer CPU per write, µs | reader CPU per write, µs | softirq per write, µs | together, µs | writes/s |',
    '|---|---|---|---|---|---|---|---|',
    `| ${thousands(sockets)} × ${rounds} | ${bytes} | ${r.runs.length} | ${showSpread(r.writerUs, 1)} | ${showSpread(r.readerUs, 1)} | ${showSpread(r.softirqUs, 1)} | ${showSpread(r.totalUs, 1)} | ${showSpread(rate)} |`,
    '',
  ].join('\n');
}
