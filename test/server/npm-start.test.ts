import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { tempDir } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;

it('npm start builds the server and starts it on the embedded default', async () => {
  const data = tempDir();
  // Its own process group, so the test can stop npm and the server together.
  const child = spawn('npm', ['start', '--', '--port', '0', '--data', data], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HERALD_LOG_LEVEL: 'warn' } });
  try {
    const output: string[] = [];
    const url = await new Promise<string>((resolve, reject) => {
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => {
          output.push(line);
          const found = /listening on (http:\/\/\S+)/.exec(line);
          if (found?.[1]) resolve(found[1]);
        });
      }
      child.once('exit', (code) => reject(new Error(`npm start exited with ${String(code)}:\n${output.join('\n')}`)));
    });
    expect(existsSync(join(root, 'server/dist/cli.js'))).toBe(true);
    expect(existsSync(join(data, 'herald.db'))).toBe(true);
    expect(existsSync(join(data, 'admin.token'))).toBe(true);
    expect(output.join('\n')).toMatch(/herald-server token create --user/);
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
  } finally {
    const exited = once(child, 'exit');
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    await exited;
    rmSync(data, { recursive: true, force: true });
  }
});
