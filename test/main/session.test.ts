import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import Conf from 'conf';
import keytar from 'keytar';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { BridgeState, Notification } from '@herald/protocol';
import { normalizeServerUrl } from '../../main/api.js';
import { openCursorStore } from '../../main/cursor.js';
import { createSession, type SessionDeps } from '../../main/session.js';
import { openSettings } from '../../main/settings.js';
import { createVault } from '../../main/vault.js';
import { publish, startServer, tempDir, type TestServer } from '../helpers.js';

// Its own keychain service, on the private Secret Service of test/keychain-setup.ts.
const service = `Herald-session-test-${String(process.pid)}-${randomUUID()}`;
afterAll(async () => {
  for (const { account } of await keytar.findCredentials(service)) await keytar.deletePassword(service, account);
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function herald(): Promise<TestServer> {
  const t = await startServer();
  cleanups.push(() => t.close());
  expect((await t.api('POST', '/v1/users', { body: { name: 'alice', password: 'correct horse battery' } })).status).toBe(201);
  return t;
}

/** A desktop session on real settings, keychain and cursor files, recording what it hands to Electron. */
function desktop(dir = tempDir()) {
  const seen: { item: Notification; replayed: boolean; initial: boolean }[] = [];
  const states: BridgeState[] = [];
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const waiter of waiters) waiter();
  };
  const deps: SessionDeps = {
    settings: openSettings({ Store: Conf, cwd: dir }),
    vault: createVault({ service }),
    cursors: openCursorStore(join(dir, 'cursors')),
    deviceLabel: 'session test',
    onNotification: (item, delivery) => {
      seen.push({ item, ...delivery });
      changed();
    },
    onSynced: changed,
    onRead: changed,
    onDeleted: changed,
    onState: (state) => {
      states.push(state);
      changed();
    },
  };
  const session = createSession(deps);
  cleanups.push(() => session.close());
  /** Resolves once `condition` holds, checked on every event the session emits. */
  const until = (condition: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (!condition()) return;
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
      check();
    });
  return { session, seen, states, until, dir, deps };
}

describe('signing in', () => {
  it('explains each failure with a stable code', async () => {
    const t = await herald();
    const { session } = desktop();
    const notHerald = createHttpServer((_req, res) => res.end('<html>router admin</html>')).listen(0, '127.0.0.1');
    await once(notHerald, 'listening');
    cleanups.push(() => new Promise((resolve) => notHerald.close(() => resolve())));
    const address = notHerald.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;

    const attempt = async (server: string, password = 'correct horse battery') => {
      const result = await session.signIn({ server, name: 'alice', password });
      return result.ok ? 'ok' : result.code;
    };
    expect(await attempt('ftp://example.com')).toBe('invalid_url');
    expect(await attempt('not a url')).toBe('invalid_url');
    expect(await attempt(`http://127.0.0.1:${port}`)).toBe('not_herald');
    await new Promise<void>((resolve) => notHerald.close(() => resolve()));
    expect(await attempt(`http://127.0.0.1:${port}`)).toBe('unreachable');
    expect(await attempt(t.url, 'wrong password')).toBe('unauthorized');
    expect(session.state().connection).toBe('signed-out');
  });

  it('keeps the token in the keychain only, connects, and shows live notifications with the unread count', async () => {
    const t = await herald();
    const { session, seen, until, deps } = desktop();
    const result = await session.signIn({ server: `${t.url}/`, name: 'alice', password: 'correct horse battery' });
    expect(result).toEqual({ ok: true, user: 'alice', server: t.url });
    const token = await deps.vault.read({ server: t.url, user: 'alice' });
    expect(token).toMatch(/\S{20,}/);
    expect(readFileSync(deps.settings.path, 'utf8')).not.toContain(token ?? 'never');
    await until(() => session.state().connection === 'connected');

    expect((await publish(t, { to: { users: ['alice'] }, title: 'deploy finished', priority: 4 })).status).toBe(202);
    await until(() => seen.length === 1 && session.state().unread === 1);
    expect(seen[0]).toMatchObject({ item: { title: 'deploy finished', priority: 4 }, replayed: false, initial: false });
    expect(session.item(seen[0]?.item.seq ?? 0)?.title).toBe('deploy finished');

    expect((await session.listInbox({ limit: 10 })).items.map((i) => i.title)).toEqual(['deploy finished']);
    await session.markAllRead();
    expect(session.state().unread).toBe(0);
  });

  it('accepts a pasted device token, resumes after an app restart, and forgets everything on sign-out', async () => {
    const t = await herald();
    const device = await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'alice' } });
    const first = desktop();
    expect(await first.session.signIn({ server: t.url, token: device.body.token })).toMatchObject({ ok: true, user: 'alice' });
    await first.until(() => first.session.state().connection === 'connected');
    await publish(t, { to: { users: ['alice'] }, title: 'one' });
    await first.until(() => first.seen.length === 1);
    await first.session.close();

    // Published while the app was closed; the restarted app resumes from its cursor and replays it once.
    await publish(t, { to: { users: ['alice'] }, title: 'two' });
    const second = desktop(first.dir);
    await second.session.start();
    await second.until(() => second.seen.length === 1);
    expect(second.seen.map((s) => [s.item.title, s.replayed, s.initial])).toEqual([['two', true, false]]);

    await second.session.signOut();
    expect(second.session.state().connection).toBe('signed-out');
    expect(await second.deps.vault.read({ server: t.url, user: 'alice' })).toBeNull();
    expect(second.deps.settings.get().accounts).toEqual([]);
  });
});

describe('server addresses', () => {
  it('are reduced to origin and path, with https when the scheme is left out', () => {
    expect(normalizeServerUrl(' herald.example.com ')).toBe('https://herald.example.com');
    expect(normalizeServerUrl('http://127.0.0.1:8080/')).toBe('http://127.0.0.1:8080');
    expect(normalizeServerUrl('https://example.com/herald/')).toBe('https://example.com/herald');
    for (const bad of ['ftp://example.com', 'javascript:alert(1)', 'https://user:pw@example.com', '']) expect(() => normalizeServerUrl(bad), bad).toThrow();
  });
});
