// Builds the desktop app into dist/: main (ESM) and preload (CommonJS, as sandboxed preloads must be) with
// esbuild, and the renderer with Vite. The installer carries dist/ and the native keytar module only.
import { build } from 'esbuild';
import { build as viteBuild } from 'vite';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`Usage: node scripts/build-app.mjs

Builds dist/main/index.js, dist/preload/index.cjs and dist/renderer/ (also served by the server as the web inbox).
Run by npm run build.`);
  process.exit(0);
}

const root = new URL('..', import.meta.url).pathname;
const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: true, logLevel: 'warning', absWorkingDir: root };

await Promise.all([
  build({
    ...common,
    entryPoints: ['main/index.ts'],
    outfile: 'dist/main/index.js',
    format: 'esm',
    // keytar is native; ws's optional speedups are native too and not shipped.
    external: ['electron', 'keytar', 'bufferutil', 'utf-8-validate'],
    // Bundled CommonJS dependencies may call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  }),
  build({ ...common, entryPoints: ['preload/index.ts'], outfile: 'dist/preload/index.cjs', format: 'cjs', external: ['electron'] }),
  viteBuild({ configFile: `${root}renderer/vite.config.ts`, logLevel: 'warn' }),
]);
