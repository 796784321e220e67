/**
 * The `inbox` scenario: what a broadcast costs the SQLite store alone, without sockets, when users' inboxes are new
 * and when they already hold a history. The `broadcast` scenario starts every run from an empty database, where
 * each user's newest rows share pages with other users'; on a database in use, each user's newest rows sit on a page
 * of their own, and how many pages a broadcast writes is what its cost depends on (server/src/store/sqlite.ts,
 * `inboxTable`).
 *
 * It runs in the bench's own process, in one thread, the store as the server's writer thread runs it (WAL with
 * synchronous=full, group commit, settling). CPU comes from process.cpuUsage(), bytes written from /proc/self/io
 * (`wchar`: the WAL, and the checkpoints that copy it back into the database file).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishRequest } from '@herald/protocol';
import { openSqliteStore } from '../server/src/store/sqlite.js';
import { showSpread, spread, thousands, type Spread } from './stats.js';

export interface InboxSettings {
  users: number;
  /** Broadcasts published before the measured ones: each user's rows already in the inbox. */
  histories: number[];
  /** Broadcasts measured per run. */
  broadcasts: number;
  runs: number;
}

export const fullInbox: InboxSettings = { users: 5_000, histories: [0, 200], broadcasts: 50, runs: 3 };
export const quickInbox: InboxSettings = { users: 1_000, histories: [0, 100], broadcasts: 20, runs: 1 };

export interface InboxRun {
  cpuUsPerDelivery: number;
  bytesPerBroadcast: number;
  msPerBroadcast: number;
}

export interface InboxResult {
  users: number;
  history: number;
  broadcasts: number;
  runs: InboxRun[];
  cpuUsPerDelivery: Spread;
  mbPerBroadcast: Spread;
}

/** Bytes this process has passed to write(2) and pwrite(2) so far. */
function bytesWritten(): number {
  return Number(/^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? Number.NaN);
}

/** The broadcast scenario's message: 200 bytes of body. */
const request = publishRequest.parse({ to: { all: true }, title: 'Broadcast', body: 'x'.repeat(200) });

async function inboxRun(users: number, history: number, broadcasts: number): Promise<InboxRun> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-inbox-'));
  const store = openSqliteStore({ file: join(dir, 'herald.db') });
  try {
    for (let i = 0; i < users; i++) await store.ensureUser(`user-${i}`, 1);
    let n = 0;
    const broadcast = async () => {
      const outcome = await store.publish({ id: `n${n++}`, request, publisher: 'bench', now: Date.now() });
      if (!outcome.ok || outcome.deliveries.length !== users) throw new Error(`broadcast ${n} reached ${outcome.ok ? outcome.deliveries.length : 0} of ${users} users`);
    };
    for (let i = 0; i < history; i++) await broadcast();
    const bytes = bytesWritten();
    const cpu = process.cpuUsage();
    const started = performance.now();
    for (let i = 0; i < broadcasts; i++) await broadcast();
    const elapsed = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return {
      cpuUsPerDelivery: (used.user + used.system) / (broadcasts * users),
      bytesPerBroadcast: (bytesWritten() - bytes) / broadcasts,
      msPerBroadcast: elapsed / broadcasts,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runInbox(settings: InboxSettings, log: (line: string) => void): Promise<InboxResult[]> {
  const results: InboxResult[] = [];
  for (const history of settings.histories) {
    const runs: InboxRun[] = [];
    for (let run = 1; run <= settings.runs; run++) {
      log(`${thousands(settings.users)} users with ${history} rows each: run ${run} of ${settings.runs}`);
      runs.push(await inboxRun(settings.users, history, settings.broadcasts));
    }
    results.push({
      users: settings.users,
      history,
      broadcasts: settings.broadcasts,
      runs,
      cpuUsPerDelivery: spread(runs.map((r) => r.cpuUsPerDelivery)),
      mbPerBroadcast: spread(runs.map((r) => r.bytesPerBroadcast / 1e6)),
    });
  }
  return results;
}

export function inboxMarkdown(results: InboxResult[]): string {
  const lines = [
    '| users | rows per user before | broadcasts measured | runs | store CPU per delivery, µs | MB written per broadcast | ms per broadcast |',
    '|---|---|---|---|---|---|---|',
    ...results.map((r) => {
      const ms = spread(r.runs.map((run) => run.msPerBroadcast));
      return `| ${thousands(r.users)} | ${r.history} | ${r.broadcasts} | ${r.runs.length} | ${showSpread(r.cpuUsPerDelivery, 2)} | ${showSpread(r.mbPerBroadcast, 1)} | ${showSpread(ms, 1)} |`;
    }),
  ];
  return `${lines.join('\n')}\n`;
}
