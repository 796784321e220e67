/**
 * `herald-server start --workers N`: the primary process forks N workers (node:cluster) that share one port,
 * each running the whole server on a core of its own. The primary serves no requests. It:
 * - relays live fan-out between workers when no Redis is configured (broker/ipc.ts);
 * - replaces a worker that dies, after a delay that grows while replacements keep dying young;
 * - stops every worker gracefully on SIGINT/SIGTERM, and kills them on a second signal.
 *
 * Connections are spread by the primary (cluster's round-robin, the default on Linux); set
 * `NODE_CLUSTER_SCHED_POLICY=none` to let the kernel pick a worker instead.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Config } from './config.js';
import { createIpcRelay } from './broker/ipc.js';

/** What a worker tells the primary about itself; `heraldWorker` keeps it apart from the broker's messages. */
export type WorkerReport = { heraldWorker: 'listening'; url: string };

export function workerCount(config: Config): number {
  return config.workers === 'auto' ? availableParallelism() : config.workers;
}

/** In a worker: tells the primary where it listens. */
export function reportListening(url: string): void {
  process.send?.({ heraldWorker: 'listening', url } satisfies WorkerReport);
}

export interface Supervisor {
  /** Resolves with the URL once every worker listens; rejects if one dies before that. */
  ready: Promise<string>;
  /** Resolves with the exit code once every worker has exited. */
  stopped: Promise<number>;
  /** Graceful: SIGTERM to each worker. A second call kills them. */
  stop(): void;
}

/** A worker that lived shorter than this counts as dying young: its replacement waits. */
const youngMs = 10_000;
const maxRestartDelayMs = 30_000;

/** Runs in the primary. `log` receives one human-readable line per event. */
export function superviseWorkers(config: Config, count: number, log: (line: string) => void): Supervisor {
  const relay = config.redisUrl === undefined ? createIpcRelay() : undefined;
  const live = new Set<Worker>();
  let listening = 0;
  let allListened = false;
  let stopping = false;
  let failed = false;
  let restartDelayMs = 0;
  let onReady!: (url: string) => void;
  let onEarlyExit!: (error: Error) => void;
  const ready = new Promise<string>((resolve, reject) => ((onReady = resolve), (onEarlyExit = reject)));
  let onStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (onStopped = resolve));

  function fork(): void {
    const worker = cluster.fork();
    const startedAt = Date.now();
    let up = false;
    live.add(worker);
    relay?.add(worker);
    worker.on('message', (message: Partial<WorkerReport> | null) => {
      if (message?.heraldWorker !== 'listening' || up) return;
      up = true;
      if (++listening === count && !allListened) {
        allListened = true;
        onReady(message.url ?? '');
      }
    });
    worker.once('exit', (code, signal) => {
      live.delete(worker);
      if (stopping) {
        if (code !== 0 && signal !== 'SIGTERM') failed = true;
        if (live.size === 0) onStopped(failed ? 1 : 0);
        return;
      }
      // Node's types say string, but a worker that exited by itself has a null signal.
      const how = (signal as string | null) ?? `code ${String(code)}`;
      if (!allListened) {
        // Before every worker came up, a death means a bad configuration or a taken port: it would only fail again.
        stopping = true;
        failed = true;
        onEarlyExit(new Error(`worker ${worker.id} exited (${how}) before listening`));
        for (const other of live) other.process.kill('SIGTERM');
        if (live.size === 0) onStopped(1);
        return;
      }
      restartDelayMs = Date.now() - startedAt < youngMs ? Math.min(Math.max(restartDelayMs * 2, 1_000), maxRestartDelayMs) : 0;
      log(`worker ${worker.id} (pid ${String(worker.process.pid)}) exited (${how}); starting a replacement${restartDelayMs ? ` in ${restartDelayMs / 1000} s` : ''}`);
      setTimeout(() => {
        if (!stopping) fork();
      }, restartDelayMs);
    });
  }

  for (let i = 0; i < count; i++) fork();

  return {
    ready,
    stopped,
    stop() {
      if (stopping) {
        for (const worker of live) worker.process.kill('SIGKILL');
        return;
      }
      stopping = true;
      if (live.size === 0) onStopped(failed ? 1 : 0);
      for (const worker of live) worker.process.kill('SIGTERM');
    },
  };
}
