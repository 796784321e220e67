/**
 * `herald-server`: starts the server, and administers a running one over its HTTP API.
 * Human-readable messages go to stderr; stdout carries only results (a token, a table, `--json` output),
 * so `TOKEN=$(herald-server token create --user alice)` works.
 */
import cluster from 'node:cluster';
import { readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import packageJson from '../package.json' with { type: 'json' };
import { ConfigError, type Config } from './config.js';
import { describeEnv, loadConfigWithSource, unknownEnvVariables } from './config-sources.js';
import { defaults } from './defaults.js';

/** Process exit codes of every command. */
export const ExitCode = {
  ok: 0,
  /** The server refused, failed or could not be reached. */
  failure: 1,
  /** Bad flags, bad configuration, no admin token. */
  usage: 2,
} as const;

/** What the CLI reads and writes; tests can run `main` in-process with their own. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Admin commands use this server when neither `--url` nor `HERALD_URL` says otherwise. */
export const defaultServerUrl = `http://${defaults.host}:${defaults.port}`;

/** Milliseconds an admin request may take before the command gives up. */
const requestTimeoutMs = 30_000;

/** An error the CLI reports as `error: <message>` without a stack trace. */
class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.failure,
  ) {
    super(message);
  }
}

function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  };
}

/**
 * Runs one command line (without `node` and the script) and resolves to its exit code.
 * `start` resolves only after a signal has stopped the server.
 */
export async function main(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const state = { exitCode: ExitCode.ok as number };
  const program = createProgram(io, state);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return state.exitCode;
  } catch (error) {
    return report(error, io);
  }
}

function report(error: unknown, io: CliIo): number {
  // Commander has already printed its own message (or the help that was asked for).
  if (error instanceof CommanderError) return error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  if (error instanceof ConfigError) {
    io.stderr(`error: ${error.message}\n`);
    return ExitCode.usage;
  }
  if (error instanceof CliError) {
    io.stderr(`error: ${error.message}\n`);
    return error.exitCode;
  }
  // System errors (EACCES, EADDRINUSE, ...) explain themselves; anything else is a bug and keeps its stack.
  const message = error instanceof Error ? (errorCode(error) === undefined ? (error.stack ?? error.message) : error.message) : String(error);
  io.stderr(`error: ${message}\n`);
  return ExitCode.failure;
}

// ---------------------------------------------------------------------------------------------
// The command tree.

const rootHelp = `
Examples:
  $ herald-server start --port 8080 --data ./herald-data
  $ herald-server user add alice --password
  $ herald-server token create --user alice --label laptop
  $ herald-server send --user alice --title "Deploy finished" --body "v1.4.2 is live"

Admin commands (user, token, send) talk to a running server: --url, else HERALD_URL, else
${defaultServerUrl}; the admin token comes from HERALD_ADMIN_TOKEN, else <data>/admin.token.

Exit codes: 0 success, 1 the server refused or could not be reached, 2 usage or configuration error.`;

const adminHelp = `
Server and credentials:
  --url, else HERALD_URL, else ${defaultServerUrl}.
  Admin token: HERALD_ADMIN_TOKEN, else the admin.token file in --data, else HERALD_DATA,
  else ${defaults.data} (the first \`herald-server start\` writes it there).`;

interface AdminFlags {
  url?: string;
  data?: string;
  json?: boolean;
}

