/**
 * Builds the history window / web inbox: `npx vite build --config renderer/vite.config.ts`.
 * Output: `<repo>/dist/renderer`, loaded from file:// by the desktop app and served at `/` by the server.
 *
 * A plain object rather than `defineConfig`: importing vite's types would pull Node's types into the
 * renderer's DOM-only program, and renderer/ may not import Node built-ins (so no `node:url` either).
 */

/** This folder as a file path; `import.meta.url` is the config file's own URL when Vite loads it. */
const here = decodeURIComponent(new URL('.', import.meta.url).pathname).replace(/^\/([A-Za-z]:)/, '$1');

export default {
  root: here,
  // Relative asset URLs work both from file:// and under any path the server is mounted at.
  base: './',
  publicDir: 'public',
  clearScreen: false,
  build: {
    outDir: '../dist/renderer',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The CSP allows no inline script or style: keep every script and stylesheet in its own file.
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    // Small images may be inlined (img-src allows data:); fonts or larger files would be separate files.
    assetsInlineLimit: 4096,
  },
};
