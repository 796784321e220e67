import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notification } from '@herald/protocol';
import { matchesQuery } from '../../renderer/src/filters.js';
import { defaultWebRoot, webContentSecurityPolicy } from '../../server/src/web.js';
import { publish, startServer, tempDir, type TestServer } from '../helpers.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/** A raw GET, so `..` and encoded slashes reach the server exactly as written (fetch would normalize them). */
function rawGet(url: string, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url + path, { method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the web inbox route (server/src/web.ts)', () => {
  let root: string;
  let outside: string;
  let server: TestServer;
  const index = '<!doctype html><title>Herald</title><script type="module" src="./assets/index-AbC123.js"></script>';

  beforeAll(async () => {
    outside = tempDir();
    root = join(outside, 'web');
    mkdirSync(join(root, 'assets'), { recursive: true });
    writeFileSync(join(root, 'index.html'), index);
    writeFileSync(join(root, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    writeFileSync(join(root, 'assets/index-AbC123.js'), 'console.log("é");\n');
    writeFileSync(join(root, 'assets/style-XyZ.css'), 'body{}');
    writeFileSync(join(root, 'assets/photo-1.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    writeFileSync(join(outside, 'secret.txt'), 'not for the web');
    server = await startServer({ webRoot: root });
  });

  afterAll(async () => {
    await server.close();
    rmSync(outside, { recursive: true, force: true });
  });

  it('serves index.html at / with the security headers and no-cache', async () => {
    const response = await rawGet(server.url, '/');
    expect(response.status).toBe(200);
    expect(response.body).toBe(index);
    expect(response.headers).toMatchObject({
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-cache',
      'content-security-policy': `${webContentSecurityPolicy}; frame-ancestors 'none'`,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'x-frame-options': 'DENY',
    });
    const head = await rawGet(server.url, '/', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(index)));
  });

  it('serves hashed assets as immutable, with their content types and exact lengths', async () => {
    const script = await rawGet(server.url, '/assets/index-AbC123.js');
    expect(script.status).toBe(200);
    expect(script.body).toBe('console.log("é");\n');
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(script.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(script.headers['content-length']).toBe(String(Buffer.byteLength('console.log("é");\n')));
    expect(script.headers['x-content-type-options']).toBe('nosniff');
    expect((await rawGet(server.url, '/assets/style-XyZ.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    const icon = await rawGet(server.url, '/favicon.svg');
    expect([icon.status, icon.headers['content-type'], icon.headers['cache-control']]).toEqual([200, 'image/svg+xml; charset=utf-8', 'no-cache']);
  });

  it.each([
    '/assets/..%2Fsecret.txt',
    '/assets/..%2F..%2Fsecret.txt',
    '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/assets/../../secret.txt',
    '/assets/..%5C..%5Csecret.txt',
    '/assets/',
    '/assets/photo-1.png',
    '/assets/index-AbC123.js%00.html',
    '/index.html/',
    '/web/index.html',
    '/secret.txt',
  ])('answers %s with 404 and no file outside the build', async (path) => {
    const response = await rawGet(server.url, path);
    expect(response.status).toBe(404);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'not_found' } });
    expect(response.body).not.toContain('not for the web');
  });

  it('answers other methods with 405 and Allow: GET', async () => {
    for (const path of ['/', '/assets/index-AbC123.js']) {
      const response = await rawGet(server.url, path, 'POST');
      expect(response.status).toBe(405);
      expect(response.headers.allow).toBe('GET');
      expect(JSON.parse(response.body)).toMatchObject({ error: { code: 'method_not_allowed' } });
    }
  });

  it('answers 503 saying how to build while the build is missing, and picks the build up without a restart', async () => {
    const empty = tempDir();
    const bare = await startServer({ webRoot: empty });
    try {
      const missing = await rawGet(bare.url, '/');
      expect(missing.status).toBe(503);
      expect(missing.headers['retry-after']).toBe('60');
      const body = JSON.parse(missing.body) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('unavailable');
      expect(body.error.message).toContain('npx vite build --config renderer/vite.config.ts');
      expect((await rawGet(bare.url, '/assets/index-AbC123.js')).status).toBe(503);

      mkdirSync(join(empty, 'assets'));
      writeFileSync(join(empty, 'assets/index-New.js'), 'export {};\n');
      writeFileSync(join(empty, 'index.html'), '<!doctype html><title>new build</title>');
      expect((await rawGet(bare.url, '/')).body).toBe('<!doctype html><title>new build</title>');
      expect((await rawGet(bare.url, '/assets/index-New.js')).status).toBe(200);
    } finally {
      await bare.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('finds the build beside the bundle, or in <repo>/dist/renderer from source', () => {
    expect(defaultWebRoot()).toBe(join(repo, 'dist/renderer/'));
    expect(defaultWebRoot('file:///opt/herald/server/dist/cli.js')).toBe('/opt/herald/server/dist/web/');
  });
});

describe('GET /v1/inbox?minPriority (the history window priority filter)', () => {
  it('lists only items at or above the priority, and refuses a bad one with invalid_request', async () => {
    const t = await startServer();
    try {
      await t.api('POST', '/v1/users', { body: { name: 'pat', password: 'correct horse battery' } });
      const login = await t.api<{ token: string }>('POST', '/v1/login', { token: '', body: { name: 'pat', password: 'correct horse battery' } });
      const token = login.body.token;
      for (const priority of [1, 2, 3, 4, 5]) await publish(t, { to: { users: ['pat'] }, title: `p${priority}`, priority });
      const page = await t.api<{ items: { priority: number }[]; unread: number }>('GET', '/v1/inbox?minPriority=4', { token });
      expect(page.status).toBe(200);
      expect(page.body.items.map((item) => item.priority)).toEqual([5, 4]);
      expect(page.body.unread).toBe(5);
      const combined = await t.api<{ items: { title: string }[] }>('GET', '/v1/inbox?minPriority=2&q=p3', { token });
      expect(combined.body.items.map((item) => item.title)).toEqual(['p3']);
      for (const bad of ['0', '6', '2.5', 'high', '']) {
        const refused = await t.api('GET', `/v1/inbox?minPriority=${bad}`, { token });
        expect([bad, refused.status, refused.body]).toEqual([bad, 400, { error: { code: 'invalid_request', message: expect.stringContaining('minPriority') as unknown } }]);
      }
    } finally {
      await t.close();
    }
  });
});

describe('renderer logic', () => {
  it('applies the inbox filters to one item as the server does', () => {
    const item: Notification = { seq: 7, id: 'n', title: 'Deploy FINISHED', body: 'Ärger im Paradies', priority: 4, tags: [], url: null, icon: null, actions: [], topic: 'deploys', createdAt: new Date(0).toISOString(), read: false };
    expect(matchesQuery(item, { q: 'deploy finished' })).toBe(true);
    // SQLite's LIKE folds ASCII only.
    expect(matchesQuery(item, { q: 'ÄRGER IM' })).toBe(true);
    expect(matchesQuery(item, { q: 'ärger' })).toBe(false);
    expect(matchesQuery(item, { topic: 'deploys', minPriority: 4, unread: true, before: 8 })).toBe(true);
    expect(matchesQuery(item, { minPriority: 5 })).toBe(false);
    expect(matchesQuery(item, { topic: 'alerts' })).toBe(false);
    expect(matchesQuery({ ...item, read: true }, { unread: true })).toBe(false);
    expect(matchesQuery(item, { before: 7 })).toBe(false);
  });
});
