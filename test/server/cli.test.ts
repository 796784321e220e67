/**
 * The real `herald-server` CLI, as child processes, against a real server started by the CLI itself.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../../server/src/cli.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const cli = ['--import', 'tsx', 'server/src/cli.ts'];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Everything any command printed, to check that the admin token never appears. */
const printed: string[] = [];

/** The environment of the test runner without any HERALD_* setting, plus `extra`. */
function environment(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('HERALD_')));
  return { ...env, NO_COLOR: '1', ...extra };
}

function spawnCli(args: string[], env: Record<string, string>): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [...cli, ...args], { cwd: repo, env: environment(env), stdio: 'pipe' });
}

/** Runs one command to completion. */
function run(args: string[], options: { env?: Record<string, string>; input?: string } = {}): Promise<Result> {
  const child = spawnCli(args, options.env ?? {});
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      printed.push(stdout, stderr);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A port nothing listens on: bound and released by the OS. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

interface Running {
  child: ChildProcessWithoutNullStreams;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `herald-server start ...` and resolves once it prints the URL it listens on. */
function start(args: string[], env: Record<string, string> = {}): Promise<Running> {
  const child = spawnCli(['start', ...args], env);
  let stderr = '';
  child.stdout.resume(); // JSON logs; drained so the pipe never fills
  child.stdin.end();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const match = /listening on (https?:\/\/\S+)/.exec(stderr);
      if (match?.[1] !== undefined) resolve({ child, url: match[1], stderr: () => stderr, exited });
    });
    void exited.then(({ code }) => reject(new Error(`start exited with ${code} before listening:\n${stderr}`)));
  });
}

async function api(url: string, token: string, method = 'GET', body?: unknown): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

describe('main, in-process', () => {
  function capture(env: NodeJS.ProcessEnv = {}): CliIo & { out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, stdout: (text) => out.push(text), stderr: (text) => err.push(text), stdin: Readable.from([]), env, cwd: repo };
  }

  it('resolves to the exit code instead of exiting', async () => {
    const version = capture();
    expect(await main(['--version'], version)).toBe(0);
    expect(version.out.join('')).toMatch(/^\d+\.\d+\.\d+\n$/);

    const usage = capture();
    expect(await main(['token', 'create', '--url', 'http://127.0.0.1:9'], usage)).toBe(2);
    expect(usage.err.join('')).toContain('token create needs --user NAME');

    const noToken = capture({ HERALD_DATA: path.join(tmpdir(), 'herald-no-such-dir') });
    expect(await main(['token', 'list'], noToken)).toBe(2);
    expect(noToken.err.join('')).toContain('error: no admin token:');
  });
});

