import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '@herald/protocol';
import { TestClient, startServer, type TestServer } from '../helpers.js';

/**
 * examples/php/Herald.php, run by Debian's php-cli (with php-curl) against a live server: what a PHP site does to
 * publish, and to sign its users in to Herald with a JWT.
 */

const driver = fileURLToPath(new URL('./herald-php.php', import.meta.url));
const secret = 'php-site-shared-secret-'.padEnd(48, 'x');
const run = promisify(execFile);

/** CI installs php-cli and php-curl (.ci/run); a machine without them fails here instead of skipping. */
function requirePhp(): void {
  try {
    execFileSync('which', ['php'], { stdio: 'pipe' });
  } catch {
    throw new Error('php is not installed: this test runs examples/php/Herald.php with Debian\'s php-cli. Install it with "apt-get install php-cli php-curl".');
  }
  try {
    execFileSync('php', ['-r', 'exit(extension_loaded("curl") ? 0 : 1);'], { stdio: 'pipe' });
  } catch {
    throw new Error('php has no curl extension, which examples/php/Herald.php needs. Install it with "apt-get install php-curl".');
  }
}

let t: TestServer;
let clock = Date.now();
let appToken: string;
const clients: TestClient[] = [];

interface PhpError {
  code: string;
  status: number;
  message: string;
  retryable: boolean;
  retryAfter: number | null;
  class: string;
}

/** Runs one call of the PHP client; resolves to its result, or to the HeraldException's fields. */
async function php<T>(command: string, args: object, env: Record<string, string> = {}): Promise<{ ok?: T; error?: PhpError }> {
  const { stdout } = await run('php', [driver, command, JSON.stringify(args)], {
    env: { ...process.env, HERALD_URL: t.url, HERALD_APP_TOKEN: appToken, HERALD_JWT_SECRET: secret, ...env },
  });
  return JSON.parse(stdout) as { ok?: T; error?: PhpError };
}

async function phpOk<T>(command: string, args: object): Promise<T> {
  const reply = await php<T>(command, args);
  if (reply.ok === undefined) throw new Error(`php ${command}: ${JSON.stringify(reply.error)}`);
  return reply.ok;
}

async function device(token: string): Promise<TestClient> {
  const client = await TestClient.open(t.wsUrl, token);
  clients.push(client);
  client.send({ type: 'hello', v: 1 });
  return client;
}

function claims(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header = '', payload = ''] = jwt.split('.');
  const decode = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: decode(header), payload: decode(payload) };
}

beforeAll(async () => {
  requirePhp();
  clock = Date.now();
  // Expiry is checked on the heartbeat sweep, every heartbeatMs / 2 of real time, against the injected clock.
  t = await startServer({ jwt: { secret }, heartbeatMs: 200 }, { now: () => clock });
  appToken = (await t.api<{ token: string }>('POST', '/v1/tokens', { body: { kind: 'app', name: 'php-site' } })).body.token;
});

afterAll(async () => {
  for (const client of clients) await client.close();
  // Unset when beforeAll failed (no php): its error is the one to see.
  await (t as TestServer | undefined)?.close();
});

