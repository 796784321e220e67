// The SQLite writer thread: every write of the threaded store runs here, so COMMIT and its fsync never block
// the event loop that serves sockets. Calls arriving in one turn share a group commit, as in the in-thread store.
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { Store } from './store.js';
import type { Call, Reply, WriteMethod } from './sqlite-threaded.js';

const port = parentPort;
if (!port) throw new Error('sqlite-worker.ts runs as a worker thread');
const store: Store = openSqliteStore(workerData as SqliteStoreOptions);
let replies: Reply[] = [];

function reply(r: Reply): void {
  if (replies.length === 0) setImmediate(() => {
    const batch = replies;
    replies = [];
    port?.postMessage(batch);
  });
  replies.push(r);
}

function invoke(method: WriteMethod | 'close', args: unknown[]): Promise<unknown> {
  const fn = store[method].bind(store) as (...a: unknown[]) => Promise<unknown>;
  return fn(...args);
}

port.on('message', (calls: Call[]) => {
  for (const { id, method, args } of calls) {
    invoke(method, args).then(
      (result) => reply({ id, result }),
      (error: unknown) => reply({ id, error: error instanceof Error ? error.message : String(error) }),
    );
  }
});
port.postMessage('ready');
