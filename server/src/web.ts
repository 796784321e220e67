import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from './config.js';
import { defaults } from './defaults.js';
import { HeraldError } from './errors.js';
import type { Reply, Router } from './http.js';

/** The policy of renderer/index.html's meta tag. Keep the two identical; the header adds what a meta tag cannot say. */
export const webContentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; connect-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'";

const securityHeaders: Record<string, string> = {
  'content-security-policy': `${webContentSecurityPolicy}; frame-ancestors 'none'`,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

/**
 * Text types only: a Reply carries a string body, and the build emits nothing else (Vite inlines small
 * images as data: URLs). Other files in the build are not served.
 */
const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Where the built web inbox is when `webRoot` is not configured: `dist/web` beside the bundle (server/build.mjs
 * copies it there), or the renderer's Vite output `<repo>/dist/renderer` when this file runs from source.
 */
export function defaultWebRoot(moduleUrl: string = import.meta.url): string {
  const fromSource = moduleUrl.endsWith('.ts');
  return fileURLToPath(new URL(fromSource ? '../../dist/renderer/' : './web/', moduleUrl));
}

interface WebFile {
  body: string;
  headers: Record<string, string>;
}

interface Snapshot {
  /** `mtimeMs:size` of index.html when the build was read; a rebuild changes it. */
  stamp: string;
  /** URL path → file. Only these paths are served, so no request can name a file outside the build. */
  files: Map<string, WebFile>;
}

function stampOf(file: string): string | undefined {
  try {
    const stat = statSync(file);
    return stat.isFile() ? `${stat.mtimeMs}:${stat.size}` : undefined;
  } catch {
    return undefined;
  }
}

function fileNames(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => entry.name);
  } catch {
    return [];
  }
}

function readBuild(root: string, stamp: string): Snapshot {
  const files = new Map<string, WebFile>();
  const add = (urlPath: string, file: string, cacheControl: string) => {
    const type = contentTypes[extname(file).toLowerCase()];
    if (type === undefined) return;
    files.set(urlPath, { body: readFileSync(file, 'utf8'), headers: { ...securityHeaders, 'content-type': type, 'cache-control': cacheControl } });
  };
  // Top-level files (index.html, favicon.svg) keep their names across builds, so browsers revalidate them.
  for (const name of fileNames(root)) add(name === 'index.html' ? '/' : `/${name}`, join(root, name), 'no-cache');
  // Vite names everything under assets/ by content hash: a new build never reuses a name.
  for (const name of fileNames(join(root, 'assets'))) add(`/assets/${name}`, join(root, 'assets', name), `public, max-age=${defaults.webAssetMaxAge}, immutable`);
  return { stamp, files };
}

/** `GET /` and the files of the built web inbox (renderer/), with the page's security headers. */
export function registerWeb(router: Router, deps: { config: Config }): void {
  const root = resolve(deps.config.webRoot ?? defaultWebRoot());
  const index = join(root, 'index.html');
  let snapshot: Snapshot | undefined;

  /** The build as of now: re-read when index.html changed, so a rebuild needs no restart. */
  function current(): Snapshot {
    const stamp = stampOf(index);
    if (stamp === undefined) {
      snapshot = undefined;
      throw new HeraldError(
        'unavailable',
        `the web inbox is not built: ${index} is missing. Build it with "npx vite build --config renderer/vite.config.ts" ` +
          '(the bundled server takes it from server/dist/web: run "npm run build --workspace @herald/server" afterwards), or set webRoot.',
        { 'retry-after': '60' },
      );
    }
    if (snapshot?.stamp !== stamp) snapshot = readBuild(root, stamp);
    return snapshot;
  }

  const serve = (path: string): Reply => {
    const file = current().files.get(path);
    if (file === undefined) throw new HeraldError('not_found', `no such file: ${path}`);
    return { status: 200, text: file.body, headers: file.headers };
  };

  router
    .add('GET', '/', () => serve('/'))
    .add('GET', '/favicon.svg', () => serve('/favicon.svg'))
    // `:name` never holds a `/` once routed, and only names in the snapshot are served.
    .add('GET', '/assets/:name', (ctx) => serve(`/assets/${ctx.params.name ?? ''}`));
}
