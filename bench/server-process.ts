/**
 * The Herald server under test, in its own process: `node --import tsx bench/server-process.ts '<config JSON>'`.
 * Uses createServer/listen directly, so the bench does not depend on the CLI. Reports `ready` with its URL
 * over IPC; on `gc` (needs --expose-gc) it collects garbage and reports its memory.
 */
import { createServer, resolveConfig, type HeraldServer } from '../server/src/index.js';
import { serveParent, tellParent } from './child.js';

let server: HeraldServer | undefined;

serveParent(async () => {
  await server?.close();
});

try {
  server = await createServer(resolveConfig(JSON.parse(process.argv[2] ?? '{}')));
  const { url } = await server.listen();
  tellParent({ type: 'ready', url });
} catch (error) {
  tellParent({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}
