/**
 * The `loopback` scenario: what this machine charges for the one thing every server in the side-by-side runs does
 * for every delivery, a small write to a loopback TCP socket, and what the receiving side pays to read it. No
 * server, no WebSocket framing, no JSON: `node:net` sockets and one 200-byte buffer, so the figures are a floor
 * under any server's CPU per delivery on this machine, Herald's and the peers' alike, and under the load generator's.
 *
 * The runner's process writes; a reader child (this file with `reader`) holds the sockets, from 127.0.0.2–5, and
 * reads. Each round writes the buffer once to every socket and yields to the event loop, as a broadcast does. CPU
 * comes from each process's own accounting (`process.cpuUsage()`), and from /proc/stat for the kernel work that
 * neither process is charged with (softirq).
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
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

/** Reader → runner: every socket is connected; then, once all `expected` bytes arrived, the CPU they took. */
type ReaderMessage = { type: 'open' } | { type: 'read'; cpuUs: number };

const readTimeoutMs = 60_000;
const connectsInFlight = 50;

/** The reader child: `node --import tsx bench/loopback.ts reader <port> <sockets> <expected bytes>`. */
function reader(port: number, sockets: number, expected: number): void {
  const tell = (message: ReaderMessage) => process.send?.(message);
  let open = 0;
  let received = 0;
  let cpu: NodeJS.CpuUsage | undefined;
  process.on('message', () => (cpu = process.cpuUsage()));
  process.on('disconnect', () => process.exit(0));
  setTimeout(() => process.exit(1), readTimeoutMs * 2).unref();
  let started = 0;
  // A few connects at a time, so that none overflows the listener's accept queue.
  const next = () => {
    if (started === sockets) return;
    const i = started++;
    const socket = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + (i % 4)}` }, () => {
      if (++open === sockets) tell({ type: 'open' });
      next();
    });
    socket.on('data', (chunk) => {
      received += chunk.length;
      if (received !== expected) return;
      const used = process.cpuUsage(cpu);
      tell({ type: 'read', cpuUs: used.user + used.system });
    });
  };
  for (let i = 0; i < connectsInFlight; i++) next();
}

async function loopbackRun(s: LoopbackSettings): Promise<LoopbackRun> {
  const accepted: Socket[] = [];
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    accepted.push(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const child = fork(fileURLToPath(import.meta.url), ['reader', String(port), String(s.sockets), String(s.sockets * s.rounds * s.bytes)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    const next = (type: ReaderMessage['type']) =>
      new Promise<ReaderMessage>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`loopback reader: no ${type} within ${readTimeoutMs} ms`)), readTimeoutMs);
        child.once('exit', (code) => reject(new Error(`loopback reader exited with ${String(code)}`)));
        child.on('message', (m: ReaderMessage) => {
          if (m.type !== type) return;
          clearTimeout(timer);
          resolve(m);
        });
      });
    await next('open');
    if (!(await waitFor(() => accepted.length === s.sockets, readTimeoutMs))) throw new Error(`accepted ${accepted.length} of ${s.sockets} sockets`);
    const read = next('read');
    child.send('start');
    const buffer = Buffer.alloc(s.bytes, 'x');
    const machine = readMachineCpu();
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let round = 0; round < s.rounds; round++) {
      for (const socket of accepted) socket.write(buffer);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const written = process.cpuUsage(cpu);
    const reply = await read;
    const elapsedMs = performance.now() - started;
    const writes = s.sockets * s.rounds;
    return {
      writerUsPerWrite: (written.user + written.system) / writes,
      readerUsPerWrite: (reply.type === 'read' ? reply.cpuUs : Number.NaN) / writes,
      softirqUsPerWrite: ((readMachineCpu().softirqMs - machine.softirqMs) * 1000) / writes,
      writesPerSecond: writes / (elapsedMs / 1000),
    };
  } finally {
    child.kill();
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

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'reader') reader(Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]));
