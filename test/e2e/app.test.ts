/**
 * The real desktop app under Playwright's Electron driver: first run, a toast on publish, the tray count and
 * the history window. They need the Electron binary, which ELECTRON_SKIP_BINARY_DOWNLOAD machines lack; there
 * the suite is reported as skipped with that reason, and .ci/run allows exactly that skip.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { _electron as electron, type ElectronApplication } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { publish, startServer, tempDir } from '../helpers.js';

const root = new URL('../..', import.meta.url).pathname;

function electronBinary(): string | undefined {
  try {
    const path: unknown = createRequire(import.meta.url)('electron');
    return typeof path === 'string' && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

const binary = electronBinary();
if (binary === undefined) console.log('test/e2e/app.test.ts: skipped, because the Electron binary is not installed (npm install ran with ELECTRON_SKIP_BINARY_DOWNLOAD=1)');

const running: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of running.splice(0).reverse()) await stop();
});

async function launch(env: Record<string, string> = {}): Promise<ElectronApplication> {
  const app = await electron.launch({
    ...(binary === undefined ? {} : { executablePath: binary }),
    args: [root],
    env: { ...process.env, HERALD_USER_DATA: tempDir(), ...env },
  });
  running.push(() => app.close());
  // Records every toast the main process shows, in the main process itself.
  await app.evaluate(({ Notification }) => {
    const shown: { title: string; body: string }[] = [];
    (globalThis as { __toasts?: typeof shown }).__toasts = shown;
    const { show } = Notification.prototype as { show: (this: Electron.Notification) => void };
    Notification.prototype.show = function (this: Electron.Notification) {
      shown.push({ title: this.title, body: this.body });
      show.call(this);
    };
  });
  return app;
}

describe.skipIf(binary === undefined)(`the desktop app${binary === undefined ? ' [needs the Electron binary]' : ''}`, () => {
  it('signs in on first run, toasts a publish, counts it in the tray and lists it in the history window', async () => {
    const t = await startServer();
    running.push(() => t.close());
    await t.api('POST', '/v1/users', { body: { name: 'alice', password: 'correct horse battery' } });
    const app = await launch();
    const window = await app.firstWindow();
    await window.getByLabel('Server', { exact: true }).fill(t.url);
    await window.getByLabel('User name', { exact: true }).fill('alice');
    await window.getByLabel('Password', { exact: true }).fill('correct horse battery');
    await window.getByRole('button', { name: /sign in/i }).click();
    await window.getByRole('status').filter({ hasText: 'Connected.' }).waitFor();

    expect((await publish(t, { to: { users: ['alice'] }, title: 'deploy finished', priority: 4 })).status).toBe(202);
    await window.getByText('deploy finished').waitFor();
    await expect.poll(() => app.evaluate(() => (globalThis as { __toasts?: { title: string }[] }).__toasts?.map((toast) => toast.title))).toEqual(['deploy finished']);
    await expect.poll(() => app.evaluate(({ app: electronApp }) => electronApp.getBadgeCount())).toBe(1);
  });
});