function createProgram(io: CliIo, state: { exitCode: number }): Command {
  const program = new Command('herald-server')
    .description('Herald companion server: durable real-time notifications over WebSocket, and admin commands for a running server.')
    .version(packageJson.version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', rootHelp)
    .helpCommand('help [command]', 'show help for a command');

  program
    .command('start')
    .description('Run the server in the foreground until SIGINT or SIGTERM (a second signal forces exit).')
    .option('--port <port>', `TCP port; 0 picks a free one (default: ${defaults.port})`)
    .option('--host <host>', `bind address (default: ${defaults.host})`)
    .option('--data <dir>', `data directory: SQLite database and admin.token (default: ${defaults.data})`)
    .option('--config <file>', 'YAML file of options in camelCase (default: ./herald.yml if it exists; env: HERALD_CONFIG)')
    .option('--tls-cert <file>', 'PEM certificate; serves HTTPS and WSS directly (needs --tls-key)')
    .option('--tls-key <file>', 'PEM private key (needs --tls-cert)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default: info)')
    .option('--workers <n>', 'worker processes sharing the port, each on its own core; auto: one per core (default: 1)')
    .option('--admission <on|off>', 'server-wide admission control of stream upgrades, 503 overloaded beyond it (default: on; tune with HERALD_ADMISSION_*)')
    .addHelpText(
      'after',
      `
Precedence: defaults < config file < HERALD_* variables < flags.

Environment:
${describeEnv()}

Examples:
  $ herald-server start
  $ herald-server start --port 0 --data /var/lib/herald
  $ herald-server start --workers auto
  $ HERALD_ADMIN_TOKEN=... HERALD_HOST=0.0.0.0 herald-server start --config /etc/herald.yml`,
    )
    .action(async (flags: Record<string, unknown>) => {
      state.exitCode = await start(flags, io);
    });

  const user = program.command('user').description('Manage users.');
  withAdminOptions(
    user
      .command('add')
      .description('Create a user (POST /v1/users).')
      .argument('<name>', 'user name: letters, digits, ".", "_" and "-"')
      .option('--password', 'also set a password for POST /v1/login: asked for without echo, or read from the first line of stdin when piped')
      .addHelpText(
        'after',
        `
Examples:
  $ herald-server user add alice
  $ herald-server user add alice --password
  $ printf '%s\\n' "$PASSWORD" | herald-server user add alice --password`,
      )
  ).action(async (name: string, flags: AdminFlags & { password?: boolean }) => {
    const client = connect(flags, io);
    const password = flags.password === true ? await readPassword(io) : undefined;
    const response = await client.request('POST', '/v1/users', password === undefined ? { name } : { name, password });
    if (flags.json === true) return printRaw(response, io);
    const id = field(response.data, 'id');
    io.stdout(`created user ${name}${id === undefined ? '' : ` (id ${id})`}\n`);
  });

  const token = program.command('token').description('Create, list and revoke tokens.');
  withAdminOptions(
    token
      .command('create')
      .description('Create a device token for a user, or an app token for publishing (POST /v1/tokens).')
      .addOption(new Option('--user <name>', 'device token acting for this user (its inbox and stream)').conflicts('app'))
      .addOption(new Option('--app <name>', 'app token that may publish, named after the app').conflicts('user'))
      .addOption(new Option('--label <label>', 'device token: a note such as the device name').conflicts('app'))
      .addOption(
        new Option('--expires-in <seconds>', "device token: lifetime in seconds, at least 60 (default: the server's deviceTokenTtl)")
          .argParser(parseWholeNumber)
          .conflicts('app'),
      )
      .addOption(new Option('--topics <list>', 'app token: comma-separated topics it may publish to (default: any target)').conflicts('user'))
      .addHelpText(
        'after',
        `
The token is printed once, alone on stdout, and cannot be shown again.

Examples:
  $ herald-server token create --user alice --label laptop
  $ herald-server token create --user alice --expires-in 2592000
  $ herald-server token create --app ci --topics deploys,alerts
  $ TOKEN=$(herald-server token create --app ci)`,
      )
  ).action(async (flags: AdminFlags & { user?: string; app?: string; label?: string; expiresIn?: number; topics?: string }, command: Command) => {
    let body: Record<string, unknown>;
    if (flags.user !== undefined) {
      body = { kind: 'device', user: flags.user, label: flags.label, expiresIn: flags.expiresIn };
    } else if (flags.app !== undefined) {
      body = { kind: 'app', name: flags.app, topics: flags.topics === undefined ? undefined : splitList(flags.topics) };
    } else {
      command.error('error: token create needs --user NAME (a device token) or --app NAME (an app token)', { exitCode: ExitCode.usage });
    }
    const client = connect(flags, io);
    const response = await client.request('POST', '/v1/tokens', body);
    const secret = field(response.data, 'token');
    if (flags.json === true) printRaw(response, io);
    else if (secret === undefined) throw new CliError('the server answered without a token');
    else {
      io.stderr(`created ${describeToken(response.data)}\n`);
      io.stdout(`${secret}\n`);
    }
    io.stderr('warning: this token is shown only once; store it now (it cannot be retrieved later, only revoked).\n');
  });

  withAdminOptions(
    token
      .command('list')
      .description('List tokens: id, kind, owner, label, dates. Never the secrets (GET /v1/tokens).')
      .addHelpText(
        'after',
        `
Examples:
  $ herald-server token list
  $ herald-server token list --json`,
      )
  ).action(async (flags: AdminFlags) => {
    const response = await connect(flags, io).request('GET', '/v1/tokens');
    if (flags.json === true) return printRaw(response, io);
    const list = member(response.data, 'tokens') ?? response.data;
    if (!Array.isArray(list)) throw new CliError('the server answered with something other than a token list');
    io.stdout(list.length === 0 ? 'no tokens\n' : tokenTable(list));
  });

  withAdminOptions(
    token
      .command('revoke')
      .description("Revoke a token; its live connections are closed (DELETE /v1/tokens/:id).")
      .argument('<id>', 'token id, as shown by `token list` (tok_...)')
      .addHelpText(
        'after',
        `
Example:
  $ herald-server token revoke tok_3f9c2a`,
      )
  ).action(async (id: string, flags: AdminFlags) => {
    const response = await connect(flags, io).request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
    if (flags.json === true) return printRaw(response, io);
    io.stdout(`revoked token ${id}\n`);
  });

  withAdminOptions(
    program
      .command('send')
      .description('Publish a notification (POST /v1/notifications).')
      .addOption(new Option('--user <name>', 'recipient user; repeat or comma-separate for several').argParser(collectList))
      .addOption(new Option('--topic <topic>', "recipient topic's subscribers; repeat or comma-separate for several").argParser(collectList))
      .addOption(new Option('--all', 'every user').conflicts(['user', 'topic']))
      .requiredOption('--title <text>', 'title, 1 to 256 characters')
      .option('--body <text>', 'body text, up to 4096 characters')
      .option('--priority <n>', '1 (lowest) to 5 (highest); default 3', parseWholeNumber)
      .option('--tag <tag>', 'tag; repeat for several', collect)
      .option('--link <url>', 'http(s) URL opened when the notification is clicked')
      .option('--icon <url>', 'http(s) URL of an icon')
      .option('--key <key>', 'replace key: a later notification with the same key replaces this one on every device')
      .option('--ttl <seconds>', 'expire after this many seconds', parseWholeNumber)
      .option('--deliver-at <time>', 'deliver later, at this ISO 8601 time (e.g. 2030-01-01T09:00:00Z)')
      .addHelpText(
        'after',
        `
The click URL is --link because --url names the server, as on every admin command.

Examples:
  $ herald-server send --user alice --title "Deploy finished" --body "v1.4.2 is live" --priority 4
  $ herald-server send --topic deploys --title "Rollback" --tag prod --tag urgent --link https://ci.example.com/1234
  $ herald-server send --all --title "Maintenance at 22:00 UTC"`,
      )
  ).action(async (flags: AdminFlags & SendFlags, command: Command) => {
    const to = flags.all === true ? { all: true } : { users: flags.user, topics: flags.topic };
    if (flags.all !== true && flags.user === undefined && flags.topic === undefined) {
      command.error('error: send needs recipients: --user NAME, --topic TOPIC or --all', { exitCode: ExitCode.usage });
    }
    const body = {
      to,
      title: flags.title,
      body: flags.body,
      priority: flags.priority,
      tags: flags.tag,
      url: flags.link,
      icon: flags.icon,
      key: flags.key,
      ttl: flags.ttl,
      deliverAt: flags.deliverAt,
    };
    const response = await connect(flags, io).request('POST', '/v1/notifications', body);
    if (flags.json === true) return printRaw(response, io);
    const id = field(response.data, 'id') ?? '?';
    const recipients = Number(field(response.data, 'recipients') ?? 0);
    const deliverAt = field(response.data, 'deliverAt');
    const whom = `${recipients} recipient${recipients === 1 ? '' : 's'}`;
    io.stdout(deliverAt === undefined ? `sent ${id} to ${whom}\n` : `scheduled ${id} for ${deliverAt} to ${whom}\n`);
  });

  return program;
}

interface SendFlags {
  user?: string[];
  topic?: string[];
  all?: boolean;
  title: string;
  body?: string;
  priority?: number;
  tag?: string[];
  link?: string;
  icon?: string;
  key?: string;
  ttl?: number;
  deliverAt?: string;
}

/** Adds the options every command that talks to a running server shares, after the command's own. */
function withAdminOptions(command: Command): Command {
  return command
    .option('--url <url>', `server URL (default: $HERALD_URL or ${defaultServerUrl})`)
    .option('--data <dir>', `data directory holding admin.token (default: $HERALD_DATA or ${defaults.data})`)
    .option('--json', 'print the raw JSON response')
    .addHelpText('after', adminHelp);
}

function parseWholeNumber(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a whole number.');
  return Number(value);
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...splitList(value)];
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

// ---------------------------------------------------------------------------------------------
// start

async function start(flags: Record<string, unknown>, io: CliIo): Promise<number> {
  const { config, file } = loadConfigWithSource({ flags, env: io.env, cwd: io.cwd });
  for (const name of unknownEnvVariables(io.env)) io.stderr(`warning: ignoring unknown variable ${name}\n`);

  // Loaded here, not at the top: admin commands and --help need none of the server's modules.
  const { workerCount, reportListening } = await import('./workers.js');
  const count = workerCount(config);
  if (count > 1 && cluster.isPrimary) return startPrimary(config, count, file, io);

  const { createServer } = await import('./index.js');
  const { createIpcBroker } = await import('./broker/ipc.js');
  const worker = cluster.isWorker;
  const server = await createServer(config, worker && config.redisUrl === undefined ? { broker: createIpcBroker() } : {});
  let url: string;
  try {
    ({ url } = await server.listen());
  } catch (error) {
    await server.close().catch(() => undefined);
    throw listenError(error, config);
  }
  server.logger.info({ url }, 'listening');
  if (worker) {
    reportListening(url);
    return serveAsWorker(server);
  }

  const stopped = onStopSignal(io, (resolve) => {
    void server.close().then(
      () => {
        io.stderr('herald-server: stopped\n');
        resolve(ExitCode.ok);
      },
      (error: unknown) => {
        io.stderr(`error: shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`);
        resolve(ExitCode.failure);
      },
    );
  });
  io.stderr(startBanner(config, url, file, server.adminTokenFile, io));
  return stopped;
}

/**
 * Calls `stop` on the first SIGINT or SIGTERM, and exits at once on the second.
 * Resolves with the exit code `stop` settles on.
 */
function onStopSignal(io: CliIo, stop: (resolve: (code: number) => void) => void, force: () => void = () => process.exit(ExitCode.failure)): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        io.stderr(`herald-server: ${signal} again; exiting without waiting\n`);
        force();
        return;
      }
      stopping = true;
      io.stderr(`herald-server: ${signal}: shutting down (send it again to force)\n`);
      stop(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/** `--workers N` in the primary: prepares the data once, forks the workers and supervises them. */
async function startPrimary(config: Config, count: number, file: string | undefined, io: CliIo): Promise<number> {
  const { prepareData } = await import('./index.js');
  const { superviseWorkers } = await import('./workers.js');
  const adminTokenFile = await prepareData(config);
  const supervisor = superviseWorkers(config, count, (line) => io.stderr(`herald-server: ${line}\n`));
  let url: string;
  try {
    url = await supervisor.ready;
  } catch (error) {
    await supervisor.stopped;
    throw new CliError(`${error instanceof Error ? error.message : String(error)}; see its output above`);
  }
  const stopped = onStopSignal(
    io,
    (resolve) => {
      supervisor.stop();
      void supervisor.stopped.then((code) => {
        io.stderr(code === 0 ? 'herald-server: stopped\n' : 'error: a worker did not stop cleanly\n');
        resolve(code);
      });
    },
    () => supervisor.stop(),
  );
  const fanout = config.redisUrl === undefined ? 'through this process' : 'through Redis';
  io.stderr(`herald-server: ${count} workers (pids ${Object.values(cluster.workers ?? {}).map((w) => String(w?.process.pid)).join(', ')}), fanning out ${fanout}\n`);
  io.stderr(startBanner(config, url, file, adminTokenFile, io));
  return stopped;
}

/**
 * A worker stops gracefully on the first SIGINT or SIGTERM (the terminal and the primary may both send one),
 * or when the primary is gone; the primary alone decides to force.
 */
function serveAsWorker(server: { close(): Promise<void> }): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      server.close().then(
        () => resolve(ExitCode.ok),
        () => resolve(ExitCode.failure),
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('disconnect', stop);
  });
}

