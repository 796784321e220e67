/**
 * The Herald server of the reconnect-storm scenario, in its own process: `node --import tsx bench/storm-server.ts`.
 * It loads the server's modules, says `loaded`, and creates and starts the server only on `start`, so that the
 * runner can have the replacement process ready while the first one is still serving (a restart is then what
 * Herald itself takes, not the TypeScript loader). SIGTERM or `stop` closes the server gracefully (every socket
 * gets 4000) and exits. It measures its own event-loop delay with monitorEventLoopDelay from `ready` on.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createServer, resolveConfig, type HeraldServer } from '../server/src/index.js';
import { fromServer, stormChildLifetimeMs, toServer, type FromServer, type LagFigures } from './storm-protocol.js';

/** Sampling interval of the delay histograms, ms; the histogram's values include it, so it is subtracted. */
const resolutionMs = 10;

function tell(message: FromServer): void {
  if (process.connected) process.send?.(fromServer.parse(message));
}

const storm = monitorEventLoopDelay({ resolution: resolutionMs });
const second = monitorEventLoopDelay({ resolution: resolutionMs });

function beyondInterval(ns: number): number {
  return Math.max(0, ns / 1e6 - resolutionMs);
}

function figures(): LagFigures {
  return {
    p50: beyondInterval(storm.percentile(50)),
    p99: beyondInterval(storm.percentile(99)),
    max: beyondInterval(storm.max),
    mean: beyondInterval(storm.mean),
    samples: storm.count,
  };
}

let server: HeraldServer | undefined;
let ticker: NodeJS.Timeout | undefined;
let stopping = false;

function stop(): void {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  setTimeout(() => process.exit(1), 20_000).unref();
  (server?.close() ?? Promise.resolve()).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}

async function start(config: Record<string, unknown>): Promise<void> {
  try {
    server = await createServer(resolveConfig(config));
    const { url } = await server.listen();
    storm.enable();
    second.enable();
    ticker = setInterval(() => {
      tell({ type: 'tick', at: Date.now(), max: beyondInterval(second.max) });
      second.reset();
    }, 1_000);
    tell({ type: 'ready', url, at: Date.now() });
  } catch (error) {
    tell({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
    process.exit(1);
  }
}

setTimeout(() => process.exit(2), stormChildLifetimeMs).unref();
process.on('SIGTERM', stop);
process.on('disconnect', stop);
process.on('message', (raw: unknown) => {
  const message = toServer.parse(raw);
  switch (message.type) {
    case 'start':
      void start(message.config);
      return;
    case 'lag':
      tell({ type: 'lag', lag: figures() });
      if (message.reset) storm.reset();
      return;
    case 'stop':
      stop();
      return;
  }
});
tell({ type: 'loaded' });
