/**
 * Holds idle authenticated connections for the memory scenario, in its own process so that no process
 * nears the 20,000 open-file limit: `node --import tsx bench/holder-process.ts '<options JSON>'`.
 * Connects `count` devices (users `first`…) from `localAddress`, reports progress, and keeps them open
 * until told to stop.
 */
import { z } from 'zod';
import { serveParent, tellParent } from './child.js';
import { Device, signJwt } from './device.js';
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
  })
  .parse(JSON.parse(process.argv[2] ?? '{}'));

const devices: Device[] = [];
const errors: string[] = [];
let failed = 0;

serveParent(() => {
  for (const device of devices) device.close();
  return Promise.resolve();
});

const report = setInterval(() => tellParent({ type: 'progress', synced: devices.length, failed }), 500);
let next = 0;
async function worker(): Promise<void> {
  while (next < options.count) {
    const user = userName(options.first + next++);
    try {
      devices.push(await Device.connect({ url: options.wsUrl, user, token: signJwt(user, options.jwtSecret), localAddress: options.localAddress, timeoutMs: 60_000 }));
    } catch (error) {
      failed++;
      if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
    }
  }
}
await Promise.all(Array.from({ length: Math.min(options.parallel, options.count) }, worker));
clearInterval(report);
tellParent({ type: 'done', synced: devices.length, failed, errors });
