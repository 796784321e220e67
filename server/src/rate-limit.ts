import type { Rate } from './config.js';

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets keyed by client address or token id. Idle buckets are forgotten on `prune()`,
 * so memory stays bounded by the number of recently active keys.
 */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    readonly rate: Rate,
    readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`; returns 0 when allowed, else the milliseconds until one is available. */
  take(key: string): number {
    const now = this.now();
    const bucket = this.#refill(key, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - bucket.tokens) / this.rate.perSecond) * 1000);
  }

  /** Milliseconds until `key` may act again without taking a token (0 when it may now). */
  wait(key: string): number {
    const bucket = this.#refill(key, this.now());
    return bucket.tokens >= 1 ? 0 : Math.ceil(((1 - bucket.tokens) / this.rate.perSecond) * 1000);
  }

  /** Drops buckets that have refilled completely: they carry no state. */
  prune(): void {
    const now = this.now();
    for (const [key, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.rate.perSecond >= this.rate.burst) this.#buckets.delete(key);
    }
  }

  #refill(key: string, now: number): Bucket {
    let bucket = this.#buckets.get(key);
    if (!bucket) {
      bucket = { tokens: this.rate.burst, at: now };
      this.#buckets.set(key, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(this.rate.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate.perSecond);
    bucket.at = now;
    return bucket;
  }
}
