/**
 * The bench's child processes: the server under test, the bare baseline server and the idle-connection
 * holders. Each one is a TypeScript file run by `node --import tsx` and talks to the runner over the
 * IPC channel with the messages below, parsed with zod on both sides.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { z } from 'zod';
import { readRss } from './proc.js';

/** Child → runner. */
export const childMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), url: z.string() }),
  z.object({
    type: z.literal('memory'),
    rss: z.number(),
    heapUsed: z.number(),
    heapTotal: z.number(),
    external: z.number(),
    arrayBuffers: z.number(),
  }),
  z.object({ type: z.literal('progress'), synced: z.number(), failed: z.number() }),
  z.object({ type: z.literal('done'), synced: z.number(), failed: z.number(), errors: z.array(z.string()) }),
  z.object({ type: z.literal('failed'), message: z.string() }),
  /** A holder's answer to `collect`: when each of its devices received broadcast `round` (epoch ms), and how many devices it holds. */
  z.object({ type: z.literal('arrivals'), round: z.number(), times: z.array(z.number()), devices: z.number() }),
  /** A holder's answer to `count`: frames received so far over all its devices, and how many sockets are still open. */
  z.object({
    type: z.literal('counts'),
    heartbeats: z.number(),
    notifications: z.number(),
    open: z.number(),
    /** Bytes the holder's sockets have read, WebSocket framing and any compression included. */
    bytesRead: z.number(),
    problems: z.array(z.string()),
  }),
  /** Answer to `lag`: the child's event-loop delay since the previous `lag`, ms. */
  z.object({ type: z.literal('lag'), p50: z.number(), p99: z.number(), max: z.number() }),
  /** The loopback reader: all its sockets are connected. */
  z.object({ type: z.literal('opened'), sockets: z.number() }),
  /** The loopback reader: every expected byte arrived, and the CPU it took since `start`, µs. */
  z.object({ type: z.literal('read'), cpuUs: z.number() }),
]);
export type ChildMessage = z.infer<typeof childMessage>;
export type ChildMessageOf<T extends ChildMessage['type']> = Extract<ChildMessage, { type: T }>;

/** Runner → child. */
export const parentMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('gc') }),
  z.object({ type: z.literal('stop') }),
  /** To a holder: answer with `arrivals` once every device received broadcast `round`, or after `timeoutMs`. */
  z.object({ type: z.literal('collect'), round: z.number(), timeoutMs: z.number() }),
  /** To a holder: answer with `counts`. */
  z.object({ type: z.literal('count') }),
  /** To any child: answer with `lag`, the event-loop delay measured since the last `lag`, and start again. */
  z.object({ type: z.literal('lag') }),
  /** To the loopback reader: the writes begin; count CPU from now. */
  z.object({ type: z.literal('start') }),
]);
export type ParentMessage = z.infer<typeof parentMessage>;

/** Every child exits on its own after this long, whatever happens to the runner, ms. */
export const childLifetimeMs = 40 * 60 * 1000;

/** Sends a message to the runner; a no-op once the channel is gone. */
export function tellParent(message: ChildMessage): void {
  if (process.connected) process.send?.(message);
}

/** Resolution of every child's event-loop delay histogram, ms: timers this far apart sample the loop. */
const lagResolutionMs = 5;

/**
 * Child side: calls `onStop` on `stop`, on SIGTERM and when the runner goes away, and exits
 * after {@link childLifetimeMs} regardless. Answers `lag` from a histogram every child keeps the same way,
 * so servers are compared on one measure, and `gc` (with --expose-gc) with its memory after collecting.
 * Other messages go to `onMessage`.
 */
export function serveParent(onStop: () => Promise<void>, onMessage: (message: ParentMessage) => void = () => undefined): void {
  const lag = monitorEventLoopDelay({ resolution: lagResolutionMs });
  lag.enable();
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 20_000);
    force.unref();
    onStop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  setTimeout(() => process.exit(2), childLifetimeMs).unref();
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
  process.on('message', (raw: unknown) => {
    const message = parentMessage.parse(raw);
    if (message.type === 'stop') stop();
    else if (message.type === 'gc') {
      // Two passes: the first may only schedule finalizers whose memory the second frees.
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      tellParent({ type: 'memory', ...process.memoryUsage() });
    } else if (message.type === 'lag') {
      // The histogram holds the time between its timer's runs: the lag is what exceeds the resolution.
      const ms = (ns: number) => Math.max(0, Math.round(ns / 1e4 - lagResolutionMs * 100) / 100);
      tellParent({ type: 'lag', p50: ms(lag.percentile(50)), p99: ms(lag.percentile(99)), max: ms(lag.max) });
      lag.reset();
    } else onMessage(message);
  });
}

/** Runner side of one child process. */
export class Child {
  readonly #inbox: ChildMessage[] = [];
  readonly #waiters = new Set<() => void>();
  readonly #listeners = new Set<(message: ChildMessage) => void>();
  readonly exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  private constructor(
    readonly name: string,
    readonly process: ChildProcess,
  ) {
    process.on('message', (raw: unknown) => {
      const message = childMessage.parse(raw);
      for (const listener of this.#listeners) listener(message);
      this.#inbox.push(message);
      for (const wake of this.#waiters) wake();
    });
    this.exited = new Promise((resolve) => {
      process.on('exit', (code) => {
        this.#exitCode = code;
        for (const wake of this.#waiters) wake();
        resolve(code);
      });
    });
  }

  /**
   * Starts `file` (a URL next to this one) under `node --import tsx`. Its stdout and stderr go to the
   * runner's stderr, so a child's log lines never mix with the results table.
   */
  static start(name: string, file: URL, args: string[], nodeFlags: string[] = []): Child {
    const child = fork(file, args, {
      execArgv: ['--import', 'tsx', ...nodeFlags],
      stdio: ['ignore', 2, 2, 'ipc'],
      serialization: 'json',
    });
    return new Child(name, child);
  }

  get pid(): number {
    const pid = this.process.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid`);
    return pid;
  }

  send(message: ParentMessage): void {
    if (this.process.connected) this.process.send(message);
  }

  /** Called for every message from now on. */
  onMessage(listener: (message: ChildMessage) => void): void {
    this.#listeners.add(listener);
  }

  /** The next message of `type` not yet taken; rejects on `failed`, on exit and after `timeoutMs`. */
  next<T extends ChildMessage['type']>(type: T, timeoutMs: number): Promise<ChildMessageOf<T>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.#inbox.findIndex((m) => m.type === type || m.type === 'failed');
        if (index >= 0) {
          const [message] = this.#inbox.splice(index, 1);
          done();
          if (message?.type === 'failed') reject(new Error(`${this.name}: ${message.message}`));
          else resolve(message as ChildMessageOf<T>);
          return;
        }
        if (this.#exitCode !== undefined) {
          done();
          reject(new Error(`${this.name} exited with ${String(this.#exitCode)} while the runner waited for ${type}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** Asks the child to stop, then kills it (this pid only) if it has not exited within `timeoutMs`. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.#exitCode !== undefined) return;
    this.send({ type: 'stop' });
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Resident set size of the child, bytes, from /proc (VmRSS). */
  rss(): number {
    return readRss(this.pid);
  }
}