function listenError(error: unknown, config: Config): Error {
  const where = `${config.host}:${config.port}`;
  switch (errorCode(error) ?? '') {
    case 'EADDRINUSE':
      return new CliError(`cannot listen on ${where}: the address is already in use (pick another with --port or HERALD_PORT)`);
    case 'EACCES':
      return new CliError(`cannot listen on ${where}: permission denied (ports below 1024 need privileges)`);
    case 'EADDRNOTAVAIL':
      return new CliError(`cannot listen on ${where}: no such local address (check --host or HERALD_HOST)`);
    default:
      return error instanceof Error ? error : new Error(String(error));
  }
}

/** What a person starting the server needs: where it is, where its admin token is, and what to do next. */
function startBanner(config: Config, url: string, file: string | undefined, adminTokenFile: string | undefined, io: CliIo): string {
  const tokenFile = path.resolve(io.cwd, config.data, 'admin.token');
  const lines = [`herald-server: listening on ${url}`];
  if (file !== undefined) lines.push(`herald-server: config from ${file}`);
  lines.push(`herald-server: data in ${path.resolve(io.cwd, config.data)}`);
  if (adminTokenFile !== undefined) {
    lines.push(`herald-server: admin token written to ${path.resolve(io.cwd, adminTokenFile)} (mode 0600; it grants everything, keep it private)`);
  } else if (config.adminToken !== undefined) {
    lines.push('herald-server: admin token from configuration (HERALD_ADMIN_TOKEN or adminToken)');
  } else {
    lines.push(`herald-server: admin token in ${tokenFile}`);
  }

  const target: string[] = [];
  if (url !== (io.env.HERALD_URL ?? defaultServerUrl)) target.push('--url', shellQuote(url));
  const defaultTokenFile = path.resolve(io.cwd, io.env.HERALD_DATA ?? defaults.data, 'admin.token');
  if (config.adminToken === undefined && tokenFile !== defaultTokenFile) target.push('--data', shellQuote(config.data));
  const options = target.length > 0 ? ` ${target.join(' ')}` : '';
  const bearer = config.adminToken === undefined ? `$(cat ${shellQuote(tokenFile)})` : '$HERALD_ADMIN_TOKEN';
  const publish = JSON.stringify({ to: { users: ['alice'] }, title: 'Hello from Herald' });
  lines.push(
    'next steps:',
    `  herald-server user add alice${options}`,
    `  herald-server token create --user alice${options}    # a device token for the desktop app`,
    `  curl -H "Authorization: Bearer ${bearer}" -H 'Content-Type: application/json' -d '${publish}' ${url}/v1/notifications`,
  );
  return `${lines.join('\n')}\n`;
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------
// Talking to a running server.

interface ApiResponse {
  status: number;
  text: string;
  /** The parsed JSON body; undefined when empty or not JSON. */
  data: unknown;
}

interface AdminClient {
  request(method: string, pathname: string, body?: unknown): Promise<ApiResponse>;
}

function connect(flags: AdminFlags, io: CliIo): AdminClient {
  const base = (flags.url ?? nonEmpty(io.env.HERALD_URL) ?? defaultServerUrl).replace(/\/+$/, '');
  if (!/^https?:\/\//i.test(base) || !URL.canParse(base)) {
    throw new CliError(`not an http(s) URL: ${base} (from ${flags.url === undefined ? 'HERALD_URL' : '--url'})`, ExitCode.usage);
  }
  const { token, source } = adminToken(flags, io);

  return {
    async request(method, pathname, body) {
      let response: Response;
      try {
        response = await fetch(`${base}${pathname}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(requestTimeoutMs),
        });
      } catch (error) {
        throw unreachable(base, error);
      }
      const text = await response.text();
      let data: unknown;
      try {
        data = text === '' ? undefined : JSON.parse(text);
      } catch {
        data = undefined;
      }
      if (response.ok) return { status: response.status, text, data };

      const problem = member(data, 'error');
      const code = field(problem, 'code');
      const message = field(problem, 'message');
      const summary = code === undefined ? `HTTP ${response.status} ${response.statusText} from ${base}${pathname}` : `${code}: ${message ?? ''}`;
      const hint = response.status === 401 ? `\nhint: the admin token came from ${source}; is it this server's?` : '';
      throw new CliError(`${summary}${hint}`);
    },
  };
}

/** The admin token and where it came from. The token itself is never printed. */
function adminToken(flags: AdminFlags, io: CliIo): { token: string; source: string } {
  const fromEnv = nonEmpty(io.env.HERALD_ADMIN_TOKEN);
  if (fromEnv !== undefined) return { token: fromEnv.trim(), source: 'HERALD_ADMIN_TOKEN' };
  const data = flags.data ?? nonEmpty(io.env.HERALD_DATA) ?? defaults.data;
  const file = path.resolve(io.cwd, data, 'admin.token');
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT') {
      throw new CliError(
        `no admin token: ${file} does not exist.\n` +
          "Set HERALD_ADMIN_TOKEN, or point --data (or HERALD_DATA) at the server's data directory; the first `herald-server start` writes admin.token there.",
        ExitCode.usage,
      );
    }
    throw new CliError(`cannot read the admin token from ${file}: ${code ?? String(error)}`, ExitCode.usage);
  }
  if (token === '') throw new CliError(`no admin token: ${file} is empty`, ExitCode.usage);
  return { token, source: file };
}

function unreachable(base: string, error: unknown): CliError {
  if (error instanceof Error && error.name === 'TimeoutError') return new CliError(`no answer from ${base} within ${requestTimeoutMs / 1000} s`);
  const cause = error instanceof Error ? error.cause : undefined;
  const code = errorCode(cause) ?? errorCode(cause instanceof AggregateError ? cause.errors[0] : undefined) ?? '';
  switch (code) {
    case 'ECONNREFUSED':
      return new CliError(
        `cannot connect to ${base}: connection refused.\n` +
          'Is the server running? Start it with `herald-server start`, or point --url (or HERALD_URL) at the right address.',
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`cannot connect to ${base}: unknown host`);
    default: {
      const reason = cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
      return new CliError(`cannot connect to ${base}: ${reason}`);
    }
  }
}

function printRaw(response: ApiResponse, io: CliIo): void {
  if (response.text !== '') io.stdout(response.text.endsWith('\n') ? response.text : `${response.text}\n`);
}

// ---------------------------------------------------------------------------------------------
// Output.

function describeToken(token: unknown): string {
  const kind = field(token, 'kind') ?? 'a';
  const id = field(token, 'id') ?? '';
  const owner = field(token, 'user');
  const app = field(token, 'name');
  const parts = [`${kind} token ${id}`];
  if (owner !== undefined) parts.push(`for user ${owner}`);
  if (app !== undefined) parts.push(`for app ${app}`);
  const topics = listField(token, 'topics');
  if (topics !== undefined) parts.push(`(topics: ${topics.join(', ')})`);
  const expires = field(token, 'expiresAt');
  parts.push(expires === undefined ? '(never expires)' : `(expires ${shortTime(expires)})`);
  return parts.join(' ');
}

function tokenTable(tokens: unknown[]): string {
  const header = ['ID', 'KIND', 'FOR', 'LABEL', 'TOPICS', 'CREATED', 'EXPIRES'];
  const rows = tokens.map((token) => {
    const owner = field(token, 'user');
    const app = field(token, 'name');
    const topics = listField(token, 'topics');
    const expires = field(token, 'expiresAt');
    const created = field(token, 'createdAt');
    return [
      field(token, 'id') ?? '?',
      field(token, 'kind') ?? '?',
      owner === undefined ? (app === undefined ? '-' : `app ${app}`) : `user ${owner}`,
      field(token, 'label') ?? '-',
      topics === undefined ? (field(token, 'kind') === 'app' ? 'any' : '-') : topics.join(','),
      created === undefined ? '-' : shortTime(created),
      expires === undefined ? 'never' : shortTime(expires),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** ISO time to the second, in UTC. */
function shortTime(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z');
}

/** A property of an unknown JSON value; undefined when absent or null. */
function member(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const found: unknown = (value as Record<string, unknown>)[key];
  return found ?? undefined;
}

/** A string, number or boolean property, as a string. */
function field(value: unknown, key: string): string | undefined {
  const found = member(value, key);
  if (typeof found === 'string') return found;
  if (typeof found === 'number' || typeof found === 'boolean') return String(found);
  return undefined;
}

function listField(value: unknown, key: string): string[] | undefined {
  const found = member(value, key);
  return Array.isArray(found) ? found.map(String) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Input.

async function readPassword(io: CliIo): Promise<string> {
  const { stdin } = io;
  if (stdin.isTTY === true && stdin.setRawMode !== undefined) {
    const password = await promptHidden('Password: ', io);
    if (password === '') throw new CliError('no password given', ExitCode.usage);
    if ((await promptHidden('Repeat password: ', io)) !== password) throw new CliError('the passwords do not match', ExitCode.usage);
    return password;
  }
  const line = await readFirstLine(stdin);
  if (line === undefined || line === '') throw new CliError('--password: expected the password on the first line of stdin', ExitCode.usage);
  return line;
}

/** Reads one line from a TTY in raw mode, echoing nothing. */
function promptHidden(prompt: string, io: CliIo): Promise<string> {
  const { stdin } = io;
  // Raw mode before the prompt: whatever is typed after the prompt appears must not be echoed.
  stdin.setRawMode?.(true);
  io.stderr(prompt);
  return new Promise((resolve, reject) => {
    let typed: string[] = [];
    const finish = () => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr('\n');
    };
    const onData = (chunk: Buffer | string) => {
      for (const character of chunk.toString()) {
        switch (character) {
          case '\r':
          case '\n':
          case '\u0004': // Ctrl-D
            finish();
            resolve(typed.join(''));
            return;
          case '\u0003': // Ctrl-C
            finish();
            reject(new CliError('cancelled', 130));
            return;
          case '\u007f':
          case '\b':
            typed = typed.slice(0, -1);
            break;
          default:
            typed.push(character);
        }
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

function readFirstLine(input: NodeJS.ReadableStream): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
    let answered = false;
    lines.once('line', (line) => {
      answered = true;
      lines.close();
      resolve(line);
    });
    lines.once('close', () => {
      if (!answered) resolve(undefined);
    });
    input.once('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

function isEntryModule(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // realpath: npm's bin is a symlink to dist/cli.js.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryModule()) {
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // A `--workers` worker is done: its IPC channel to the primary would keep it alive (and stderr is a pipe, written synchronously).
  if (cluster.isWorker) process.exit(code);
  // Exit normally so piped output drains, but do not let a stray handle keep a finished command alive.
  setTimeout(() => process.exit(code), 2_000).unref();
}
