/**
 * Server-wide admission control of WebSocket upgrades: a token bucket over all client addresses together, and a
 * cap on handshakes in flight. After a restart every device reconnects at once; each handshake costs a token
 * check, a store read and a replay, and unbounded they queue seconds of work in the event loop. Refused devices
 * get 503 `overloaded` with Retry-After (stream.ts) and come back after their backoff.
 */
import type { Config } from './config.js';
import { defaults } from './defaults.js';
import { RateLimiter } from './rate-limit.js';

export type AdmissionOptions = Exclude<Config['admission'], false>;

/** An admitted handshake. `release()` ends it (synced, waiting for the client, or closed); calls after the first do nothing. */
export interface Ticket {
  release: () => void;
}

/** A refusal: the seconds for `Retry-After` (at least 1), and which limit refused. */
export interface Refusal {
  retryAfter: number;
  limit: 'rate' | 'pending';
}

/** Key of the one bucket in the RateLimiter: every address shares it. */
const everyone = '*';

export class Admission {
  readonly #bucket: RateLimiter | undefined;
  readonly #maxPending: number;
  #pending = 0;

  constructor(options: AdmissionOptions, now: () => number = Date.now) {
    this.#bucket = options.perSecond > 0 ? new RateLimiter({ perSecond: options.perSecond, burst: options.burst }, now) : undefined;
    this.#maxPending = options.maxPending;
  }

  /** Handshakes admitted and not yet released. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Admits one handshake, or refuses it. The pending cap is checked first, so a refusal for it takes no token
   * from the bucket.
   */
  admit(): Ticket | Refusal {
    if (this.#maxPending > 0 && this.#pending >= this.#maxPending) return { retryAfter: defaults.admissionRetryAfter, limit: 'pending' };
    const wait = this.#bucket?.take(everyone) ?? 0;
    if (wait > 0) return { retryAfter: Math.max(1, Math.ceil(wait / 1000)), limit: 'rate' };
    this.#pending++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#pending--;
      },
    };
  }
}

/** The admission control the config asks for, or undefined when it is off (both parts 0 count as off). */
export function createAdmission(config: Config, now: () => number): Admission | undefined {
  const options = config.admission;
  if (options === false || (options.perSecond === 0 && options.maxPending === 0)) return undefined;
  return new Admission(options, now);
}
