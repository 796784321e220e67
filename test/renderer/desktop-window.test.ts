/**
 * The history window in desktop mode, in real Chromium: the built page gets a `window.herald` installed before
 * its scripts run, shaped like preload/index.ts, whose every task goes through the real `registerIpc` wrapper
 * (sender check, then the channel's zod schema) to the real `createIpcHandlers`, over a real session, settings
 * file, keychain (the private Secret Service of test/keychain-setup.ts), cursor files and Herald server. Events
 * go back through the real `EventQueue`, as main sends them. Only Electron itself is missing.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { join } from 'node:path';
import Conf from 'conf';
import keytar from 'keytar';
import { type Browser, type BrowserContext, type Frame, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '@herald/protocol';
import { openCursorStore } from '../../main/cursor.js';
import { createIpcHandlers } from '../../main/handlers.js';
import { EventQueue, registerIpc } from '../../main/ipc.js';
import { createSession, type Session } from '../../main/session.js';
import { openSettings, type SettingsStore } from '../../main/settings.js';
import { createVault } from '../../main/vault.js';
import { ensureBuilt, launchChromium, repo } from './browser.js';
import { publish, startServer, tempDir, type TestServer } from '../helpers.js';

const password = 'correct horse battery';

// Its own keychain service, on the private Secret Service of test/keychain-setup.ts; emptied in afterAll.
const service = `Herald-desktop-test-${String(process.pid)}-${randomUUID()}`;
const vault = createVault({ service });

/** Every file under `dir`, as text. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? filesUnder(path) : [readFileSync(path, 'utf8')];
  });
}

let browser: Browser;
let server: TestServer;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await ensureBuilt();
  browser = await launchChromium();
  server = await startServer({ webRoot: join(repo, 'dist/renderer') });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  for (const { account } of await keytar.findCredentials(service)) await keytar.deletePassword(service, account);
  await browser.close();
  await server.close();
});

const poll = <T>(read: () => Promise<T> | T, timeout = 15_000) => expect.poll(read, { timeout, interval: 50 });

/**
 * The real preload, built (dist/preload/index.cjs), run as a page script with Electron's two modules stood in
 * for: `ipcRenderer.invoke` is `__heraldInvoke` (an exposed binding into main's handlers), `ipcRenderer.on` is
 * fed by `__heraldDeliver` (main's `webContents.send`), and `contextBridge` puts `herald` on the window.
 */
const bridgeScript = () => `(() => {
  const listeners = new Map();
  const ipcRenderer = {
    invoke: (channel, argument) => window.__heraldInvoke(channel, argument),
    on: (channel, listener) => {
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel).add(listener);
    },
    removeListener: (channel, listener) => void listeners.get(channel)?.delete(listener),
  };
  const contextBridge = { exposeInMainWorld: (key, api) => Object.defineProperty(window, key, { value: Object.freeze(api), enumerable: true }) };
  Object.defineProperty(window, '__heraldDeliver', {
    value: (channel, payload) => {
      for (const listener of [...(listeners.get(channel) ?? [])]) listener({ sender: 'stripped by the preload' }, payload);
    },
  });
  const module = { exports: {} };
  const require = (name) => {
    if (name !== 'electron') throw new Error('the preload may require electron only, not ' + name);
    return { contextBridge, ipcRenderer };
  };
  (function (require, module, exports) {
${readFileSync(join(repo, 'dist/preload/index.cjs'), 'utf8')}
  })(require, module, module.exports);
})();`;

/** Console noise that is expected: none of it comes from the desktop page, which talks to nothing but the bridge. */
const expectedNoise = /Failed to load resource/;

type Handler = (event: unknown, argument: unknown) => Promise<unknown>;
/** Who called an exposed binding: Playwright's `BindingSource`. */
interface BindingSource {
  page: Page;
  frame: Frame;
}

interface DesktopWindow {
  page: Page;
  /** Console errors and uncaught exceptions (a CSP violation is one), and failed event deliveries. */
  problems: string[];
}

/**
 * The desktop app without Electron: main's session, settings, handlers and event queue, and a window to open.
 * `setLaunchAtLogin` and `openExternal` record their calls.
 */
