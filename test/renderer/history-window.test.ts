import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrokerFactory } from '../../server/src/broker/broker.js';
import { createMemoryBroker } from '../../server/src/broker/memory.js';
import { webContentSecurityPolicy } from '../../server/src/web.js';
import { builtIndex, ensureBuilt, launchChromium, repo } from './browser.js';
import { publish, startServer, tempDir, type TestServer } from '../helpers.js';

const password = 'correct horse battery';

let browser: Browser;
let server: TestServer;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  await ensureBuilt();
  browser = await launchChromium();
  server = await startServer();
});

afterAll(async () => {
  await Promise.all(contexts.map((context) => context.close()));
  await browser.close();
  await server.close();
});

const poll = <T>(read: () => Promise<T> | T, timeout = 15_000) => expect.poll(read, { timeout, interval: 50 });

async function createUser(t: TestServer, name: string): Promise<void> {
  const created = await t.api('POST', '/v1/users', { body: { name, password } });
  expect(created.status).toBe(201);
}

/** A device token of the user's own, for subscriptions and read changes made outside the browser. */
async function deviceToken(t: TestServer, name: string): Promise<string> {
  const login = await t.api<{ token: string }>('POST', '/v1/login', { token: '', body: { name, password } });
  expect(login.status).toBe(200);
  return login.body.token;
}

interface InboxWindow {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught exceptions (a CSP violation is one). */
  problems: string[];
  /** Every text frame the page sent or received on a WebSocket. */
  frames: { direction: 'sent' | 'received'; data: string }[];
  webSocketUrls: string[];
}

interface WindowOptions {
  colorScheme?: 'light' | 'dark';
  /** Epoch ms the page's clock is fixed at (timers keep running). */
  fixedTime?: number;
}

/** Console noise that is expected: a refused connection or an HTTP error status the page handles. */
const expectedNoise = /Failed to load resource|ERR_CONNECTION_REFUSED|WebSocket connection to .* failed/;

async function openWindow(t: TestServer, options: WindowOptions = {}): Promise<InboxWindow> {
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 }, locale: 'en-US', timezoneId: 'UTC', colorScheme: options.colorScheme ?? 'light' });
  contexts.push(context);
  if (options.fixedTime !== undefined) await context.clock.setFixedTime(options.fixedTime);
  const page = await context.newPage();
  const window: InboxWindow = { context, page, problems: [], frames: [], webSocketUrls: [] };
  page.on('console', (message) => {
    const text = message.text();
    if ((message.type() === 'error' && !expectedNoise.test(text)) || /Content Security Policy|Refused to/i.test(text)) window.problems.push(text);
  });
  page.on('pageerror', (error) => window.problems.push(String(error)));
  page.on('websocket', (ws) => {
    window.webSocketUrls.push(ws.url());
    ws.on('framesent', ({ payload }) => window.frames.push({ direction: 'sent', data: String(payload) }));
    ws.on('framereceived', ({ payload }) => window.frames.push({ direction: 'received', data: String(payload) }));
  });
  await page.goto(`${t.url}/`);
  return window;
}

