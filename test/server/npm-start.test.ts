import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { expect, it } from 'vitest';
import { tempDir } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;

it('npm start builds everything, starts the server on the embedded default with a demo account, and says why the desktop app cannot start here', async () => {
  const data = tempDir();
  // Its own process group, so the test can stop npm and the server together.
  const child = spawn('npm', ['start', '--', '--port', '0', '--data', data], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HERALD_LOG_LEVEL: 'warn' } });
  const demoSaid = (output: string[]) => output.some((line) => /sign in as "demo"/.test(line));
  try {
    const output: string[] = [];
    let listening: string | undefined;
    const url = await new Promise<string>((resolve, reject) => {
      for (const stream of [child.stdout, child.stderr]) {
        createInterface({ input: stream }).on('line', (line) => {
          output.push(line);
          const found = /listening on (http:\/\/\S+)/.exec(line);
          if (found?.[1]) listening = found[1];
          if (listening !== undefined && demoSaid(output)) resolve(listening);
        });
      }
      child.once('exit', (code) => reject(new Error(`npm start exited with ${String(code)}:\n${output.join('\n')}`)));
    });
    for (const built of ['server/dist/cli.js', 'server/dist/web/index.html', 'dist/main/index.js', 'dist/preload/index.cjs', 'dist/renderer/index.html']) expect(existsSync(join(root, built)), built).toBe(true);
    expect(existsSync(join(data, 'herald.db'))).toBe(true);
    expect(existsSync(join(data, 'admin.token'))).toBe(true);
    expect(output.join('\n')).toMatch(/herald-server token create --user/);
    expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok', service: 'herald' });
    // No Electron binary on this machine: it says so, and the web inbox stays up with the demo account.
    const said = output.join('\n');
    expect(said).toMatch(/Electron binary is not installed/);
    expect(said).toContain(`open ${url}/`);
    const password = readFileSync(join(data, 'demo.password'), 'utf8').trim();
    expect(said).not.toContain(password);
    expect(statSync(join(data, 'demo.password')).mode & 0o777).toBe(0o600);
    const login = await fetch(`${url}/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'demo', password }) });
    expect(login.status).toBe(200);
    expect((await fetch(`${url}/`)).headers.get('content-type')).toMatch(/text\/html/);
  } finally {
    const exited = once(child, 'exit');
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    await exited;
    rmSync(data, { recursive: true, force: true });
  }
});
