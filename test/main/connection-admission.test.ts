import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { ConnectionState } from '@herald/protocol';
import { retryAfterMs } from '../../protocol/src/backoff.js';
import { createConnection, type Disconnect, type Timers } from '../../main/connection.js';
import { memoryCursor } from '../../main/cursor.js';
import { deviceFor, startServer } from '../helpers.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('Retry-After', () => {
  it('reads delay-seconds and HTTP dates, and nothing else', () => {
    const now = Date.parse('2026-11-26T10:00:00Z');
    expect(retryAfterMs('1', now)).toBe(1_000);
    expect(retryAfterMs(' 120 ', now)).toBe(120_000);
    expect(retryAfterMs('Thu, 26 Nov 2026 10:00:30 GMT', now)).toBe(30_000);
    // A date in the past asks for no wait at all.
    expect(retryAfterMs('Thu, 26 Nov 2026 09:00:00 GMT', now)).toBe(0);
    for (const bad of [undefined, '', '-1', '1.5', 'soon', '2026-11-26']) expect(retryAfterMs(bad, now), String(bad)).toBeUndefined();
  });
});

describe('a desktop connection refused by admission control', () => {
  it('waits Retry-After on a 503, stretched by the jitter, without growing its backoff, then gets in', async () => {
    // One handshake per second for the whole server; the test's first socket takes it.
    const t = await startServer({ admission: { perSecond: 1, burst: 1, maxPending: 0 } });
    cleanups.push(() => t.close());
    const { token } = await deviceFor(t, 'alice');
    const first = new WebSocket(t.wsUrl, { headers: { authorization: `Bearer ${token}` } });
    await new Promise((resolve, reject) => {
      first.once('open', resolve);
      first.once('error', reject);
    });
    cleanups.push(async () => {
      first.close();
      await new Promise((resolve) => first.once('close', resolve));
    });

    const backoffs: number[] = [];
    const timers: Timers = {
      setTimeout(callback, ms) {
        // The dead-link timer is heartbeat + grace (35 s); anything shorter is a backoff wait.
        if (ms < 20_000) backoffs.push(ms);
        return setTimeout(callback, ms);
      },
      clearTimeout(handle) {
        clearTimeout(handle as NodeJS.Timeout);
      },
    };
    const reports: unknown[] = [];
    const connection = createConnection({
      server: t.url,
      token,
      cursor: memoryCursor(),
      // Half the jitter: 1.5 × Retry-After. The exponential backoff (20 ms doubling) would draw far less.
      random: () => 0.5,
      backoffBaseMs: 20,
      backoffCapMs: 5_000,
      timers,
      report: (error) => reports.push(error),
    });
    cleanups.push(() => connection.close());
    const states: ConnectionState[] = [];
    const disconnects: Disconnect[] = [];
    connection.on('disconnect', (d) => disconnects.push(d));
    const connected = new Promise<void>((resolve) => {
      connection.on('state', (state) => {
        states.push(state);
        if (state === 'connected') resolve();
      });
    });
    const started = performance.now();
    connection.start();
    await connected;

    expect(disconnects[0]).toEqual({ code: 1006, reason: expect.any(String) as unknown, cause: 'network', status: 503, willRetry: true });
    // Every refusal said "Retry-After: 1", so every wait was 1 s stretched by half: the same after every refusal.
    expect(backoffs.length).toBe(disconnects.length);
    expect(backoffs.every((ms) => ms === 1_500)).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(backoffs.length * 1_500 - 50);
    expect(states).toEqual(['connecting', 'reconnecting', 'connected']);
    expect(reports).toEqual([]);
  });
});
