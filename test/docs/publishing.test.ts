import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '@herald/protocol';
import { TestClient, deviceFor, startServer, type TestServer } from '../helpers.js';

/**
 * Runs every ```sh block of docs/publishing.md with bash against a live server and checks what it did, so the
 * recipes cannot rot. Each block carries `<!-- recipe: <id> -->` on the line above its fence; the id picks its
 * check below. A block without an id, an id without a check, or a check without a block fails.
 */

const docPath = new URL('../../docs/publishing.md', import.meta.url);
const secret = 'docs-recipes-jwt-secret-'.padEnd(48, 'x');
const run = promisify(execFile);

interface Recipe {
  id: string;
  code: string;
  line: number;
}

/** The recipes of a Markdown document, and what is wrong with its markers. */
function extractRecipes(markdown: string): { recipes: Recipe[]; problems: string[] } {
  const lines = markdown.split('\n');
  const recipes: Recipe[] = [];
  const problems: string[] = [];
  let pending: { id: string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i] ?? '';
    const marker = /^<!--\s*recipe:\s*(\S+)\s*-->\s*$/.exec(text);
    if (marker?.[1]) {
      if (pending) problems.push(`line ${pending.line}: recipe ${pending.id} is not followed by a \`\`\`sh block`);
      pending = { id: marker[1], line: i + 1 };
      continue;
    }
    const fence = /^(`{3,})\s*(\S*)/.exec(text);
    if (!fence) {
      if (pending && text.trim() !== '') {
        problems.push(`line ${pending.line}: recipe ${pending.id} is not followed by a \`\`\`sh block`);
        pending = undefined;
      }
      continue;
    }
    const close = lines.findIndex((l, j) => j > i && l.startsWith(fence[1] ?? '```') && l.trim() === (fence[1] ?? '```'));
    if (close === -1) {
      problems.push(`line ${i + 1}: unclosed code block`);
      break;
    }
    const language = fence[2] ?? '';
    if (language === 'sh' || language === 'bash' || language === 'shell') {
      if (pending) recipes.push({ id: pending.id, code: lines.slice(i + 1, close).join('\n'), line: i + 1 });
      else problems.push(`line ${i + 1}: a \`\`\`${language} block without <!-- recipe: id --> above it`);
    } else if (pending) {
      problems.push(`line ${pending.line}: recipe ${pending.id} is followed by a \`\`\`${language} block, not \`\`\`sh`);
    }
    pending = undefined;
    i = close;
  }
  if (pending) problems.push(`line ${pending.line}: recipe ${pending.id} is not followed by a \`\`\`sh block`);
  const seen = new Set<string>();
  for (const { id, line } of recipes) {
    if (seen.has(id)) problems.push(`line ${line}: recipe ${id} appears twice`);
    seen.add(id);
  }
  return { recipes, problems };
}

/** Every JSON value printed one after another (curl prints no newline after a body). */
function jsonValues(output: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < output.length; i++) {
    const c = output[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if ((c === '}' || c === ']') && --depth === 0) values.push(JSON.parse(output.slice(start, i + 1)));
  }
  return values;
}

let t: TestServer;
let alice: { token: string; userId: number };
let bob: { token: string; userId: number };
let appToken: string;
let live: TestClient;

async function inbox(token: string): Promise<Notification[]> {
  const page = await t.api<{ items: Notification[] }>('GET', '/v1/inbox?limit=200', { token });
  return page.body.items;
}

type Accepted = { id: string; recipients: number; deliverAt?: string };

interface Check {
  /** Puts the server in the state the recipe's effect is checked against. */
  before?: () => Promise<void>;
  check: (stdout: string) => Promise<void>;
}

