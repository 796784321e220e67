/**
 * Holds reconnecting devices for the reconnect-storm scenario, in its own process (at most 5,000, under the
 * 20,000 open-file limit): `node --import tsx bench/storm-process.ts '<options JSON>'`.
 * Each device is the desktop app's own connection (main/connection.ts: reconnecting-websocket over `ws`, the
 * StreamClient of @herald/protocol with full-jitter backoff, Retry-After as a floor, and cursor resume), with an
 * in-memory cursor and a JWT, connecting from `localAddress`. It records what each device hands to the app, and
 * when each one is synced again after the server went away.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createConnection, type Connection } from '../main/connection.js';
import { memoryCursor } from '../main/cursor.js';
import { signJwt } from './device.js';
import { userName } from './servers.js';
import { fromHolder, holderOptions, stormChildLifetimeMs, toHolder, type DeviceReport, type FromHolder } from './storm-protocol.js';

const options = holderOptions.parse(JSON.parse(process.argv[2] ?? '{}'));

function tell(message: FromHolder): void {
  if (process.connected) process.send?.(fromHolder.parse(message));
}

/** What one device saw. */
interface Tracked {
  user: string;
  connection: Connection;
  ids: string[];
  seen: Set<string>;
  seqs: Set<number>;
  synced: boolean;
  /** Dropped after `mark`: its next `synced` is the resume. */
  dropped: boolean;
  resumedAt: number | undefined;
  failedAttempts: number;
  overloaded: number;
  errors: string[];
}

const devices: Tracked[] = [];
const problems: string[] = [];
let marked = false;
let duplicates = 0;
let received = 0;

function problem(text: string): void {
  if (problems.length < 20) problems.push(text);
}

function track(index: number): Tracked {
  const user = userName(options.first + index);
  const connection = createConnection({
    server: options.server,
    token: signJwt(user, options.jwtSecret, 4 * 3600),
    cursor: memoryCursor(),
    localAddress: options.localAddress,
    report: (error) => {
      problem(`${user}: ${error instanceof Error ? error.message : String(error)}`);
    },
  });
  const device: Tracked = { user, connection, ids: [], seen: new Set(), seqs: new Set(), synced: false, dropped: false, resumedAt: undefined, failedAttempts: 0, overloaded: 0, errors: [] };
  connection.on('notification', (item) => {
    received++;
    if (device.seen.has(item.id) || device.seqs.has(item.seq)) duplicates++;
    device.seen.add(item.id);
    device.seqs.add(item.seq);
    device.ids.push(item.id);
  });
  connection.on('synced', () => {
    device.synced = true;
    if (device.dropped && device.resumedAt === undefined) device.resumedAt = Date.now();
  });
  connection.on('disconnect', (disconnect) => {
    if (!disconnect.willRetry) problem(`${user}: signed out by close ${disconnect.code} ${disconnect.reason}`);
    if (!marked) return;
    device.dropped = true;
    if (disconnect.cause === 'network') device.failedAttempts++;
    if (disconnect.status === 503) device.overloaded++;
  });
  connection.on('error', (error) => {
    device.errors.push(error.code);
    problem(`${user}: error frame ${error.code}: ${error.message}`);
  });
  return device;
}

function counts(): { synced: number; resumed: number } {
  let synced = 0;
  let resumed = 0;
  for (const device of devices) {
    if (device.synced) synced++;
    if (device.resumedAt !== undefined) resumed++;
  }
  return { synced, resumed };
}

function report(): DeviceReport[] {
  return devices.map((d) => ({
    user: d.user,
    ids: d.ids,
    ...(d.resumedAt === undefined ? {} : { resumedAt: d.resumedAt }),
    failedAttempts: d.failedAttempts,
    overloaded: d.overloaded,
    errors: d.errors,
  }));
}

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  setTimeout(() => process.exit(1), 10_000).unref();
  void Promise.all(devices.map((d) => d.connection.close())).then(() => process.exit(0));
}

setTimeout(() => process.exit(2), stormChildLifetimeMs).unref();
process.on('SIGTERM', stop);
process.on('disconnect', stop);
process.on('message', (raw: unknown) => {
  const message = toHolder.parse(raw);
  switch (message.type) {
    case 'mark':
      marked = true;
      return;
    case 'count':
      tell({ type: 'counts', ...counts(), received, duplicates, problems: problems.slice(0, 5) });
      return;
    case 'report':
      tell({ type: 'report', devices: report(), duplicates, problems });
      return;
    case 'stop':
      stop();
      return;
  }
});

// This process's own event-loop delay: a holder that lags sends its `hello`s late.
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
setInterval(() => {
  tell({ type: 'progress', ...counts(), received, lagMax: Math.max(0, lag.max / 1e6 - 10) });
  lag.reset();
}, 1_000).unref();

// The first connects are spread over rampMs, in slices every 20 ms, so they are not the storm being measured.
const sliceMs = 20;
const perSlice = Math.max(1, Math.ceil((options.count * sliceMs) / Math.max(options.rampMs, sliceMs)));
let started = 0;
const starter = setInterval(() => {
  for (const end = Math.min(options.count, started + perSlice); started < end; started++) {
    const device = track(started);
    devices.push(device);
    device.connection.start();
  }
  if (started >= options.count) clearInterval(starter);
}, sliceMs);