async function desktop(options: { colorScheme?: 'light' | 'dark' } = {}) {
  const dir = tempDir();
  const settings: SettingsStore = openSettings({ Store: Conf, cwd: dir });
  const cursors = openCursorStore(join(dir, 'cursors'));
  const launchAtLogin: boolean[] = [];
  const opened: string[] = [];
  /** Every notification the session handed to "main", in order. */
  const delivered: Notification[] = [];
  const context: BrowserContext = await browser.newContext({ viewport: { width: 1000, height: 760 }, locale: 'en-US', timezoneId: 'UTC', colorScheme: options.colorScheme ?? 'light' });
  const pageUrl = `${server.url}/`;

  let window: DesktopWindow | undefined;
  let delivery = Promise.resolve();
  /** `webContents.send`: one `page.evaluate` per event, chained so they arrive in order. */
  const send = (channel: string, payload: unknown) => {
    const target = window;
    if (target === undefined) return;
    delivery = delivery
      .then(() =>
        target.page.evaluate(([name, value]) => {
          (globalThis as unknown as { __heraldDeliver: (channel: unknown, payload: unknown) => void }).__heraldDeliver(name, value);
        }, [channel, payload] as const),
      )
      .catch((error: unknown) => {
        if (!target.page.isClosed()) target.problems.push(`delivering ${channel}: ${String(error)}`);
      });
  };
  /** The window's top frame as main sees it: its URL is whatever the page shows now. */
  const mainFrame = {
    get url() {
      return window?.page.mainFrame().url() ?? '';
    },
  };
  const contents = { id: 1, mainFrame, send };
  const events = new EventQueue(() => (window === undefined ? undefined : contents));

  const session: Session = createSession({
    settings,
    vault,
    cursors,
    deviceLabel: 'Herald desktop-window test',
    onNotification: (item) => {
      delivered.push(item);
      events.send('event:notification', item);
    },
    onSynced: () => undefined,
    onRead: (change) => events.send('event:read', change),
    onDeleted: (seqs) => events.send('event:deleted', seqs),
    onState: (state) => events.send('event:state', state),
  });
  const handlers = createIpcHandlers({
    session,
    settings,
    events,
    openExternal: (url) => {
      opened.push(url);
      return Promise.resolve();
    },
    setLaunchAtLogin: (open) => void launchAtLogin.push(open),
  });
  const registered = new Map<string, Handler>();
  registerIpc({ handle: (channel: string, handler: Handler) => void registered.set(channel, handler) } as never, handlers, {
    page: pageUrl,
    contents: () => (window === undefined ? undefined : (contents as never)),
  });

  /** `ipcRenderer.invoke`: the real wrapper with the caller's frame; errors reach the page as Electron words them. */
  const invoke = async (source: BindingSource, channel: unknown, argument: unknown) => {
    const name = String(channel);
    const handler = registered.get(name);
    if (handler === undefined) throw new Error(`Error invoking remote method '${name}': Error: No handler registered for '${name}'`);
    const sender = { id: source.page === window?.page ? contents.id : -1 };
    const senderFrame = source.page === window?.page && source.frame === source.page.mainFrame() ? mainFrame : { url: source.frame.url() };
    try {
      return await handler({ sender, senderFrame }, argument);
    } catch (error) {
      throw new Error(`Error invoking remote method '${name}': ${String(error)}`);
    }
  };

  /** Opens the history window (closing one that is open); `beforeLoad` runs once the window exists, before its page loads. */
  const open = async (beforeLoad?: () => void): Promise<DesktopWindow> => {
    await close();
    const page = await context.newPage();
    const opening: DesktopWindow = { page, problems: [] };
    page.on('console', (message) => {
      const text = message.text();
      if ((message.type() === 'error' && !expectedNoise.test(text)) || /Content Security Policy|Refused to/i.test(text)) opening.problems.push(text);
    });
    page.on('pageerror', (error) => opening.problems.push(String(error)));
    // main resets the queue on `did-start-loading`: events wait for the new page's `window:ready`.
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) events.reset();
    });
    await page.exposeBinding('__heraldInvoke', invoke);
    await page.addInitScript(bridgeScript());
    window = opening;
    beforeLoad?.();
    await page.goto(pageUrl);
    return opening;
  };

  const close = async () => {
    const closing = window;
    window = undefined;
    events.reset();
    await closing?.page.close();
  };

  cleanups.push(async () => {
    await close();
    await context.close();
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // As main/index.ts: without a stored account the session is signed out, and the window asks to sign in.
  await session.start();
  return { dir, settings, session, events, launchAtLogin, opened, delivered, open, close };
}

async function createUser(name: string): Promise<void> {
  expect((await server.api('POST', '/v1/users', { body: { name, password } })).status).toBe(201);
}

async function signInWithPassword(page: Page, serverUrl: string, name: string, secret = password): Promise<void> {
  await page.getByLabel('Server', { exact: true }).fill(serverUrl);
  await page.getByLabel('User name', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function connected(page: Page): Promise<void> {
  await page.locator('#connection[data-state="connected"]').waitFor({ state: 'attached' });
}

const loginMessage = (page: Page) => page.locator('#login-message').textContent();
const article = (page: Page, name: string) => page.getByRole('article', { name, exact: true });
// String expressions: the test program has Node's types, not the DOM's.
const focusedSeq = (page: Page) => page.evaluate<string | null>('document.activeElement?.closest("article.entry")?.dataset.seq ?? null');
const focusedId = (page: Page) => page.evaluate<string>('document.activeElement?.id ?? ""');

/** A port on which nothing listens. */
async function closedPort(): Promise<number> {
  const probe = createHttpServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const address = probe.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('the desktop history window in Chromium', () => {
  it('asks for a server on first run, explains each failure, and keeps the token in the keychain only', async () => {
    await createUser('alice');
    const app = await desktop();
    const { page, problems } = await app.open();

    await page.getByLabel('Server', { exact: true }).waitFor();
    await signInWithPassword(page, 'ftp://example.com', 'alice');
    await poll(() => loginMessage(page)).toBe('That is not an http:// or https:// address.');
    await signInWithPassword(page, `http://127.0.0.1:${await closedPort()}`, 'alice');
    await poll(() => loginMessage(page)).toBe('The server cannot be reached. Check the address and the connection, then try again.');
    await signInWithPassword(page, server.url, 'alice', 'not the password');
    await poll(() => loginMessage(page)).toBe('Wrong user name or password.');
    expect(app.session.state().connection).toBe('signed-out');
    expect(await vault.read({ server: server.url, user: 'alice' })).toBeNull();
    expect(app.settings.get().accounts).toEqual([]);

    await signInWithPassword(page, `${server.url}/`, 'alice');
    await connected(page);
    expect(await page.locator('#connection').textContent()).toBe('Connected.');
    await poll(() => page.locator('#user-name').textContent()).toBe('alice');

    const token = await vault.read({ server: server.url, user: 'alice' });
    expect(token).toMatch(/^\S{20,}$/);
    const secret = token ?? 'unreachable';
    expect(app.settings.get().accounts).toEqual([expect.objectContaining({ serverUrl: server.url, user: 'alice' })]);
    // Not in the settings file, nor in any other file the app wrote (cursors).
    expect(readFileSync(app.settings.path, 'utf8')).not.toContain(secret);
    for (const text of filesUnder(app.dir)) expect(text).not.toContain(secret);
    // Not in the page: storage, markup, or any field's value.
    const pageText = await page.evaluate<string>(
      '[Object.values(localStorage).join("\\n"), Object.values(sessionStorage).join("\\n"), document.documentElement.outerHTML, ...[...document.querySelectorAll("input")].map((input) => input.value)].join("\\n")',
    );
    expect(pageText).toContain('alice');
    expect(pageText).not.toContain(secret);
    expect(problems).toEqual([]);
  });

  it('signs in with a pasted device token', async () => {
    await createUser('bob');
    const device = await server.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'bob' } });
    expect(device.status).toBe(201);
    const app = await desktop();
    const { page, problems } = await app.open();

    await page.getByLabel('Server', { exact: true }).fill(server.url);
    await page.getByLabel('With a device token').check();
    await page.getByLabel('Device token', { exact: true }).fill('not-a-real-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await poll(() => loginMessage(page)).toBe('That token is not valid (or was revoked).');

    await page.getByLabel('Device token', { exact: true }).fill(`  ${device.body.token}\n`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await connected(page);
    await poll(() => page.locator('#user-name').textContent()).toBe('bob');
    expect(await vault.read({ server: server.url, user: 'bob' })).toBe(device.body.token);
    expect(readFileSync(app.settings.path, 'utf8')).not.toContain(device.body.token);
    expect(await page.evaluate<string>('document.documentElement.outerHTML')).not.toContain(device.body.token);
    expect(problems).toEqual([]);
  });

  it('shows a notification live and focuses the item main asks for, also in a window that a toast click opens', async () => {
    await createUser('carol');
    const app = await desktop();
    const first = await app.open();
    const { page } = first;
    await signInWithPassword(page, server.url, 'carol');
    await connected(page);
    await poll(() => page.locator('#list-notice').textContent()).toBe('No notifications yet.');

    expect((await publish(server, { to: { users: ['carol'] }, title: 'deploy finished', body: 'v2.4.1 is live', priority: 4 })).status).toBe(202);
    expect((await publish(server, { to: { users: ['carol'] }, title: 'backup done' })).status).toBe(202);
    await article(page, 'Unread: deploy finished').waitFor();
    await article(page, 'Unread: backup done').waitFor();
    await poll(() => page.locator('#unread-count').textContent()).toBe('2 unread');

    // A toast click while the window is open: main sends the item's seq.
    const deploy = app.delivered.find((item) => item.title === 'deploy finished');
    expect(deploy).toBeDefined();
    app.events.send('event:focusItem', deploy?.seq ?? 0);
    await poll(() => focusedSeq(page)).toBe(String(deploy?.seq));
    // Showing it reads it.
    await article(page, 'deploy finished').waitFor();
    await poll(() => page.locator('#unread-count').textContent()).toBe('1 unread');
    expect(first.problems).toEqual([]);

    // The user closes the window, then clicks a toast: main opens the window at that item, sending its seq
    // before the page has loaded. The queue holds it until `window:ready` and then flushes it ahead of the state,
    // so the page gets it before it has an inbox to show it in.
    expect((await publish(server, { to: { users: ['carol'] }, title: 'disk almost full', priority: 5 })).status).toBe(202);
    await article(page, 'Unread: disk almost full').waitFor();
    const disk = app.delivered.find((item) => item.title === 'disk almost full');
    await app.close();
    const second = await app.open(() => app.events.send('event:focusItem', disk?.seq ?? 0));
    await poll(() => focusedSeq(second.page)).toBe(String(disk?.seq));
    await article(second.page, 'disk almost full').waitFor();
    expect(await second.page.getByRole('article').count()).toBe(3);

    // The tray's Settings… with the window closed: main opens it and asks for the settings dialog.
    await app.close();
    const third = await app.open(() => app.events.send('event:openSettings', null));
    await third.page.getByRole('dialog', { name: 'Settings' }).waitFor();
    expect(second.problems).toEqual([]);
    expect(third.problems).toEqual([]);
  });

  it('edits the settings in a keyboard-usable dialog, saves them to the settings file, and shows refused values', async () => {
    await createUser('dave');
    const app = await desktop({ colorScheme: 'dark' });
    const { page, problems } = await app.open();
    await signInWithPassword(page, server.url, 'dave');
    await connected(page);
    const before = app.settings.get();
    expect(before).toMatchObject({ minPriority: 1, quietHours: null, sounds: { 1: null, 2: null, 3: 'default', 4: 'default', 5: 'default' }, launchAtLogin: false, startHidden: false });

    // Keyboard: Enter opens it on the first field; Escape closes it unsaved and returns focus to the button.
    const button = page.getByRole('button', { name: 'Settings' });
    await button.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Settings' });
    await dialog.waitFor();
    await poll(() => focusedId(page)).toBe('settings-min-priority');
    // The dark theme's surface, not the browser's default dialog colours.
    expect(await page.evaluate<string>('getComputedStyle(document.getElementById("settings-dialog")).backgroundColor')).toBe('rgb(24, 28, 35)');
    await page.keyboard.press('Tab');
    expect(await focusedId(page)).toBe('settings-quiet');
    await page.keyboard.press('Space');
    expect(await page.getByLabel('From', { exact: true }).inputValue()).toBe('22:00');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await poll(() => focusedId(page)).toBe('settings-open');
    expect(app.settings.get()).toBe(before);

    // Change each kind of setting, and save with Enter in the last field.
    await page.keyboard.press('Enter');
    await dialog.waitFor();
    expect(await page.getByLabel('Mute pop-ups every day').isChecked()).toBe(false);
    await page.getByLabel('Show pop-ups for').selectOption('3');
    await page.getByLabel('Mute pop-ups every day').check();
    await page.getByLabel('From', { exact: true }).fill('23:30');
    await page.getByLabel('High (4)').selectOption({ label: 'Silent' });
    await page.getByLabel('Min (1)').selectOption({ label: 'System sound' });
    await page.getByLabel('Launch at login').check();
    await page.getByLabel('To', { exact: true }).fill('06:45');
    await page.getByLabel('To', { exact: true }).press('Enter');
    await dialog.waitFor({ state: 'hidden' });

    const saved = { minPriority: 3, quietHours: { start: '23:30', end: '06:45' }, sounds: { 1: 'default', 2: null, 3: 'default', 4: null, 5: 'default' }, launchAtLogin: true, startHidden: false };
    await poll(() => app.settings.get()).toMatchObject(saved);
    // On disk: the file itself, and the store a restarted app opens.
    expect(JSON.parse(readFileSync(app.settings.path, 'utf8'))).toMatchObject(saved);
    expect(openSettings({ Store: Conf, cwd: app.dir }).get()).toMatchObject(saved);
    expect(app.launchAtLogin).toEqual([true]);

    // Quiet hours that are no time of day: main refuses them, the dialog says why, and nothing changes.
    const file = readFileSync(app.settings.path, 'utf8');
    const kept = app.settings.get();
    await button.click();
    await dialog.waitFor();
    expect(await page.getByLabel('Show pop-ups for').inputValue()).toBe('3');
    expect(await page.getByLabel('From', { exact: true }).inputValue()).toBe('23:30');
    expect(await page.getByLabel('High (4)').inputValue()).toBe('');
    await page.getByLabel('From', { exact: true }).fill('25:00');
    await page.getByLabel('Launch at login').uncheck();
    await page.getByRole('button', { name: 'Save' }).click();
    await poll(() => dialog.getByRole('alert').textContent()).toBe('Not saved. Quiet hours start: must be a time HH:MM from 00:00 to 23:59');
    expect(await dialog.isVisible()).toBe(true);
    // Not even the shape of a time: the form says so without asking main.
    await page.getByLabel('From', { exact: true }).fill('7pm');
    await page.getByRole('button', { name: 'Save' }).click();
    await poll(() => dialog.getByRole('alert').textContent()).toBe('Quiet hours start: use HH:MM, for example 22:00.');
    expect(await focusedId(page)).toBe('settings-quiet-start');
    await page.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    expect(app.settings.get()).toBe(kept);
    expect(readFileSync(app.settings.path, 'utf8')).toBe(file);
    expect(app.launchAtLogin).toEqual([true]);

    // The page cannot go around the form: main parses every argument with the channel's schema.
    const refused = await page.evaluate<string>('window.herald.setSettings({ minPriority: 9, token: "x" }).then(() => "saved", (error) => error.message)');
    expect(refused).toMatch(/^Error invoking remote method 'settings:set': Error: invalid argument for settings:set: /);
    expect(app.settings.get()).toBe(kept);

    // Quiet hours off again.
    await button.click();
    await dialog.waitFor();
    await page.getByLabel('Mute pop-ups every day').uncheck();
    expect(await page.getByLabel('From', { exact: true }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Save' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await poll(() => app.settings.get().quietHours).toBeNull();
    expect(app.settings.get()).toMatchObject({ ...saved, quietHours: null });
    expect(problems).toEqual([]);
  });

  it('signs out from the window: the keychain entry is gone and the sign-in form is back', async () => {
    await createUser('erin');
    const app = await desktop();
    const { page, problems } = await app.open();
    await signInWithPassword(page, server.url, 'erin');
    await connected(page);
    expect(await vault.read({ server: server.url, user: 'erin' })).not.toBeNull();

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Server', { exact: true }).waitFor();
    expect(await loginMessage(page)).toBe('');
    expect(await vault.read({ server: server.url, user: 'erin' })).toBeNull();
    expect((await vault.accounts()).filter((account) => account.user === 'erin')).toEqual([]);
    expect(app.settings.get()).toMatchObject({ accounts: [], activeAccountId: null });
    expect(app.session.state().connection).toBe('signed-out');
    expect(problems).toEqual([]);
  });
});

describe('the web inbox', () => {
  it('has no settings button (its bridge has no settings)', async () => {
    await createUser('frank');
    const context = await browser.newContext({ locale: 'en-US', timezoneId: 'UTC' });
    cleanups.push(() => context.close());
    const page = await context.newPage();
    await page.goto(`${server.url}/`);
    expect(await page.getByLabel('Server', { exact: true }).count()).toBe(0);
    await page.getByLabel('User name', { exact: true }).fill('frank');
    await page.getByLabel('Password', { exact: true }).fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await connected(page);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    expect(await page.getByRole('button', { name: 'Settings' }).count()).toBe(0);
    expect(await page.locator('#settings-dialog').count()).toBe(0);
  });
});
