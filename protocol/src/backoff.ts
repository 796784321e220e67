/**
 * Reconnect delays: exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
 * Jitter"). Every attempt waits a uniform random time in [0, min(cap, base · 2^attempt)), so thousands of
 * desktops dropped by one server restart spread their reconnects over the window instead of arriving together.
 */

export interface BackoffOptions {
  /** Window of the first retry (attempt 0), ms. Default 500. */
  baseMs: number;
  /** Largest window, ms. Default 30_000: a desktop is never more than 30 s behind a server that came back. */
  capMs: number;
}

export const backoffDefaults: BackoffOptions = { baseMs: 500, capMs: 30_000 };

/** Throws a RangeError for options that cannot describe a backoff. */
export function checkBackoff(options: BackoffOptions): void {
  if (!(Number.isFinite(options.baseMs) && options.baseMs > 0)) throw new RangeError(`backoff baseMs must be a positive number of ms, not ${options.baseMs}`);
  if (!(Number.isFinite(options.capMs) && options.capMs >= options.baseMs)) {
    throw new RangeError(`backoff capMs (${options.capMs}) must be a finite number of ms no smaller than baseMs (${options.baseMs})`);
  }
}

/** The upper bound of the delay before retry number `attempt` (0-based): min(cap, base · 2^attempt), ms. */
export function backoffWindow(attempt: number, options: BackoffOptions = backoffDefaults): number {
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError(`attempt must be a non-negative integer, not ${attempt}`);
  // 2 ** attempt becomes Infinity past 1023, and min() then picks the cap.
  return Math.min(options.capMs, options.baseMs * 2 ** attempt);
}

/**
 * The delay before retry number `attempt` (0-based), ms: uniform in [0, backoffWindow(attempt)).
 * `random` returns a number in [0, 1), like Math.random (the default); tests pass their own.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = backoffDefaults, random: () => number = Math.random): number {
  const r = random();
  if (!(r >= 0 && r < 1)) throw new RangeError(`random() must return a number in [0, 1), not ${r}`);
  return r * backoffWindow(attempt, options);
}

/**
 * The wait a server asked for in a `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP date), ms;
 * undefined when the header is absent or unreadable. `now` is epoch ms, for the date form.
 */
export function retryAfterMs(value: string | undefined, now: number = Date.now()): number | undefined {
  const text = value?.trim() ?? '';
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = /[a-z]/i.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}
