/** What /proc says about processes and the machine: memory, CPU time, and who else is using the CPU. */
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

/** Resident set size of a process (VmRSS), bytes. */
export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** USER_HZ, the unit of /proc's CPU times: 100 on every Linux ABI Node runs on. */
const clockTicksPerSecond = 100;

/** utime + stime of a /proc `stat` file, ms. */
function statCpuMs(path: string): number {
  const stat = readFileSync(path, 'utf8');
  // The fields after the command name, which is in parentheses and may contain spaces; utime and stime are 14th and 15th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
}

/** CPU time a process has used (user + system, all threads), ms. */
export function readCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU time of a process's main thread alone (the event loop of a Node process), ms. */
export function readMainThreadCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

/** CPU time of the whole machine (all cores), ms: busy (neither idle nor waiting on I/O) and, of that, softirq. */
export function readMachineCpu(): { busyMs: number; softirqMs: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
  // user nice system idle iowait irq softirq steal
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((sum, t) => sum + t, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busyMs: ((total - idle) * 1000) / clockTicksPerSecond, softirqMs: ((ticks[6] ?? 0) * 1000) / clockTicksPerSecond };
}

/** How the CPU was shared during a measurement, percent of one core each. */
export interface CpuShare {
  /** The server under test (all its processes). */
  server: number;
  /** The load generator: this process (publishers and devices). */
  client: number;
  /** Kernel softirq time, mostly loopback TCP on both sides, which Linux does not always charge to a process. */
  softirq: number;
  /** Everything else: other jobs on the machine. Above a few percent, the figures are disturbed. */
  other: number;
  /**
   * The busiest server process's main thread, its event loop, percent of one core: near 100 it is what limits the server,
   * however idle the rest of the machine. Absent from results recorded before it was measured.
   */
  eventLoop?: number;
}

/** Table headings for {@link cpuCells}. */
export const cpuHeadings = ['CPU % server/gen/softirq/other', 'event loop %'];

/** A CPU share as table cells: the four shares, then the busiest event loop ('-' where not measured). */
export function cpuCells(c: CpuShare): string[] {
  return [`${c.server}/${c.client}/${c.softirq}/${c.other}`, c.eventLoop === undefined ? '-' : String(c.eventLoop)];
}

/** CPU time of several processes together, ms. */
export function readCpuMsOf(pids: number | readonly number[]): number {
  return (typeof pids === 'number' ? [pids] : pids).reduce((sum, pid) => sum + readCpuMs(pid), 0);
}

/** Starts measuring CPU use; `stop()` returns the shares since. The server may be several processes. */
export function startCpuMeter(serverPids: number | readonly number[]): { stop(): CpuShare } {
  const started = performance.now();
  const pids = typeof serverPids === 'number' ? [serverPids] : serverPids;
  const loops = pids.map(readMainThreadCpuMs);
  const server = readCpuMsOf(serverPids);
  const own = process.cpuUsage();
  const machine = readMachineCpu();
  return {
    stop() {
      const ms = performance.now() - started;
      const serverMs = readCpuMsOf(serverPids) - server;
      const usage = process.cpuUsage(own);
      const clientMs = (usage.user + usage.system) / 1000;
      const now = readMachineCpu();
      const softirqMs = now.softirqMs - machine.softirqMs;
      const otherMs = now.busyMs - machine.busyMs - serverMs - clientMs - softirqMs;
      const percent = (value: number) => Math.max(0, Math.round((value / ms) * 100));
      const eventLoopMs = Math.max(0, ...pids.map((pid, i) => readMainThreadCpuMs(pid) - (loops[i] ?? 0)));
      return { server: percent(serverMs), client: percent(clientMs), softirq: percent(softirqMs), other: percent(otherMs), eventLoop: percent(eventLoopMs) };
    },
  };
}

/**
 * Waits, up to `maxWaitMs`, for a second in which the machine is nearly idle (other people's jobs share this box);
 * returns the busy share of the last second, percent of one core.
 */
export async function awaitQuiet(maxWaitMs: number, onWait: (busy: number) => void): Promise<number> {
  const deadline = performance.now() + maxWaitMs;
  for (;;) {
    const before = readMachineCpu().busyMs;
    const at = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const busy = Math.round(((readMachineCpu().busyMs - before) / (performance.now() - at)) * 100);
    if (busy <= quietPercent || performance.now() > deadline) return busy;
    onWait(busy);
  }
}

/** Busy share below which the machine counts as quiet, percent of one core. */
const quietPercent = 15;

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  kernel: string;
  openFilesLimit: string;
}

export function machine(): Machine {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    openFilesLimit: /^Max open files\s+(\S+)/m.exec(limits)?.[1] ?? 'unknown',
  };
}
