import { rmSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { CliProcess, freshApi as api } from '../cli-process.js';
import { TestClient, tempDir } from '../helpers.js';

const children: CliProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill();
});

/** The real CLI in its own process; resolves with its URL once it listens. */
async function startProcess(data: string): Promise<{ process: CliProcess; url: string }> {
  const server = CliProcess.start(['--port', '0', '--data', data]);
  children.push(server);
  return { process: server, url: await server.url() };
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
    first.process.kill('SIGKILL');
  };
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
  expect((await first.process.exited).signal).toBe('SIGKILL');

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
  second.process.kill('SIGTERM');
  expect(await second.process.exited).toEqual({ code: 0, signal: null });
  rmSync(data, { recursive: true, force: true });
});
