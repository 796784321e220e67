/** A redis-server of a test's own, on a port of its own, that the test can kill and start again. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A redis-server of the test's own on a fixed port, so it can be killed and started again there. */
export class RedisProcess {
  #process: ChildProcess | undefined;
  #output = '';
  #logWaiters: (() => void)[] = [];
  readonly dir = mkdtempSync(join(tmpdir(), 'herald-redis-'));

  constructor(
    readonly port: number,
    readonly extra: string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.extra], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#process = child;
    this.#output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      this.#output += chunk.toString();
      const waiters = this.#logWaiters;
      this.#logWaiters = [];
      for (const waiter of waiters) waiter();
    });
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${this.#output}`))));
    exited.catch(() => undefined);
    await Promise.race([this.log('Ready to accept connections'), exited]);
  }

  /** Resolves once redis-server has logged this text since its last start. */
  async log(text: string): Promise<void> {
    while (!this.#output.includes(text)) await new Promise<void>((resolve) => this.#logWaiters.push(resolve));
  }

  async kill(): Promise<void> {
    const child = this.#process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
