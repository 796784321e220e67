/**
 * The reconnect-storm scenario's own IPC messages, between the runner (bench/storm.ts), its server processes
 * (bench/storm-server.ts) and its device holders (bench/storm-process.ts). Kept apart from bench/child.ts: these
 * processes are forked directly and parse every message with the schemas below, on both sides.
 */
import { z } from 'zod';

/** Runner → storm server. */
export const toServer = z.discriminatedUnion('type', [
  /** Create the server with this config (JSON of a ConfigInput) and listen. */
  z.object({ type: z.literal('start'), config: z.record(z.string(), z.unknown()) }),
  /** Answer with `lag`: the event-loop delay since `ready` (or the last `lag` with `reset`). */
  z.object({ type: z.literal('lag'), reset: z.boolean() }),
  /** Close gracefully (as SIGTERM does) and exit. */
  z.object({ type: z.literal('stop') }),
]);
export type ToServer = z.infer<typeof toServer>;

/** Event-loop delay beyond the sampling interval, ms. */
export const lagFigures = z.object({ p50: z.number(), p99: z.number(), max: z.number(), mean: z.number(), samples: z.number() });
export type LagFigures = z.infer<typeof lagFigures>;

/** Storm server → runner. */
export const fromServer = z.discriminatedUnion('type', [
  /** Modules are loaded; waiting for `start`. */
  z.object({ type: z.literal('loaded') }),
  /** Listening at `url` since `at` (epoch ms). */
  z.object({ type: z.literal('ready'), url: z.string(), at: z.number() }),
  z.object({ type: z.literal('lag'), lag: lagFigures }),
  /** The worst delay of the last second, ms, sent every second while listening. */
  z.object({ type: z.literal('tick'), at: z.number(), max: z.number() }),
  z.object({ type: z.literal('failed'), message: z.string() }),
]);
export type FromServer = z.infer<typeof fromServer>;

/** Options of one device holder (its argv[2], JSON). */
export const holderOptions = z.object({
  /** The server's http base URL; devices derive `/v1/stream` from it, as the desktop app does. */
  server: z.string(),
  jwtSecret: z.string(),
  /** First user number; the holder's devices are users first … first + count − 1. */
  first: z.int().min(0),
  /** At most 5,000 sockets per process, well under the 20,000 open-file limit. */
  count: z.int().min(1).max(5_000),
  /** Loopback source address: each address has its own ~28,000 ephemeral ports. */
  localAddress: z.string(),
  /** The devices' first connects are spread over this long, ms. */
  rampMs: z.int().min(0),
});
export type HolderOptions = z.infer<typeof holderOptions>;

/** Runner → holder. */
export const toHolder = z.discriminatedUnion('type', [
  /** The storm starts now: from here on, a device that drops and syncs again counts as resumed. */
  z.object({ type: z.literal('mark') }),
  /** Answer with `counts`. */
  z.object({ type: z.literal('count') }),
  /** Answer with `report`. */
  z.object({ type: z.literal('report') }),
  z.object({ type: z.literal('stop') }),
]);
export type ToHolder = z.infer<typeof toHolder>;

/** One device's account of the storm. */
export const deviceReport = z.object({
  user: z.string(),
  /** Ids of every notification handed to the app, in order. */
  ids: z.array(z.string()),
  /** When it was synced again after its first drop past `mark` (epoch ms); absent if it was not. */
  resumedAt: z.number().optional(),
  /** Attempts that failed after `mark` (refused, reset, or 503). */
  failedAttempts: z.number(),
  /** Of those, upgrades answered 503 (admission control). */
  overloaded: z.number(),
  /** Codes of the `error` frames it got. */
  errors: z.array(z.string()),
});
export type DeviceReport = z.infer<typeof deviceReport>;

/** Holder → runner. */
export const fromHolder = z.discriminatedUnion('type', [
  /**
   * Every second: devices synced at least once, devices synced again after `mark`, notifications handed over, and
   * the worst event-loop delay of this process in the last second, ms.
   */
  z.object({ type: z.literal('progress'), synced: z.number(), resumed: z.number(), received: z.number(), lagMax: z.number() }),
  z.object({ type: z.literal('counts'), synced: z.number(), resumed: z.number(), received: z.number(), duplicates: z.number(), problems: z.array(z.string()) }),
  z.object({ type: z.literal('report'), devices: z.array(deviceReport), duplicates: z.number(), problems: z.array(z.string()) }),
  z.object({ type: z.literal('failed'), message: z.string() }),
]);
export type FromHolder = z.infer<typeof fromHolder>;

/** Every storm child exits on its own after this long, whatever happens to the runner, ms. */
export const stormChildLifetimeMs = 15 * 60 * 1000;