const checks: Record<string, Check> = {
  subscribe: {
    before: async () => {
      await t.api('DELETE', '/v1/me/topics/deploys', { token: alice.token });
    },
    async check(stdout) {
      expect(jsonValues(stdout)).toEqual([{ topics: ['deploys'] }]);
      expect((await t.api<{ topics: string[] }>('GET', '/v1/me', { token: alice.token })).body.topics).toEqual(['deploys']);
    },
  },
  'single-user': {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(sent).toEqual({ id: expect.any(String) as string, recipients: 1 });
      expect(await live.next('notification')).toMatchObject({ id: sent?.id, title: 'Your export is ready', body: 'report-2026-11.csv' });
    },
  },
  'several-users': {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(sent).toMatchObject({ recipients: 2 });
      expect(await live.next('notification')).toMatchObject({ id: sent?.id, title: 'Team lunch at noon' });
      expect((await inbox(bob.token)).map((n) => n.id)).toContain(sent?.id);
    },
  },
  topic: {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(sent).toMatchObject({ recipients: 1 });
      expect(await live.next('notification')).toMatchObject({ id: sent?.id, topic: 'deploys', title: 'v2.4.1 is live' });
      expect((await inbox(bob.token)).map((n) => n.id)).not.toContain(sent?.id);
    },
  },
  all: {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(sent?.recipients).toBeGreaterThanOrEqual(2);
      expect(await live.next('notification')).toMatchObject({ id: sent?.id, title: 'Maintenance tonight at 22:00' });
      expect((await inbox(bob.token)).map((n) => n.id)).toContain(sent?.id);
    },
  },
  rich: {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(await live.next('notification')).toMatchObject({
        id: sent?.id,
        title: 'Disk almost full',
        body: '/var is at 93%',
        priority: 5,
        tags: ['ops', 'disk'],
        url: 'https://grafana.example.com/d/disk',
        icon: 'https://example.com/icons/disk.png',
        actions: [
          { label: 'Open dashboard', url: 'https://grafana.example.com/d/disk' },
          { label: 'Runbook', url: 'https://wiki.example.com/runbooks/disk' },
        ],
      });
    },
  },
  key: {
    async check(stdout) {
      const [running, passed] = jsonValues(stdout) as Accepted[];
      expect(await live.notifications(2)).toMatchObject([
        { id: running?.id, title: 'Build 1234 running', key: 'build-1234' },
        { id: passed?.id, title: 'Build 1234 passed', key: 'build-1234' },
      ]);
      expect((await inbox(alice.token)).filter((n) => n.key === 'build-1234').map((n) => n.title)).toEqual(['Build 1234 passed']);
    },
  },
  ttl: {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      const frame = await live.next('notification');
      expect(frame).toMatchObject({ id: sent?.id, title: 'Your sign-in code is 482913' });
      expect(Date.parse(frame.expiresAt ?? '') - Date.parse(frame.createdAt)).toBe(300_000);
    },
  },
  'deliver-at': {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(sent).toMatchObject({ recipients: 1, deliverAt: expect.any(String) as string });
      expect(Math.abs(Date.parse(sent?.deliverAt ?? '') - (Date.now() + 3_600_000))).toBeLessThan(120_000);
      expect((await inbox(alice.token)).map((n) => n.id)).not.toContain(sent?.id);
      // Cancelled, so that it cannot turn up in a later check.
      expect((await t.api('DELETE', `/v1/notifications/${sent?.id ?? ''}`)).status).toBe(204);
    },
  },
  idempotency: {
    async check(stdout) {
      const [first, second] = jsonValues(stdout) as Accepted[];
      expect(first).toMatchObject({ recipients: 1 });
      expect(second).toEqual(first);
      expect(await live.next('notification')).toMatchObject({ id: first?.id, title: 'Invoice #1001 paid' });
      expect((await inbox(alice.token)).filter((n) => n.title === 'Invoice #1001 paid')).toHaveLength(1);
    },
  },
  batch: {
    async check(stdout) {
      const [reply] = jsonValues(stdout) as { notifications: Accepted[] }[];
      expect(reply?.notifications).toHaveLength(2);
      expect(await live.next('notification')).toMatchObject({ id: reply?.notifications[0]?.id, title: 'Nightly report: 3 new sign-ups' });
      expect((await inbox(bob.token)).find((n) => n.id === reply?.notifications[1]?.id)).toMatchObject({ title: 'Nightly report: 2 tickets waiting' });
    },
  },
  retract: {
    async check(stdout) {
      expect(stdout).toBe('204\n');
      const frame = await live.next('notification');
      expect(frame).toMatchObject({ title: 'Sent by mistake' });
      expect(await live.next('deleted')).toEqual({ type: 'deleted', seqs: [frame.seq] });
      expect((await inbox(alice.token)).map((n) => n.id)).not.toContain(frame.id);
    },
  },
  'quick-publish': {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(sent).toEqual({ id: expect.any(String) as string, recipients: 1 });
      expect(await live.next('notification')).toMatchObject({
        id: sent?.id,
        topic: 'deploys',
        title: 'Backup finished',
        body: 'All 42 GB copied to the NAS',
        priority: 4,
        tags: ['backup', 'nightly'],
      });
    },
  },
  'quick-publish-basic': {
    async check(stdout) {
      const [sent] = jsonValues(stdout) as Accepted[];
      expect(await live.next('notification')).toMatchObject({ id: sent?.id, topic: 'deploys', title: 'deploys', body: 'triggered', priority: 3 });
    },
  },
  jwt: {
    before: async () => {
      const missing = await t.api<{ error: { code: string } }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'dana' } });
      expect(missing.body.error.code).toBe('unknown_user');
    },
    async check(stdout) {
      expect(jsonValues(stdout)).toEqual([{ user: { id: expect.any(Number) as number, name: 'dana' }, topics: [] }]);
      // Created on first use: dana is an ordinary user now.
      expect((await t.api('POST', '/v1/tokens', { body: { kind: 'device', user: 'dana' } })).status).toBe(201);
    },
  },
};

