import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaults } from '../defaults.js';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { Store } from './store.js';

/** Store methods that write; they run on the writer thread. Everything else reads on the calling thread. */
const writeMethods = [
  'createUser',
  'ensureUser',
  'insertToken',
  'revokeToken',
  'subscribe',
  'unsubscribe',
  'publish',
  'publishBatch',
  'releaseDue',
  'retract',
  'markRead',
  'deleteItem',
  'sweep',
] as const satisfies readonly (keyof Store)[];
export type WriteMethod = (typeof writeMethods)[number];

export interface Call {
  id: number;
  method: WriteMethod | 'close';
  args: unknown[];
}
export type Reply = { id: number; result: unknown } | { id: number; error: string };
export type WorkerData = { role: 'writer'; options: SqliteStoreOptions } | { role: 'checkpointer'; options: SqliteStoreOptions; intervalMs: number };


/** URL of tsx's ESM register API, resolved through its package exports (require.resolve would give the CJS build). */
function tsxEsmApi(): string {
  const manifest = createRequire(import.meta.url).resolve('tsx/package.json');
  const { exports } = JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  const entry = exports['./esm/api']?.import.default;
  if (entry === undefined) throw new Error('tsx has no ./esm/api export');
  return pathToFileURL(join(dirname(manifest), entry)).href;
}

/**
 * The bundle runs dist/sqlite-worker.js. From source (tests, tsx) the worker registers tsx first: a worker
 * does not inherit the parent's `--import` loaders on Node 20.
 */
async function startWorker(workerData: WorkerData): Promise<Worker> {
  const worker = spawnWorker(workerData);
  const [first] = (await Promise.race([once(worker, 'message'), once(worker, 'error').then(([error]) => Promise.reject(error as Error))])) as [unknown];
  if (first !== 'ready') throw new Error(`the SQLite ${workerData.role} thread did not start`);
  return worker;
}

function spawnWorker(workerData: WorkerData): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./sqlite-worker.js', import.meta.url), { workerData });
  const tsx = tsxEsmApi();
  const entry = new URL('./sqlite-worker.ts', import.meta.url).href;
  const code = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(code, { eval: true, workerData });
}

/**
 * The SQLite store with its writes on a worker thread. WAL lets this thread read while the writer commits,
 * and a write resolves only after the writer's commit, so a read that follows it sees it.
 */
export async function openThreadedSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  // Opening here first creates or migrates the schema before the writer starts, so the two never race for it.
  const reader = openSqliteStore(options);
  // Both threads start at once: a restart keeps the port closed while they load.
  const [writing, checkpointing] = await Promise.allSettled([
    startWorker({ role: 'writer', options: { ...options, walAutocheckpointPages: defaults.writerCheckpointPages } }),
    startWorker({ role: 'checkpointer', options, intervalMs: defaults.checkpointIntervalMs }),
  ]);
  if (writing.status === 'rejected' || checkpointing.status === 'rejected') {
    for (const thread of [writing, checkpointing]) if (thread.status === 'fulfilled') await thread.value.terminate();
    await reader.close();
    throw (writing.status === 'rejected' ? writing : (checkpointing as PromiseRejectedResult)).reason as Error;
  }
  const worker = writing.value;
  const checkpointer = checkpointing.value;

  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let outbox: Call[] = [];
  let failure: Error | undefined;

  /** Sends the outbox to the writer as one message; scheduled once, by the call that found the outbox empty. */
  function post(): void {
    const calls = outbox;
    outbox = [];
    worker.postMessage(calls);
  }
  worker.on('message', (replies: Reply[]) => {
    for (const r of replies) {
      const waiter = pending.get(r.id);
      pending.delete(r.id);
      if ('error' in r) waiter?.reject(new Error(r.error));
      else waiter?.resolve(r.result);
    }
  });
  worker.on('error', (error) => {
    failure = error;
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
  });

  /**
   * While the writer has none of our calls, a call leaves at the end of the current microtask checkpoint, so
   * its commit starts at once. While the writer is busy, the calls made meanwhile wait for the end of the
   * event-loop turn and leave as one message (one structured clone, one wake-up) for its next group commit:
   * a message per call cost the event loop about 15% more CPU per publish.
   */
  function call(method: WriteMethod | 'close', args: unknown[]): Promise<unknown> {
    if (failure) return Promise.reject(failure);
    const id = nextId++;
    if (outbox.length === 0) {
      if (pending.size === 0) queueMicrotask(post);
      else setImmediate(post);
    }
    outbox.push({ id, method, args });
    return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
  }

  const writes = Object.fromEntries(writeMethods.map((method) => [method, (...args: unknown[]) => call(method, args)])) as Pick<Store, WriteMethod>;
  let closing: Promise<void> | undefined;
  return {
    ...reader,
    ...writes,
    ping: async () => !failure && (await reader.ping()),
    close() {
      closing ??= (async () => {
        if (!failure) await call('close', []);
        await Promise.all([worker.terminate(), checkpointer.terminate()]);
        await reader.close();
      })();
      return closing;
    },
  };
}
