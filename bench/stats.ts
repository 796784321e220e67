/** Percentiles and small formatting helpers shared by the scenarios and the report. */

export interface Distribution {
  count: number;
  mean: number;
  min: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
}

/** Ascending copy of `values`. */
export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/** Nearest-rank percentile (`q` in 0..1) of an ascending array. */
export function percentile(ascending: Float64Array, q: number): number {
  if (ascending.length === 0) return Number.NaN;
  const rank = Math.min(ascending.length - 1, Math.max(0, Math.ceil(q * ascending.length) - 1));
  return ascending[rank] ?? Number.NaN;
}

export function distribution(ascending: Float64Array): Distribution {
  let sum = 0;
  for (const value of ascending) sum += value;
  return {
    count: ascending.length,
    mean: ascending.length === 0 ? Number.NaN : sum / ascending.length,
    min: ascending[0] ?? Number.NaN,
    p50: percentile(ascending, 0.5),
    p90: percentile(ascending, 0.9),
    p95: percentile(ascending, 0.95),
    p99: percentile(ascending, 0.99),
    p999: percentile(ascending, 0.999),
    max: ascending[ascending.length - 1] ?? Number.NaN,
  };
}

/** Rounds every number of a distribution to `digits` decimals, for JSON that people read. */
export function rounded(d: Distribution, digits = 3): Distribution {
  const r = (v: number) => Math.round(v * 10 ** digits) / 10 ** digits;
  return { count: d.count, mean: r(d.mean), min: r(d.min), p50: r(d.p50), p90: r(d.p90), p95: r(d.p95), p99: r(d.p99), p999: r(d.p999), max: r(d.max) };
}

/** Median of `values` with their min and max. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  const ascending = [...values].sort((a, b) => a - b);
  const middle = ascending.length / 2;
  const median = ascending.length % 2 === 1 ? (ascending[Math.floor(middle)] ?? Number.NaN) : ((ascending[middle - 1] ?? Number.NaN) + (ascending[middle] ?? Number.NaN)) / 2;
  return { median, min: ascending[0] ?? Number.NaN, max: ascending[ascending.length - 1] ?? Number.NaN };
}

/** A spread as `median (min–max)`, or the median alone when every run agrees; `-` when there is none. */
export function showSpread(s: Spread, digits = 0, unit = ''): string {
  if (!Number.isFinite(s.median)) return '-';
  const f = (v: number) => (digits === 0 ? thousands(v) : v.toFixed(digits));
  return s.min === s.max ? `${f(s.median)}${unit}` : `${f(s.median)}${unit} (${f(s.min)}–${f(s.max)})`;
}

/** `12345.6` → `12,346`. */
export function thousands(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every `everyMs` until it holds or `timeoutMs` passes; resolves with whether it held. */
export async function waitFor(condition: () => boolean, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Progress line on stderr; the results table alone goes to stdout. */
export function progress(scenario: string, message: string): void {
  process.stderr.write(`[${scenario}] ${message}\n`);
}