const { recipes, problems } = extractRecipes(readFileSync(docPath, 'utf8'));

describe('docs/publishing.md', () => {
  it('marks every sh block with a known recipe id, and documents every recipe this test checks', () => {
    expect(problems).toEqual([]);
    const ids = recipes.map((r) => r.id);
    expect(ids.filter((id) => !(id in checks)), 'recipes without a check').toEqual([]);
    expect(Object.keys(checks).filter((id) => !ids.includes(id)), 'checks without a recipe').toEqual([]);
  });

  it('refuses blocks without an id, and ids without a block', () => {
    const bad = ['<!-- recipe: a -->', '```sh', 'true', '```', '', '```sh', 'false', '```', '<!-- recipe: b -->', 'prose', '<!-- recipe: c -->', '```json', '{}', '```'].join('\n');
    const { recipes: found, problems: wrong } = extractRecipes(bad);
    expect(found.map((r) => r.id)).toEqual(['a']);
    expect(wrong).toEqual([
      'line 6: a ```sh block without <!-- recipe: id --> above it',
      'line 9: recipe b is not followed by a ```sh block',
      'line 11: recipe c is followed by a ```json block, not ```sh',
    ]);
  });

  describe('recipes, run with bash against a live server', () => {
    beforeAll(async () => {
      t = await startServer({ jwt: { secret } });
      alice = await deviceFor(t, 'alice');
      bob = await deviceFor(t, 'bob');
      appToken = (await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'docs' } })).body.token;
      expect((await t.api('PUT', '/v1/me/topics/deploys', { token: alice.token })).status).toBe(200);
      live = await TestClient.open(t.wsUrl, alice.token);
      live.send({ type: 'hello', v: 1 });
      await live.next('synced');
    });

    afterAll(async () => {
      await live.close();
      await t.close();
    });

    it.each(recipes.map((r) => [r.id, r] as const))('%s', async (id, recipe) => {
      const check = checks[id];
      if (!check) throw new Error(`docs/publishing.md line ${recipe.line}: no check for recipe ${id}`);
      await check.before?.();
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', HERALD_URL: t.url, APP_TOKEN: appToken, ADMIN_TOKEN: t.adminToken, DEVICE_TOKEN: alice.token, HERALD_JWT_SECRET: secret };
      const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', recipe.code], { env });
      await check.check(stdout);
    });
  });
});
