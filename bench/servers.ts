/**
 * Starting the servers under test as child processes, and what every scenario needs around them:
 * a publishing token and a set of connected devices.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../server/src/index.js';
import { Child } from './child.js';
import { connectClient, type Client, type Protocol } from './clients.js';
import { connectAll, connectDevices, signJwt, type Device, type DeviceOptions } from './device.js';

/**
 * A server the bench runs: Herald; the bare relay (Herald's routes and frames, nothing else), the reference of
 * the performance issue; and the two peers of the side-by-side comparison in bench/peers/.
 */
export type Target = 'herald' | 'baseline' | 'ws' | 'socketio';

/** The servers of the side-by-side comparison: Herald and its two peers. */
export const peerTargets = ['herald', 'ws', 'socketio'] as const satisfies readonly Target[];
export type PeerTarget = (typeof peerTargets)[number];
export const peerNames: Record<PeerTarget, string> = { herald: 'Herald', ws: 'bare ws', socketio: 'Socket.IO' };

/** The protocol a target's devices speak: the bare relay speaks Herald's. */
export function protocolOf(target: Target): Protocol {
  return target === 'baseline' ? 'herald' : target;
}

const peerFiles: Record<'ws' | 'socketio', string> = { ws: './peers/ws-server.ts', socketio: './peers/socketio-server.ts' };

/** What every publishing scenario (throughput, latency) is run with. */
export interface ScenarioOptions {
  target: Target;
  /** Keep-alive publishing connections. */
  connections: number;
  /** Users, one connected device each; notification n goes to user n % users. */
  users: number;
  /** Publishes in the first `warmupMs` are sent but not counted. */
  warmupMs: number;
  durationMs: number;
  /** Herald settings over the bench defaults (e.g. `sqliteSynchronous`). */
  config?: ConfigInput;
  /** Directory for the server's `--cpu-prof` output, when profiling. */
  profileDir?: string;
}

export interface ServerOptions {
  /** Extra Herald settings, over the bench defaults below. */
  config?: ConfigInput;
  /** Run the server with `--cpu-prof`, writing its profile into this directory when it stops. */
  profileDir?: string;
  /** permessage-deflate on every message (Herald: threshold 0); off by default, as on every server. */
  compression?: boolean;
}

export interface RunningServer {
  target: Target;
  child: Child;
  url: URL;
  wsUrl: string;
  /** A token allowed to publish (an app token on Herald). */
  publishToken: string;
  jwtSecret: string;
  stop(): Promise<void>;
}

/**
 * The embedded default (SQLite WAL with synchronous=full, in-process broker) with what a benchmark must change:
 * rate limits off and quiet logs. JWT device auth is on so devices need no token round trip.
 */
function heraldConfig(data: string, adminToken: string, jwtSecret: string, extra: ConfigInput = {}): ConfigInput {
  return {
    port: 0,
    host: '127.0.0.1',
    data,
    adminToken,
    jwt: { secret: jwtSecret },
    logLevel: 'warn',
    rateLimits: false,
    // Holders connect at a fixed pace and do not retry; the storm scenario (storm.ts) runs with admission on.
    admission: false,
    sqliteSynchronous: 'full',
    ...extra,
  };
}

export async function startServer(target: Target, options: ServerOptions = {}): Promise<RunningServer> {
  const jwtSecret = randomBytes(32).toString('hex');
  const flags = ['--expose-gc', ...(options.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`])];
  if (target !== 'herald') {
    const file = target === 'baseline' ? './baseline-server.ts' : peerFiles[target];
    const child = Child.start(`${target} server`, new URL(file, import.meta.url), [JSON.stringify({ compression: options.compression ?? false })], flags);
    const { url } = await child.next('ready', 30_000);
    return { target, child, url: new URL(url), wsUrl: wsUrlOf(url, target), publishToken: 'none', jwtSecret, stop: () => child.stop() };
  }
  const data = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  const adminToken = randomBytes(32).toString('hex');
  const deflate: ConfigInput = options.compression ? { perMessageDeflate: { threshold: 0 } } : {};
  const config = heraldConfig(data, adminToken, jwtSecret, { ...deflate, ...options.config });
  const child = Child.start('herald server', new URL('./server-process.ts', import.meta.url), [JSON.stringify(config)], flags);
  try {
    const { url } = await child.next('ready', 30_000);
    const publishToken = await createAppToken(url, adminToken);
    return {
      target,
      child,
      url: new URL(url),
      wsUrl: wsUrlOf(url, target),
      publishToken,
      jwtSecret,
      async stop() {
        await child.stop();
        rmSync(data, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await child.stop();
    rmSync(data, { recursive: true, force: true });
    throw error;
  }
}

function wsUrlOf(url: string, target: Target): string {
  return url.replace(/^http/, 'ws') + (target === 'socketio' ? '/socket.io/?EIO=4&transport=websocket' : '/v1/stream');
}

/** Publishers are backends holding app tokens, so the bench publishes with one too. */
async function createAppToken(url: string, adminToken: string): Promise<string> {
  const response = await fetch(`${url}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'app', name: 'bench' }),
  });
  const body = (await response.json()) as { token?: unknown };
  if (response.status !== 201 || typeof body.token !== 'string') throw new Error(`creating an app token: ${response.status} ${JSON.stringify(body)}`);
  return body.token;
}

/** Bench user names: `u00000`, `u00001`, … */
export function userName(index: number): string {
  return `u${String(index).padStart(5, '0')}`;
}

/** One device per user for `users` users, connected and past `synced`. */
export function connectUsers(server: RunningServer, users: number, extra: Partial<DeviceOptions> = {}): Promise<Device[]> {
  return connectDevices(users, 50, (index) => ({ url: server.wsUrl, user: userName(index), token: signJwt(userName(index), server.jwtSecret), ...extra }));
}

/** As {@link connectUsers}, in the protocol of any target (Herald's devices, or a peer's clients). */
export function connectClients(server: RunningServer, users: number, extra: Partial<DeviceOptions> = {}): Promise<Client[]> {
  const protocol = protocolOf(server.target);
  return connectAll(users, 50, (index) => connectClient(protocol, { url: server.wsUrl, user: userName(index), token: signJwt(userName(index), server.jwtSecret), ...extra }));
}