describe('examples/php/Herald.php', () => {
  it('mints a JWT that signs a new user in on a WebSocket device, which then receives what PHP publishes', async () => {
    const unknown = await t.api<{ error: { code: string } }>('POST', '/v1/tokens', { body: { kind: 'device', user: 'site-user-42' } });
    expect(unknown.body.error.code).toBe('unknown_user');

    const jwt = await phpOk<string>('jwt', { user: 'site-user-42', lifetime: 3600 });
    const { header, payload } = claims(jwt);
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT' });
    expect(payload).toEqual({ sub: 'site-user-42', iat: expect.any(Number) as number, exp: (payload.iat as number) + 3600 });

    const client = await device(jwt);
    expect(await client.next('welcome')).toMatchObject({ user: { name: 'site-user-42' } });
    await client.next('synced');
    // Created on first use: the user now exists for the admin API too.
    expect((await t.api('POST', '/v1/tokens', { body: { kind: 'device', user: 'site-user-42' } })).status).toBe(201);
    expect((await t.api('GET', '/v1/me', { token: jwt })).body).toMatchObject({ user: { name: 'site-user-42' }, topics: [] });

    const sent = await phpOk<{ id: string; recipients: number }>('publish', {
      notification: { to: { users: ['site-user-42'] }, title: 'Invoice paid', body: 'Invoice #1001: 42,00 €', priority: 4, url: 'https://shop.example/invoices/1001' },
      key: 'invoice-1001',
    });
    expect(sent).toEqual({ id: expect.any(String) as string, recipients: 1 });
    expect(await client.next('notification')).toMatchObject({ id: sent.id, title: 'Invoice paid', body: 'Invoice #1001: 42,00 €', priority: 4, url: 'https://shop.example/invoices/1001' });
    // The same Idempotency-Key and body: the same id, and nothing delivered twice.
    expect(await phpOk('publish', { notification: { to: { users: ['site-user-42'] }, title: 'Invoice paid', body: 'Invoice #1001: 42,00 €', priority: 4, url: 'https://shop.example/invoices/1001' }, key: 'invoice-1001' })).toEqual(sent);

    const batch = { notifications: [{ to: { users: ['site-user-42'] }, title: 'one' }, { to: { users: ['site-user-42'] }, title: 'two' }], key: 'nightly-1' };
    const first = await phpOk<{ id: string; recipients: number }[]>('batch', batch);
    expect(first).toEqual([
      { id: expect.any(String) as string, recipients: 1 },
      { id: expect.any(String) as string, recipients: 1 },
    ]);
    expect(await phpOk('batch', batch)).toEqual(first);
    await phpOk('publish', { notification: { to: { users: ['site-user-42'] }, title: 'marker' } });
    expect((await client.notifications(3)).map((n) => n.title)).toEqual(['one', 'two', 'marker']);

    await phpOk('retract', { id: sent.id });
    expect(await client.next('deleted')).toEqual({ type: 'deleted', seqs: [1] });
  });

  it('turns error answers into a HeraldException carrying the stable code and status', async () => {
    const to = { users: ['site-user-42'] };
    expect((await php('publish', { notification: { to, title: '' } })).error).toMatchObject({ class: 'Herald\\HeraldException', code: 'invalid_title', status: 400, retryable: false });
    expect((await php('publish', { notification: { to: { users: ['ghost'] }, title: 'x' } })).error).toMatchObject({ code: 'unknown_user', status: 400, message: 'no such user: ghost' });
    expect((await php('publish', { notification: { to, title: 'x', priority: 9 } })).error).toMatchObject({ code: 'invalid_priority', status: 400 });
    expect((await php('publish', { notification: { to, title: 'changed' }, key: 'invoice-1001' })).error).toMatchObject({ code: 'idempotency_key_reused', status: 422 });
    expect((await php('batch', { notifications: [{ to, title: 'ok' }, { to, title: 'x'.repeat(300) }] })).error).toMatchObject({ code: 'invalid_title', message: expect.stringMatching(/^notifications\[1\]: /) as string });
    expect((await php('retract', { id: 'no-such-id' })).error).toMatchObject({ code: 'not_found', status: 404 });
    expect((await php('publish', { notification: { to, title: 'x' } }, { HERALD_APP_TOKEN: 'hrld_wrong' })).error).toMatchObject({ code: 'unauthorized', status: 401 });
    const jwt = await phpOk<string>('jwt', { user: 'site-user-42' });
    expect((await php('publish', { notification: { to, title: 'x' } }, { HERALD_APP_TOKEN: jwt })).error).toMatchObject({ code: 'forbidden', status: 403 });
    // Nothing listens on port 1: no answer at all, which is worth retrying.
    expect((await php('publish', { notification: { to, title: 'x' } }, { HERALD_URL: 'http://127.0.0.1:1' })).error).toMatchObject({ code: 'transport', status: 0, retryable: true });
  });

  it('a JWT minted with a past exp is refused with 4501', async () => {
    const jwt = await phpOk<string>('jwt', { user: 'late-user', lifetime: -60 });
    const client = await device(jwt);
    expect(await client.closed).toEqual({ code: CloseCode.unauthorized, reason: 'unauthorized' });
    expect((await t.api<{ error: { code: string } }>('GET', '/v1/me', { token: jwt })).status).toBe(401);
  });

  it('a live socket is closed with 4501 when its JWT expires', async () => {
    const jwt = await phpOk<string>('jwt', { user: 'short-lived', lifetime: 2 });
    const client = await device(jwt);
    await client.next('synced');
    clock = ((claims(jwt).payload.exp as number) + 1) * 1000;
    expect(await client.closed).toEqual({ code: CloseCode.unauthorized, reason: 'token expired' });
  });
});
