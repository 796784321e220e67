/**
 * Holds idle connections for the memory, scale and side-by-side scenarios, in its own process so that no
 * process nears the 20,000 open-file limit: `node --import tsx bench/holder-process.ts '<options JSON>'`.
 * Connects `count` clients (users `first`…) of one protocol from `localAddress`, reports progress, and keeps
 * them open until told to stop. It notes when each client receives a broadcast whose body starts with
 * `broadcast #<round>` (epoch ms, so the runner can compare it with its own clock), and counts heartbeats.
 */
import { z } from 'zod';
import { serveParent, tellParent, type ParentMessage } from './child.js';
import { bytesRead, connectClient, protocols, type Client } from './clients.js';
import { signJwt } from './device.js';
import { userName } from './servers.js';

const options = z
  .object({
    wsUrl: z.string(),
    jwtSecret: z.string(),
    first: z.int().min(0),
    count: z.int().min(1).max(5_000),
    localAddress: z.string(),
    /** Handshakes in flight at once. */
    parallel: z.int().min(1),
    protocol: z.enum(protocols).default('herald'),
    /** Offer permessage-deflate. */
    compression: z.boolean().default(false),
  })
  .parse(JSON.parse(process.argv[2] ?? '{}'));

const devices: Client[] = [];
const errors: string[] = [];
let failed = 0;

/** Broadcast round → arrival times (epoch ms) of its frames on this holder's devices. */
const arrivals = new Map<number, number[]>();
const broadcastBody = /^broadcast #(\d+)\b/;
const onNotification = (body: string, at: number) => {
  const round = broadcastBody.exec(body)?.[1];
  if (round === undefined) return;
  const times = arrivals.get(Number(round)) ?? [];
  times.push(performance.timeOrigin + at);
  arrivals.set(Number(round), times);
};

function answer(message: ParentMessage): void {
  if (message.type === 'count') {
    tellParent({
      type: 'counts',
      heartbeats: devices.reduce((sum, d) => sum + d.heartbeats, 0),
      notifications: devices.reduce((sum, d) => sum + d.notifications, 0),
      open: devices.filter((d) => d.ws.readyState === d.ws.OPEN).length,
      bytesRead: devices.reduce((sum, d) => sum + bytesRead(d), 0),
      problems: devices.flatMap((d) => d.problems).slice(0, 5),
    });
  } else if (message.type === 'collect') {
    const deadline = performance.now() + message.timeoutMs;
    const check = () => {
      const times = arrivals.get(message.round) ?? [];
      if (times.length >= devices.length || performance.now() > deadline) {
        arrivals.delete(message.round);
        tellParent({ type: 'arrivals', round: message.round, times, devices: devices.length });
      } else {
        setTimeout(check, 20);
      }
    };
    check();
  }
}

serveParent(() => {
  for (const device of devices) device.close();
  return Promise.resolve();
}, answer);

const report = setInterval(() => tellParent({ type: 'progress', synced: devices.length, failed }), 500);
let next = 0;
async function worker(): Promise<void> {
  while (next < options.count) {
    const user = userName(options.first + next++);
    try {
      const token = signJwt(user, options.jwtSecret);
      devices.push(
        await connectClient(options.protocol, { url: options.wsUrl, user, token, localAddress: options.localAddress, timeoutMs: 60_000, perMessageDeflate: options.compression, onNotification }),
      );
    } catch (error) {
      failed++;
      if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
    }
  }
}
await Promise.all(Array.from({ length: Math.min(options.parallel, options.count) }, worker));
clearInterval(report);
tellParent({ type: 'done', synced: devices.length, failed, errors });
