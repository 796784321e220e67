// Bundles the server into dist/: @herald/protocol is inlined, npm dependencies stay external.
// The web inbox (renderer/, built by Vite into <repo>/dist/renderer) is copied to dist/web, where the bundle serves it.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { cp, readFile, rm } from 'node:fs/promises';

const pkg = JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((name) => name !== '@herald/protocol');

await build({
  // The SQLite writer thread is a second entry: the bundle starts it as dist/sqlite-worker.js.
  entryPoints: {
    cli: new URL('./src/cli.ts', import.meta.url).pathname,
    'sqlite-worker': new URL('./src/store/sqlite-worker.ts', import.meta.url).pathname,
  },
  outdir: new URL('./dist', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  external,
  banner: { js: '#!/usr/bin/env node' },
  // Both entries share code; keep each self-contained rather than splitting chunks.
  splitting: false,
  logLevel: 'warning',
});

const web = new URL('../dist/renderer/', import.meta.url);
const webOut = new URL('./dist/web/', import.meta.url);
await rm(webOut, { recursive: true, force: true });
if (existsSync(new URL('index.html', web))) {
  await cp(web, webOut, { recursive: true });
} else {
  console.warn('note: dist/renderer is not built, so the bundle answers 503 at / (build it first: npx vite build --config renderer/vite.config.ts)');
}
