import type { Logger } from 'pino';
import type { Config } from './config.js';
import { HeraldError } from './errors.js';
import type { Fanout, Store } from './store/store.js';

/**
 * Background work on timers: releasing due `deliverAt` notifications and retention sweeps.
 * A tick never overlaps the previous one; stop() waits for the running one.
 */
export function startScheduler(deps: { config: Config; store: Store; fanout: (f: Fanout) => void; logger: Logger; now: () => number }) {
  const { config, store, logger, now } = deps;
  let running: Promise<void> = Promise.resolve();

  function every(ms: number, name: string, work: () => Promise<void>): NodeJS.Timeout {
    let busy = false;
    return setInterval(() => {
      if (busy) return;
      busy = true;
      running = work()
        .catch((error: unknown) => {
          // The store is down (PostgreSQL restarting): expected, and retried on the next tick.
          if (error instanceof HeraldError && error.status === 503) logger.warn({ err: error }, `${name} failed: store unavailable`);
          else logger.error({ err: error }, `${name} failed`);
        })
        .finally(() => (busy = false));
    }, ms).unref();
  }

  const release = async () => {
    for (const fanout of await store.releaseDue(now())) deps.fanout(fanout);
  };
  const sweep = async () => {
    const removed = await store.sweep(now(), { maxAgeMs: config.retentionDays * 24 * 3600 * 1000, maxPerUser: config.retentionPerUser });
    if (removed > 0) logger.info({ removed }, 'retention sweep');
  };
  const timers = [every(config.scheduleIntervalMs, 'scheduled delivery', release), every(config.sweepIntervalMs, 'retention sweep', sweep)];

  return {
    /** Runs the scheduled release once now (used at startup to deliver what fell due while down). */
    releaseNow: release,
    async stop(): Promise<void> {
      timers.forEach(clearInterval);
      await running;
    },
  };
}
