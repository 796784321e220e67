// The threaded store's worker threads.
// - writer: every write runs here, so COMMIT and its fsync never block the event loop that serves sockets.
//   Calls arriving in one turn share a group commit, as in the in-thread store.
// - checkpointer: copies the WAL back into the database on a connection of its own, so a checkpoint never
//   stalls the writer (a PASSIVE checkpoint runs alongside new commits).
import Database from 'better-sqlite3';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { defaults } from '../defaults.js';
import { openSqliteStore } from './sqlite.js';
import { sharedFields } from '../fanout.js';
import type { PublishOutcome, Store } from './store.js';
import type { Call, Reply, WorkerData } from './sqlite-threaded.js';

/** Serializes the frames' shared JSON here, off the serving thread, for every outcome that goes out live. */
function withShared(result: unknown): unknown {
  const outcomes = Array.isArray(result) ? (result as PublishOutcome[]) : [result as PublishOutcome];
  for (const outcome of outcomes) if (outcome.ok && outcome.deliveries.length > 0) outcome.shared = sharedFields(outcome.notification);
  return result;
}

function serveWrites(port: MessagePort, store: Store): void {
  let replies: Reply[] = [];
  const reply = (r: Reply) => {
    if (replies.length === 0) {
      setImmediate(() => {
        port.postMessage(replies);
        replies = [];
      });
    }
    replies.push(r);
  };
  port.on('message', (calls: Call[]) => {
    for (const { id, method, args } of calls) {
      const fn = store[method].bind(store) as (...a: unknown[]) => Promise<unknown>;
      fn(...args).then(
        (result) => reply({ id, result: method === 'publish' || method === 'publishBatch' || method === 'releaseDue' ? withShared(result) : result }),
        (error: unknown) => reply({ id, error: error instanceof Error ? error.message : String(error) }),
      );
    }
  });
}

const port = parentPort;
if (!port) throw new Error('sqlite-worker.ts runs as a worker thread');
const data = workerData as WorkerData;
if (data.role === 'checkpointer') {
  const db = new Database(data.options.file, { timeout: defaults.sqliteBusyTimeoutMs });
  setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), data.intervalMs);
} else {
  serveWrites(port, openSqliteStore(data.options));
}
port.postMessage('ready');
