import { describe, expect, it } from 'vitest';
import { backoffDefaults, backoffDelay, backoffWindow, checkBackoff } from '../../protocol/src/backoff.js';

const draws = 20_000;

describe('full-jitter backoff', () => {
  it('doubles the window from 0.5 s per attempt up to the 30 s cap, and stays at the cap', () => {
    expect(backoffDefaults).toEqual({ baseMs: 500, capMs: 30_000 });
    expect(Array.from({ length: 8 }, (_, attempt) => backoffWindow(attempt))).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
    // 2 ** attempt overflows to Infinity long before this; the cap still holds.
    expect(backoffWindow(5_000)).toBe(30_000);
    expect(backoffWindow(3, { baseMs: 10, capMs: 1_000 })).toBe(80);
  });

  it.each(Array.from({ length: 9 }, (_, attempt) => attempt))('attempt %i: 20,000 draws are uniform on [0, window)', (attempt) => {
    const window = backoffWindow(attempt);
    const delays = Array.from({ length: draws }, () => backoffDelay(attempt));
    const mean = delays.reduce((sum, d) => sum + d, 0) / draws;
    // The mean of n uniform draws has a standard deviation of window / sqrt(12 n) ≈ 0.2 % of the window here;
    // 1.5 % is more than seven of them, so a correct implementation never fails this.
    expect(Math.abs(mean - window / 2)).toBeLessThan(0.015 * window);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(window);
    expect(Math.max(...delays)).toBeLessThanOrEqual(Math.min(backoffDefaults.capMs, backoffDefaults.baseMs * 2 ** attempt));
    // Nearly the whole window is used: full jitter, not "half the window plus jitter".
    expect(Math.min(...delays)).toBeLessThan(0.01 * window);
    expect(Math.max(...delays)).toBeGreaterThan(0.99 * window);
    // Each tenth of the window gets ~2,000 draws (σ ≈ 42); ±250 is about six σ.
    const deciles = new Array<number>(10).fill(0);
    for (const d of delays) {
      const decile = Math.floor((d / window) * 10);
      deciles[decile] = (deciles[decile] ?? 0) + 1;
    }
    expect(deciles).toHaveLength(10);
    for (const count of deciles) {
      expect(count).toBeGreaterThan(draws / 10 - 250);
      expect(count).toBeLessThan(draws / 10 + 250);
    }
  });

  it('never exceeds the cap, however many attempts failed', () => {
    for (const attempt of [6, 7, 10, 50, 1_000]) {
      const delays = Array.from({ length: draws }, () => backoffDelay(attempt));
      expect(Math.max(...delays)).toBeLessThan(30_000);
      expect(Math.abs(delays.reduce((sum, d) => sum + d, 0) / draws - 15_000)).toBeLessThan(0.015 * 30_000);
    }
  });

  it('maps the injected random source linearly onto the window', () => {
    expect(backoffDelay(0, backoffDefaults, () => 0)).toBe(0);
    expect(backoffDelay(2, backoffDefaults, () => 0.5)).toBe(1_000);
    expect(backoffDelay(9, backoffDefaults, () => 0.25)).toBe(7_500);
    expect(backoffDelay(1, { baseMs: 100, capMs: 150 }, () => 0.5)).toBe(75);
    const justUnderOne = 1 - Number.EPSILON;
    expect(backoffDelay(20, backoffDefaults, () => justUnderOne)).toBeLessThan(30_000);
  });

  it('refuses random sources outside [0, 1), attempts that are not counts, and impossible options', () => {
    for (const bad of [1, -0.1, Number.NaN]) expect(() => backoffDelay(0, backoffDefaults, () => bad)).toThrow(RangeError);
    for (const bad of [-1, 0.5, Number.NaN]) expect(() => backoffWindow(bad)).toThrow(RangeError);
    expect(() => {
      checkBackoff({ baseMs: 0, capMs: 1_000 });
    }).toThrow(/baseMs/);
    expect(() => {
      checkBackoff({ baseMs: 1_000, capMs: 500 });
    }).toThrow(/capMs/);
    expect(() => {
      checkBackoff({ baseMs: 500, capMs: Number.POSITIVE_INFINITY });
    }).toThrow(/capMs/);
    expect(() => {
      checkBackoff(backoffDefaults);
    }).not.toThrow();
  });
});
