/**
 * Herald as it is deployed when it scales out: `herald-server start --workers N` processes (each a primary that
 * forks N node:cluster workers on one port) sharing one PostgreSQL schema and one Redis prefix. The bench gives
 * every run a schema and a prefix of its own on the shared PostgreSQL and Redis, and drops the schema afterwards.
 * Configuration goes through `HERALD_*` variables, as in a container. The worker pids come from the start banner,
 * so the bench can read their memory and CPU time from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { progress } from './stats.js';

/** The shared PostgreSQL and Redis of this machine (trust auth, no password). */
export const sharedStores = {
  postgres: 'postgres://postgres@127.0.0.1:5432/test',
  redis: 'redis://127.0.0.1:6379',
};

/** What every node of one cluster shares. */
export interface ClusterSpace {
  /** PostgreSQL schema, `herald_bench_<hex>`. */
  schema: string;
  /** Redis channel prefix, `herald-bench-<hex>:`. */
  redisPrefix: string;
  adminToken: string;
  jwtSecret: string;
}

export function newClusterSpace(): ClusterSpace {
  const id = randomBytes(6).toString('hex');
  return {
    schema: `herald_bench_${id}`,
    redisPrefix: `herald-bench-${id}:`,
    adminToken: randomBytes(32).toString('hex'),
    jwtSecret: randomBytes(32).toString('hex'),
  };
}

/** Drops the run's schema and everything in it. The Redis prefix needs nothing: Pub/Sub channels hold no keys. */
export async function dropClusterSpace(space: ClusterSpace): Promise<void> {
  const client = new pg.Client({ connectionString: sharedStores.postgres, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${space.schema} CASCADE`);
  } finally {
    await client.end();
  }
}

export interface NodeOptions {
  /** Shown in progress lines: `node A`. */
  name: string;
  workers: number;
  space: ClusterSpace;
  /** Further `HERALD_*` variables, e.g. `HERALD_HEARTBEAT_MS`. */
  env?: Record<string, string>;
  /** Server log lines copied to stderr before the rest are only counted. */
  logLines?: number;
}

export interface HeraldNode {
  name: string;
  url: URL;
  wsUrl: string;
  /** The primary, which serves nothing, and the workers, which serve everything. */
  primaryPid: number;
  workerPids: number[];
  /** Log lines the node wrote besides its banner (warnings and errors: the bench runs it at `warn`). */
  logLines(): number;
  stop(): Promise<void>;
  /** Last resort when the runner exits: SIGKILL to this node's own processes, by pid. */
  kill(): void;
}

const cliPath = fileURLToPath(new URL('../server/src/cli.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** A free TCP port on 127.0.0.1; a cluster with port 0 would work too, but the banner should not have to tell it. */
async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Starts `herald-server start --workers N` from source and resolves once its banner says every worker listens. */
export async function startNode(o: NodeOptions): Promise<HeraldNode> {
  const data = mkdtempSync(join(tmpdir(), 'herald-bench-node-'));
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...withoutHeraldVariables(process.env),
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: String(port),
    HERALD_DATA: data,
    HERALD_WORKERS: String(o.workers),
    HERALD_STORE_URL: sharedStores.postgres,
    HERALD_STORE_SCHEMA: o.space.schema,
    HERALD_REDIS_URL: sharedStores.redis,
    HERALD_REDIS_PREFIX: o.space.redisPrefix,
    HERALD_ADMIN_TOKEN: o.space.adminToken,
    HERALD_JWT_SECRET: o.space.jwtSecret,
    HERALD_RATE_LIMITS: 'off',
    HERALD_LOG_LEVEL: 'warn',
    ...o.env,
  };
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', cliPath, 'start'], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const primaryPid = child.pid;
  if (primaryPid === undefined) throw new Error(`${o.name}: could not start herald-server`);
  let workerPids: number[] = [];
  let url: string | undefined;
  let logged = 0;
  const maxCopied = o.logLines ?? 20;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  // The banner and the shutdown lines are expected; anything else (pino's JSON lines, a worker that died) is counted.
  const onLine = (line: string) => {
    const listening = /^herald-server: listening on (\S+)/.exec(line);
    const workers = /^herald-server: \d+ workers \(pids ([\d, ]+)\)/.exec(line);
    if (listening?.[1] !== undefined) url = listening[1];
    else if (workers?.[1] !== undefined) workerPids = workers[1].split(',').map((pid) => Number(pid.trim()));
    else if (/^(herald-server:|next steps:| {2})/.test(line) && !/^herald-server: worker /.test(line)) return;
    else {
      logged++;
      if (logged <= maxCopied) process.stderr.write(`[${o.name}] ${line}\n`);
      if (logged === maxCopied) process.stderr.write(`[${o.name}] (further log lines only counted)\n`);
    }
  };
  for (const stream of [child.stdout, child.stderr]) if (stream) createInterface({ input: stream }).on('line', onLine);

  const kill = () => {
    for (const pid of [...workerPids, primaryPid]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  };
  const stop = async () => {
    if (exitCode === undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(kill, 20_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(data, { recursive: true, force: true });
  };

  const deadline = performance.now() + 60_000;
  // With one worker, `start` serves in the process itself and prints no worker line.
  while (url === undefined || (o.workers > 1 && workerPids.length !== o.workers)) {
    if (exitCode !== undefined || performance.now() > deadline) {
      await stop();
      throw new Error(`${o.name}: herald-server ${exitCode === undefined ? 'did not print its banner within 60 s' : `exited with ${String(exitCode)}`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (o.workers === 1) workerPids = [primaryPid];
  progress('scale', `${o.name}: ${url}, ${o.workers} workers (pids ${workerPids.join(', ')})`);
  return {
    name: o.name,
    url: new URL(url),
    wsUrl: url.replace(/^http/, 'ws') + '/v1/stream',
    primaryPid,
    workerPids,
    logLines: () => logged,
    stop,
    kill,
  };
}

/** The runner's own `HERALD_*` settings must not leak into the nodes. */
function withoutHeraldVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('HERALD_')));
}

/** Open file descriptors of a process: its sockets, mostly. */
export function openFiles(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