async function signIn(window: InboxWindow, name: string, secret = password): Promise<void> {
  const { page } = window;
  await page.getByLabel('User name', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(secret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

async function connected(page: Page): Promise<void> {
  await page.locator('#connection[data-state="connected"]').waitFor({ state: 'attached' });
}

/** Opens the web inbox in a fresh browser context and signs in. */
async function openInbox(t: TestServer, name: string, options: WindowOptions = {}): Promise<InboxWindow> {
  const window = await openWindow(t, options);
  await signIn(window, name);
  await connected(window.page);
  return window;
}

const articles = (page: Page) => page.getByRole('article');
const article = (page: Page, title: string) => page.getByRole('article', { name: title });
const unreadText = (page: Page) => page.locator('#unread-count').textContent();
const titles = async (page: Page) => (await page.locator('article.entry h3.title').allTextContents()).map((text) => text.replace(/^Unread: /, ''));
// String expressions: the test program has Node's types, not the DOM's.
const seqs = (page: Page) => page.evaluate<number[]>('[...document.querySelectorAll("article.entry")].map((node) => Number(node.dataset.seq))');
const isUnread = async (page: Page, title: string) => /\bunread\b/.test((await article(page, title).getAttribute('class')) ?? '');
const focused = (page: Page) => page.evaluate<string>('document.activeElement?.textContent ?? ""');
const background = (page: Page) => page.evaluate<string>('getComputedStyle(document.body).backgroundColor');

describe('the built page', () => {
  it('has no inline script or style, and the same CSP as the server sends', async () => {
    const html = readFileSync(builtIndex, 'utf8');
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/i);
    expect(html).not.toMatch(/<style/i);
    expect(html).not.toMatch(/\sstyle=/i);
    expect(html).not.toMatch(/\son[a-z]+=/i);
    const meta = /http-equiv="Content-Security-Policy"\s+content="([^"]+)"/.exec(html)?.[1];
    expect(meta).toBe(webContentSecurityPolicy);

    const response = await fetch(`${server.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toBe(`${webContentSecurityPolicy}; frame-ancestors 'none'`);
    expect(await response.text()).toBe(html);
    const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(html)?.[1];
    const asset = await fetch(`${server.url}/${script ?? 'missing'}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toMatch(/immutable/);
  });
});

describe('the web inbox in Chromium', () => {
  it('signs in with a user name and password, and keeps the token out of URLs and localStorage', async () => {
    await createUser(server, 'ada');
    const window = await openWindow(server);
    const { page } = window;

    await signIn(window, 'ada', 'not the password');
    await poll(() => page.getByRole('alert').filter({ hasText: 'Wrong user name or password.' }).count()).toBe(1);

    await signIn(window, 'ada');
    await connected(page);
    await poll(() => page.locator('#user-name').textContent()).toBe('ada');
    await poll(() => page.locator('#list-notice').textContent()).toBe('No notifications yet.');

    // The session survives a reload of the tab, without asking again.
    await page.reload();
    await connected(page);
    expect(await page.getByLabel('Password', { exact: true }).count()).toBe(0);

    const token = (JSON.parse((await page.evaluate<string | null>('sessionStorage.getItem("herald.session")')) ?? '{}') as { token?: string }).token ?? '';
    expect(token).toMatch(/.{32,}/);
    const stored = await page.evaluate<string>('Object.values(localStorage).join("\\n")');
    expect(stored).not.toContain(token);
    expect(window.webSocketUrls.length).toBeGreaterThan(0);
    for (const url of [...window.webSocketUrls, page.url()]) expect(url).not.toContain(token);
    // The token travels in the first frame instead of a header or the URL.
    expect(JSON.parse(window.frames.find((frame) => frame.direction === 'sent')?.data ?? '{}')).toMatchObject({ type: 'hello', v: 1, token });

    // Signing out forgets the token and the saved items; a pasted device token signs in too.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('User name', { exact: true }).waitFor();
    expect(await page.evaluate<string | null>('sessionStorage.getItem("herald.session")')).toBeNull();
    expect(await page.evaluate<string[]>('Object.keys(localStorage).filter((key) => key.startsWith("herald.inbox"))')).toEqual([]);
    await page.getByLabel('With a device token').check();
    await page.getByLabel('Device token', { exact: true }).fill('not-a-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await poll(() => page.getByRole('alert').filter({ hasText: 'That token is not valid (or was revoked).' }).count()).toBe(1);
    await page.getByLabel('Device token', { exact: true }).fill(await deviceToken(server, 'ada'));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await connected(page);
    await poll(() => page.locator('#user-name').textContent()).toBe('ada');
    expect(window.problems).toEqual([]);
  });

  it('asks to sign in again when the server revokes the token', async () => {
    await createUser(server, 'hal');
    const { page, problems } = await openInbox(server, 'hal');
    const tokens = await server.api<{ tokens: { id: string; user?: string; label?: string | null }[] }>('GET', '/v1/tokens');
    const mine = tokens.body.tokens.filter((token) => token.user === 'hal' && token.label === 'web inbox');
    expect(mine.length).toBeGreaterThan(0);
    for (const token of mine) expect((await server.api('DELETE', `/v1/tokens/${token.id}`)).status).toBe(204);
    await poll(() => page.getByRole('alert').filter({ hasText: 'Your sign-in has ended. Sign in again.' }).count()).toBe(1);
    expect(await page.evaluate<string | null>('sessionStorage.getItem("herald.session")')).toBeNull();
    expect(problems).toEqual([]);
  });

  it('shows a notification published over HTTP as it arrives, as text only', async () => {
    await createUser(server, 'bea');
    const { page, problems } = await openInbox(server, 'bea');
    await poll(() => unreadText(page)).toBe('All read');

    const published = await publish(server, {
      to: { users: ['bea'] },
      title: 'Deploy finished <b>now</b>',
      body: 'v2.4.1 is live <img src=x onerror="document.title=1">',
      priority: 4,
      tags: ['prod'],
      url: 'https://ci.example.com/runs/1234',
    });
    expect(published.status).toBe(202);

    const item = article(page, 'Deploy finished <b>now</b>');
    await item.waitFor();
    await poll(() => unreadText(page)).toBe('1 unread');
    expect(await item.locator('.body').textContent()).toBe('v2.4.1 is live <img src=x onerror="document.title=1">');
    expect(await item.locator('img, b').count()).toBe(0);
    expect(await item.locator('.badge').textContent()).toBe('Priority: High');
    expect(await item.locator('.tag').allTextContents()).toEqual(['prod']);
    const link = item.getByRole('link', { name: 'Open link' });
    expect(await link.getAttribute('href')).toBe('https://ci.example.com/runs/1234');
    expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
    await poll(() => page.getByRole('heading', { level: 2 }).allTextContents()).toEqual(['Today']);
    expect(problems).toEqual([]);
  });

  it('marks items read by click, keyboard and "mark all", and a second window of the same user follows', async () => {
    await createUser(server, 'cy');
    for (const title of ['Alpha', 'Beta', 'Gamma']) await publish(server, { to: { users: ['cy'] }, title });
    const first = await openInbox(server, 'cy');
    const second = await openInbox(server, 'cy');
    for (const { page } of [first, second]) await poll(() => unreadText(page)).toBe('3 unread');

    await article(first.page, 'Alpha').click();
    await poll(() => unreadText(first.page)).toBe('2 unread');
    await poll(() => unreadText(second.page)).toBe('2 unread');
    await poll(() => isUnread(second.page, 'Alpha')).toBe(false);

    // Keyboard: arrows move between items, Enter and Space read them, focus stays visible and in place.
    await article(first.page, 'Gamma').focus();
    await first.page.keyboard.press('ArrowDown');
    expect(await focused(first.page)).toContain('Beta');
    await first.page.keyboard.press('Enter');
    await poll(() => unreadText(second.page)).toBe('1 unread');
    await first.page.keyboard.press('ArrowUp');
    await first.page.keyboard.press(' ');
    await poll(() => unreadText(first.page)).toBe('All read');
    await poll(() => unreadText(second.page)).toBe('All read');
    expect(await first.page.evaluate<boolean>('document.activeElement.matches("article.entry:focus-visible")')).toBe(true);

    // A new arrival, then "mark all read" from the second window.
    await publish(server, { to: { users: ['cy'] }, title: 'Delta' });
    await poll(() => unreadText(first.page)).toBe('1 unread');
    await second.page.getByRole('button', { name: 'Mark all read' }).click();
    await poll(() => unreadText(first.page)).toBe('All read');
    await poll(() => isUnread(first.page, 'Delta')).toBe(false);
    expect([...first.problems, ...second.problems]).toEqual([]);
  });

  it('searches on the server and filters by topic, priority and unread', async () => {
    await createUser(server, 'dee');
    const token = await deviceToken(server, 'dee');
    for (const topic of ['deploys', 'alerts']) expect((await server.api('PUT', `/v1/me/topics/${topic}`, { token })).status).toBe(200);
    await publish(server, { to: { topics: ['deploys'] }, title: 'Deploy finished', priority: 3 });
    await publish(server, { to: { topics: ['deploys'] }, title: 'Deploy failed', body: 'exit code 2', priority: 5 });
    await publish(server, { to: { topics: ['alerts'] }, title: 'Disk almost full', body: 'db-2 is at 92%', priority: 4 });
    await publish(server, { to: { users: ['dee'] }, title: 'Invoice paid', priority: 2 });
    await publish(server, { to: { users: ['dee'] }, title: 'Weekly report', body: 'No deployments this week', priority: 1 });
    const { page, problems } = await openInbox(server, 'dee');
    await poll(() => articles(page).count()).toBe(5);

    const searched = page.waitForRequest((request) => new URL(request.url()).searchParams.get('q') === 'DEPLOY');
    await page.getByRole('searchbox', { name: 'Search notifications' }).fill('DEPLOY');
    await searched;
    await poll(() => titles(page)).toEqual(['Weekly report', 'Deploy failed', 'Deploy finished']);
    await page.getByRole('searchbox', { name: 'Search notifications' }).fill('');
    await poll(() => articles(page).count()).toBe(5);

    await page.getByRole('combobox', { name: 'Topic' }).selectOption('alerts');
    await poll(() => titles(page)).toEqual(['Disk almost full']);
    // Live arrivals respect the filters.
    await publish(server, { to: { topics: ['deploys'] }, title: 'Deploy started' });
    await publish(server, { to: { topics: ['alerts'] }, title: 'CPU high', priority: 4 });
    await poll(() => titles(page)).toEqual(['CPU high', 'Disk almost full']);

    await page.getByRole('combobox', { name: 'Topic' }).selectOption('');
    await page.getByRole('combobox', { name: 'Priority' }).selectOption('4');
    await poll(() => titles(page)).toEqual(['CPU high', 'Disk almost full', 'Deploy failed']);
    await page.getByRole('combobox', { name: 'Topic' }).selectOption('deploys');
    await poll(() => titles(page)).toEqual(['Deploy failed']);

    await page.getByRole('combobox', { name: 'Topic' }).selectOption('');
    await page.getByRole('combobox', { name: 'Priority' }).selectOption('');
    await article(page, 'Invoice paid').click();
    await poll(() => unreadText(page)).toBe('6 unread');
    await page.getByRole('checkbox', { name: 'Unread only' }).check();
    await poll(() => titles(page)).toEqual(['CPU high', 'Deploy started', 'Weekly report', 'Disk almost full', 'Deploy failed', 'Deploy finished']);
    await page.getByRole('searchbox', { name: 'Search notifications' }).fill('nothing like this');
    await poll(() => page.locator('#list-notice').textContent()).toBe('No notifications match these filters.');
    expect(problems).toEqual([]);
  });

  it('loads older items as the list scrolls', async () => {
    await createUser(server, 'eve');
    const batch = (from: number, to: number) => ({ notifications: Array.from({ length: to - from + 1 }, (_, i) => ({ to: { users: ['eve'] }, title: `Item ${from + i}` })) });
    expect((await server.api('POST', '/v1/notifications/batch', { body: batch(1, 100) })).status).toBe(202);
    expect((await server.api('POST', '/v1/notifications/batch', { body: batch(101, 120) })).status).toBe(202);
    const { page, problems } = await openInbox(server, 'eve');
    await poll(() => articles(page).count()).toBe(50);
    expect((await titles(page))[0]).toBe('Item 120');
    expect(await page.locator('#list-end').isVisible()).toBe(false);

    await articles(page).last().scrollIntoViewIfNeeded();
    await poll(() => articles(page).count()).toBe(100);
    await articles(page).last().scrollIntoViewIfNeeded();
    await poll(() => articles(page).count()).toBe(120);
    await page.locator('#list-end').waitFor();

    const listed = await seqs(page);
    expect(new Set(listed).size).toBe(120);
    expect(listed).toEqual([...listed].sort((a, b) => b - a));
    expect((await titles(page)).at(-1)).toBe('Item 1');
    await poll(() => unreadText(page)).toBe('120 unread');
    expect(problems).toEqual([]);
  });

  it('shows the reconnect banner and saved items while the server is down, then recovers what it missed, once each', async () => {
    const data = tempDir();
    let own = await startServer({ data });
    const port = Number(new URL(own.url).port);
    try {
      await createUser(own, 'fay');
      for (const title of ['Before 1', 'Before 2']) await publish(own, { to: { users: ['fay'] }, title });
      const { page, frames, problems } = await openInbox(own, 'fay');
      await poll(() => titles(page)).toEqual(['Before 2', 'Before 1']);

      await own.close();
      await poll(() => page.locator('#connection').getAttribute('data-state')).toBe('reconnecting');
      expect(await page.getByRole('status').filter({ hasText: 'Connection lost. Reconnecting…' }).count()).toBe(1);

      // The offline view: a search cannot reach the server, so the items saved in this browser answer it.
      await page.getByRole('searchbox', { name: 'Search notifications' }).fill('before 1');
      await poll(() => page.locator('#list-notice').textContent()).toBe('Offline: showing 1 notification saved in this browser.');
      expect(await titles(page)).toEqual(['Before 1']);
      await page.getByRole('searchbox', { name: 'Search notifications' }).fill('');
      await poll(() => titles(page)).toEqual(['Before 2', 'Before 1']);

      // Published while this browser cannot connect: another node on the same data, then gone.
      const elsewhere = await startServer({ data });
      for (const title of ['Missed 1', 'Missed 2', 'Missed 3']) await publish(elsewhere, { to: { users: ['fay'] }, title });
      await elsewhere.close();

      own = await startServer({ data, port });
      await publish(own, { to: { users: ['fay'] }, title: 'After restart' });
      await connected(page);
      await poll(() => titles(page)).toEqual(['After restart', 'Missed 3', 'Missed 2', 'Missed 1', 'Before 2', 'Before 1']);
      await poll(() => unreadText(page)).toBe('6 unread');
      await poll(() => page.locator('#list-notice').isHidden()).toBe(true);

      // It resumed by cursor: hello with since 2, and each missed seq came once over the new socket.
      const hellos = frames.filter((f) => f.direction === 'sent').map((f) => JSON.parse(f.data) as { type: string; since?: number }).filter((f) => f.type === 'hello');
      expect(hellos.at(-1)?.since).toBe(2);
      const delivered = frames
        .filter((f) => f.direction === 'received')
        .map((f) => JSON.parse(f.data) as { type: string; seq?: number })
        .filter((f) => f.type === 'notification')
        .map((f) => f.seq);
      expect(delivered.filter((seq) => seq !== undefined && seq >= 3 && seq <= 5).sort()).toEqual([3, 4, 5]);
      expect(new Set(await seqs(page)).size).toBe(6);
      expect(problems).toEqual([]);
    } finally {
      await own.close();
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('recovers live frames the broker dropped: by a heartbeat ahead of it, and by a seq jump', async () => {
    // The broker may drop messages (contract); this one drops the notifications of the titles listed here.
    const dropTitles = new Set(['Lost quietly', 'Lost before another']);
    const lossy: BrokerFactory = (handlers) =>
      createMemoryBroker({ ...handlers, message: (message) => (message.seq > 0 && [...dropTitles].some((title) => message.frame.includes(title)) ? undefined : handlers.message(message)) });
    const own = await startServer({ heartbeatMs: 300 }, { broker: lossy });
    try {
      await createUser(own, 'ivy');
      const { page, frames, problems } = await openInbox(own, 'ivy');
      const syncs = () => frames.filter((f) => f.direction === 'sent' && (JSON.parse(f.data) as { type: string }).type === 'sync').length;

      // Nothing arrives live; the next idle heartbeat's head is ahead of the page, so it asks for a replay.
      await publish(own, { to: { users: ['ivy'] }, title: 'Lost quietly' });
      await poll(() => titles(page)).toEqual(['Lost quietly']);
      expect(syncs()).toBe(1);

      // A live frame whose seq skips one: the page replays from its cursor and shows each seq once.
      await publish(own, { to: { users: ['ivy'] }, title: 'Lost before another' });
      await publish(own, { to: { users: ['ivy'] }, title: 'Delivered live' });
      await poll(() => titles(page)).toEqual(['Delivered live', 'Lost before another', 'Lost quietly']);
      expect(syncs()).toBe(2);
      await poll(() => unreadText(page)).toBe('3 unread');
      expect(new Set(await seqs(page)).size).toBe(3);
      expect(problems).toEqual([]);
    } finally {
      await own.close();
    }
  });

  it('saves screenshots of realistic content in the light and the dark theme', async () => {
    // One fixed afternoon for the server's clock and the page's, so the day groups always come out the same.
    const today = new Date();
    const now = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate(), 15, 30);
    let clock = now;
    const own = await startServer({}, { now: () => clock });
    try {
      await createUser(own, 'grace');
      const token = await deviceToken(own, 'grace');
      for (const topic of ['deploys', 'alerts', 'billing']) await own.api('PUT', `/v1/me/topics/${topic}`, { token });
      const minute = 60_000;
      const hour = 60 * minute;
      const at = async (ago: number, body: object) => {
        clock = now - ago;
        expect((await publish(own, body)).status).toBe(202);
      };
      await at(50 * hour, { to: { users: ['grace'] }, title: 'Weekly report is ready', body: '12 deploys, 2 incidents, 99.97% uptime.', priority: 2, tags: ['report'] });
      await at(29 * hour, { to: { topics: ['billing'] }, title: 'Invoice #1042 paid', body: 'Acme Corp paid 1,280.00 EUR by bank transfer.' });
      await at(22 * hour, { to: { topics: ['alerts'] }, title: 'Certificate for api.example.com renews in 14 days', tags: ['tls'] });
      await at(3 * hour, { to: { topics: ['deploys'] }, title: 'Deploy finished: web v2.4.1', body: 'Rolled out to 12/12 hosts in 3m 41s.', tags: ['prod'], url: 'https://ci.example.com/runs/1234' });
      await at(40 * minute, {
        to: { topics: ['deploys'] },
        title: 'Build failed on main',
        body: 'test/e2e/checkout.spec.ts: 2 failing\nCommit 8f3a2c1 by Ana: "Speed up cart totals"',
        priority: 4,
        tags: ['ci'],
        url: 'https://ci.example.com/runs/1240',
        actions: [{ label: 'View logs', url: 'https://ci.example.com/runs/1240/logs' }],
      });
      await at(6 * minute, { to: { topics: ['alerts'] }, title: 'Disk almost full on db-2', body: '/var/lib/postgresql is 92% full (460 GB of 500 GB), growing 4 GB an hour.', priority: 5, tags: ['db', 'prod'] });
      await at(1 * minute, { to: { users: ['grace'] }, title: 'Ana mentioned you in "Q3 roadmap"', body: 'Can you check the notification retention numbers before Friday?' });
      clock = now;
      expect((await own.api('POST', '/v1/inbox/read', { token, body: { seqs: [1, 2, 3, 4] } })).status).toBe(200);

      const light = await openInbox(own, 'grace', { colorScheme: 'light', fixedTime: now });
      await poll(() => articles(light.page).count()).toBe(7);
      await poll(() => light.page.getByRole('heading', { level: 2 }).allTextContents()).toEqual(['Today', 'Yesterday', expect.stringMatching(/^[A-Z][a-z]+day, [A-Z][a-z]+ \d+$/)]);
      await poll(() => unreadText(light.page)).toBe('3 unread');
      expect(await background(light.page)).toBe('rgb(244, 245, 248)');
      mkdirSync(join(repo, 'docs'), { recursive: true });
      await light.page.screenshot({ path: join(repo, 'docs/screenshot-light.png'), animations: 'disabled' });

      // The toggle switches to dark, and the choice outlives a reload.
      const toggle = light.page.getByRole('button', { name: 'Dark theme' });
      expect(await toggle.getAttribute('aria-pressed')).toBe('false');
      await toggle.click();
      expect(await toggle.getAttribute('aria-pressed')).toBe('true');
      expect(await background(light.page)).toBe('rgb(16, 19, 24)');
      await light.page.reload();
      await connected(light.page);
      await poll(() => articles(light.page).count()).toBe(7);
      expect(await background(light.page)).toBe('rgb(16, 19, 24)');
      await light.page.screenshot({ path: join(repo, 'docs/screenshot-dark.png'), animations: 'disabled' });

      // Without a stored choice, the system's preference decides.
      const dark = await openInbox(own, 'grace', { colorScheme: 'dark', fixedTime: now });
      expect(await background(dark.page)).toBe('rgb(16, 19, 24)');
      expect([...light.problems, ...dark.problems]).toEqual([]);
    } finally {
      await own.close();
    }
  });
});