describe('help', () => {
  it('every command answers --help with its usage and exits 0', async () => {
    const commands = [[], ['start'], ['user', 'add'], ['token', 'create'], ['token', 'list'], ['token', 'revoke'], ['send']];
    const results = await Promise.all(commands.map((command) => run([...command, '--help'])));
    results.forEach((result, index) => {
      const name = ['herald-server', ...(commands[index] ?? [])].join(' ');
      expect(result.code, name).toBe(0);
      expect(result.stdout, name).toContain(`Usage: ${name}`);
      expect(result.stdout, name).toMatch(/Examples?:/);
    });
    expect(results[1]?.stdout).toContain('HERALD_ADMIN_TOKEN');
  });

  it('shows the usage and exits 2 when no command is given', async () => {
    const result = await run([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Usage: herald-server');
  });
});

describe('start with a bad configuration', () => {
  it('exits 2 naming the flag, with no stack trace', async () => {
    const result = await run(['start', '--port', 'eighty']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('error: invalid configuration:\n  --port: expected a whole number, got "eighty"\n');
  });

  it('exits 2 naming the variable but never its secret value', async () => {
    const secret = 'short-but-secret-admin-token';
    const result = await run(['start'], { env: { HERALD_ADMIN_TOKEN: secret } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('adminToken (from HERALD_ADMIN_TOKEN): adminToken must be at least 32 characters');
    expect(result.stderr).not.toContain(secret);
  });

  it('exits 2 for a missing config file and for half a TLS pair', async () => {
    const [missing, tls] = await Promise.all([run(['start', '--config', 'no-such-herald.yml']), run(['start', '--tls-cert', 'cert.pem'])]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`error: config file not found: ${path.join(repo, 'no-such-herald.yml')} (named by --config)\n`);
    expect(tls.code).toBe(2);
    expect(tls.stderr).toContain('tlsCert (from --tls-cert): tlsCert and tlsKey go together');
  });
});

describe('a running server', () => {
  let dir: string;
  let data: string;
  let config: string;
  let server: Running;
  let adminToken: string;
  let aliceToken: string;
  let aliceTokenId: string;
  /** Reaches the server through HERALD_URL and HERALD_DATA. */
  let env: Record<string, string>;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-cli-'));
    data = path.join(dir, 'data');
    config = path.join(dir, 'herald.yml');
    writeFileSync(config, 'logLevel: warn\nrateLimits: false\n');
    server = await start(['--port', '0', '--data', data, '--config', config]);
    env = { HERALD_URL: server.url, HERALD_DATA: data };
    adminToken = readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
  });

  afterAll(async () => {
    if (server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints where it listens, where the new admin token is, and what to do next', () => {
    const banner = server.stderr();
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(banner).toContain(`herald-server: config from ${config}`);
    expect(banner).toContain(`herald-server: admin token written to ${path.join(data, 'admin.token')}`);
    expect(banner).toContain(`herald-server user add alice --url ${server.url} --data ${data}`);
    expect(banner).toContain(`herald-server token create --user alice --url ${server.url} --data ${data}`);
    expect(banner).toContain(`curl -H "Authorization: Bearer $(cat ${path.join(data, 'admin.token')})"`);
    expect(statSync(path.join(data, 'admin.token')).mode & 0o777).toBe(0o600);
    expect(adminToken.length).toBeGreaterThanOrEqual(32);
  });

  it('user add creates a user, with --url and --data flags', async () => {
    const result = await run(['user', 'add', 'alice', '--url', server.url, '--data', data]);
    expect(result).toEqual({ code: 0, stdout: 'created user alice (id 1)\n', stderr: '' });
  });

  it('user add --password reads the password from piped stdin, and it logs in', async () => {
    const result = await run(['user', 'add', 'bob', '--password'], { env, input: 'correct horse battery\nignored\n' });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('created user bob (id 2)\n');
    expect(result.stdout + result.stderr).not.toContain('correct horse');

    const login = await fetch(`${server.url}/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'bob', password: 'correct horse battery' }),
    });
    expect(login.status).toBe(200);
  });

  it('user add --password refuses an empty stdin with exit 2', async () => {
    const result = await run(['user', 'add', 'carol', '--password'], { env, input: '' });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe('error: --password: expected the password on the first line of stdin\n');
  });

  it('reports an HTTP error as "error: <code>: <message>" with exit 1', async () => {
    const result = await run(['user', 'add', 'alice'], { env });
    expect(result).toEqual({ code: 1, stdout: '', stderr: 'error: user_exists: user alice already exists\n' });
  });

  it('token create --user prints a working device token alone on stdout, once', async () => {
    const result = await run(['token', 'create', '--user', 'alice', '--label', 'laptop'], { env });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^\S{32,}\n$/);
    expect(result.stderr).toMatch(/^created device token (tok_\S+) for user alice \(never expires\)\n/);
    expect(result.stderr).toContain('warning: this token is shown only once');
    aliceToken = result.stdout.trim();
    aliceTokenId = /token (tok_\S+)/.exec(result.stderr)?.[1] ?? '';

    const me = await api(`${server.url}/v1/me`, aliceToken);
    expect(me.status).toBe(200);
    expect(JSON.stringify(me.body)).toContain('"alice"');
  });

  it('token create --app makes a publish token limited to its topics; --json prints the raw response', async () => {
    const result = await run(['token', 'create', '--app', 'ci', '--topics', 'deploys,alerts', '--json'], { env });
    expect(result.code).toBe(0);
    const body = JSON.parse(result.stdout) as { id: string; kind: string; name: string; topics: string[]; token: string };
    expect(body).toMatchObject({ kind: 'app', name: 'ci', topics: ['deploys', 'alerts'] });
    expect(result.stderr).toContain('shown only once');

    expect((await api(`${server.url}/v1/notifications`, body.token, 'POST', { to: { topics: ['deploys'] }, title: 'ok' })).status).toBe(202);
    const denied = await api(`${server.url}/v1/notifications`, body.token, 'POST', { to: { users: ['alice'] }, title: 'no' });
    expect(denied.status).toBe(403);
  });

  it('token create needs exactly one of --user and --app', async () => {
    const [both, neither, mixed] = await Promise.all([
      run(['token', 'create', '--user', 'alice', '--app', 'ci'], { env }),
      run(['token', 'create'], { env }),
      run(['token', 'create', '--app', 'ci', '--label', 'x'], { env }),
    ]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("error: option '--user <name>' cannot be used with option '--app <name>'");
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('error: token create needs --user NAME (a device token) or --app NAME (an app token)');
    expect(mixed.code).toBe(2);
    expect(both.stdout + neither.stdout + mixed.stdout).toBe('');
  });

  it('token list prints a table without secrets, or the raw JSON', async () => {
    const table = await run(['token', 'list'], { env });
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+KIND\s+FOR\s+LABEL\s+TOPICS\s+CREATED\s+EXPIRES$/);
    expect(lines.some((line) => /^tok_admin\s+admin\s+-\s+bootstrap\s/.test(line))).toBe(true);
    expect(lines.some((line) => line.startsWith(aliceTokenId) && /device\s+user alice\s+laptop\s+-\s+\S+Z\s+never$/.test(line))).toBe(true);
    expect(lines.some((line) => /\sapp\s+app ci\s+-\s+deploys,alerts\s/.test(line))).toBe(true);
    expect(table.stdout).not.toContain(aliceToken);

    const json = await run(['token', 'list', '--json'], { env });
    expect(json.code).toBe(0);
    const { tokens } = JSON.parse(json.stdout) as { tokens: { id: string }[] };
    expect(tokens.map((token) => token.id)).toEqual(expect.arrayContaining(['tok_admin', aliceTokenId]));
  });

  it('send delivers to the inbox of the named user', async () => {
    const result = await run(['send', '--user', 'alice', '--title', 'Deploy finished', '--body', 'v1.4.2 is live', '--priority', '4', '--tag', 'prod', '--tag', 'web', '--link', 'https://ci.example.com/1'], {
      env,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^sent \S+ to 1 recipient\n$/);

    const inbox = await api(`${server.url}/v1/inbox`, aliceToken);
    expect(inbox.status).toBe(200);
    const [item] = (inbox.body as { items: Record<string, unknown>[] }).items;
    expect(item).toMatchObject({ title: 'Deploy finished', body: 'v1.4.2 is live', priority: 4, tags: ['prod', 'web'], url: 'https://ci.example.com/1' });
  });

  it('send refuses a missing target (2) and reports an unknown user (1)', async () => {
    const [none, unknown] = await Promise.all([run(['send', '--title', 'x'], { env }), run(['send', '--user', 'nobody', '--title', 'x'], { env })]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('error: send needs recipients: --user NAME, --topic TOPIC or --all');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('error: unknown_user: no such user: nobody\n');
  });

  it('token revoke removes the token; revoking it again is not_found', async () => {
    const result = await run(['token', 'revoke', aliceTokenId], { env });
    expect(result).toEqual({ code: 0, stdout: `revoked token ${aliceTokenId}\n`, stderr: '' });
    expect((await api(`${server.url}/v1/me`, aliceToken)).status).toBe(401);

    const again = await run(['token', 'revoke', aliceTokenId], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error: not_found: no token with id ${aliceTokenId}\n`);
  });

  it('a wrong admin token is unauthorized, and is not printed', async () => {
    const wrong = 'not-the-admin-token-not-the-admin-token';
    const result = await run(['token', 'list'], { env: { ...env, HERALD_ADMIN_TOKEN: wrong } });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error: unauthorized: .*\nhint: the admin token came from HERALD_ADMIN_TOKEN; is it this server's\?\n$/);
    expect(result.stderr).not.toContain(wrong);
  });

  it('without an admin token file, exits 2 naming where it looked', async () => {
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    const result = await run(['token', 'list', '--data', empty], { env: { HERALD_URL: server.url } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`error: no admin token: ${path.join(empty, 'admin.token')} does not exist.`);
  });

  it('a server that is not running gets a clear message', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const result = await run(['send', '--all', '--title', 'x', '--url', url], { env: { HERALD_DATA: data } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error: cannot connect to ${url}: connection refused.`);
    expect(result.stderr).toContain('herald-server start');
  });

  it('never printed the admin token', () => {
    expect(printed.length).toBeGreaterThan(0);
    for (const output of printed) expect(output).not.toContain(adminToken);
  });

  it('stops gracefully on SIGTERM with exit code 0', async () => {
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
    expect(server.stderr()).toContain('herald-server: SIGTERM: shutting down');
    expect(server.stderr()).toContain('herald-server: stopped');
  });
});
