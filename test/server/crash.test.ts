import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterEach, expect, it } from 'vitest';
import { TestClient, tempDir } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;
const adminToken = 'crash-test-admin-token-' + 'y'.repeat(32);
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** The real CLI in its own process; resolves with its URL once it listens. */
async function startProcess(data: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/src/cli.ts', 'start', '--port', '0', '--data', data], {
    cwd: root,
    env: { ...process.env, HERALD_ADMIN_TOKEN: adminToken, HERALD_LOG_LEVEL: 'warn', HERALD_RATE_LIMITS: 'off' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const url = await new Promise<string>((resolve, reject) => {
    for (const output of [child.stdout, child.stderr]) {
      createInterface({ input: output }).on('line', (line) => {
        const found = /listening on (https?:\/\/\S+)/.exec(line);
        if (found?.[1]) resolve(found[1]);
      });
    }
    child.once('exit', (code) => reject(new Error(`server exited with ${String(code)}`)));
  });
  return { child, url };
}

async function api(url: string, method: string, path: string, body?: unknown, token = adminToken) {
  const response = await fetch(url + path, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

it('keeps every acknowledged publish across kill -9 and replays it after restart', async () => {
  const data = tempDir();
  const first = await startProcess(data);
  await api(first.url, 'POST', '/v1/users', { name: 'alice' });
  const device = (await api(first.url, 'POST', '/v1/tokens', { kind: 'device', user: 'alice' })).body.token as string;

  // Twenty concurrent publishers; the server is killed while they are mid-flight.
  const acknowledged: string[] = [];
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    first.child.kill('SIGKILL');
  };
  const exited = once(first.child, 'exit');
  const publisher = async (worker: number) => {
    for (let i = 0; !killed; i++) {
      try {
        const { status, body } = await api(first.url, 'POST', '/v1/notifications', { to: { users: ['alice'] }, title: `w${worker}-${i}` });
        if (status === 202) acknowledged.push(body.id as string);
      } catch {
        return; // the connection died with the server: this publish was never acknowledged
      }
      if (acknowledged.length >= 300) kill();
    }
  };
  await Promise.all(Array.from({ length: 20 }, (_, w) => publisher(w)));
  const [, signal] = (await exited) as [number | null, string | null];
  expect(signal).toBe('SIGKILL');

  const second = await startProcess(data);
  const wsUrl = second.url.replace(/^http/, 'ws') + '/v1/stream';
  const client = await TestClient.open(wsUrl, device);
  client.send({ type: 'hello', v: 1, since: 0 });
  const synced = await client.next('synced');
  const replayed = client.frames.flatMap((f) => (f.type === 'notification' ? [f] : []));
  expect(synced.replayed).toBe(replayed.length);
  expect(replayed.map((f) => f.seq)).toEqual(Array.from({ length: replayed.length }, (_, i) => i + 1));
  const ids = new Set(replayed.map((f) => f.id));
  const lost = acknowledged.filter((id) => !ids.has(id));
  expect(acknowledged.length).toBeGreaterThanOrEqual(300);
  expect(lost).toEqual([]);
  await client.close();
  second.child.kill('SIGTERM');
  expect(await once(second.child, 'exit')).toEqual([0, null]);
  rmSync(data, { recursive: true, force: true });
});
