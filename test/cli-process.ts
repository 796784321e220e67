/** `herald-server start` in a process of its own, for tests that kill it, signal it or read its output. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { createInterface } from 'node:readline';

const root = new URL('..', import.meta.url).pathname;
export const processAdminToken = 'process-test-admin-token-' + 'z'.repeat(32);

export class CliProcess {
  /** Every line the process wrote to stdout or stderr so far. */
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters: (() => void)[] = [];
  #gone = false;

  private constructor(readonly child: ChildProcess) {
    for (const output of [child.stdout, child.stderr]) {
      if (!output) continue;
      createInterface({ input: output }).on('line', (line) => {
        this.lines.push(line);
        for (const waiter of this.#waiters.splice(0)) waiter();
      });
    }
    this.exited = once(child, 'exit').then(([code, signal]) => {
      this.#gone = true;
      for (const waiter of this.#waiters.splice(0)) waiter();
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
  }

  /** Starts `herald-server start <args>` from source, with rate limits off and the shared test admin token. */
  static start(args: string[], env: Record<string, string> = {}): CliProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/cli.ts', 'start', ...args], {
      cwd: root,
      env: { ...process.env, HERALD_ADMIN_TOKEN: processAdminToken, HERALD_LOG_LEVEL: 'warn', HERALD_RATE_LIMITS: 'off', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new CliProcess(child);
  }

  /** Resolves with the first match of `pattern` in the output, waiting for it; rejects if the process exits first. */
  async line(pattern: RegExp): Promise<RegExpExecArray> {
    for (;;) {
      for (const line of this.lines) {
        const found = pattern.exec(line);
        if (found) return found;
      }
      if (this.#gone) throw new Error(`exited without printing ${String(pattern)}:\n${this.lines.join('\n')}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  async url(): Promise<string> {
    return (await this.line(/listening on (https?:\/\/\S+)/))[1] ?? '';
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/**
 * One admin API call on a connection of its own (no keep-alive), so that calls to a `--workers` server
 * are spread over its workers as separate clients' would be.
 */
export function freshApi(url: string, method: string, path: string, body?: unknown, token = processAdminToken): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url + path, { method, agent: false, headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
