/** What the Chromium tests share: a renderer build no older than its sources, and a headless Chromium. */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';

export const repo = fileURLToPath(new URL('../..', import.meta.url));
export const builtIndex = join(repo, 'dist/renderer/index.html');

/** Newest modification time under `dir`, in ms. */
function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/**
 * Builds the window (renderer and preload) with `scripts/build-app.mjs` when the build is missing or older than
 * its sources, as when a test file runs on its own; `npm test` has built it already.
 */
export async function ensureBuilt(): Promise<void> {
  const sources = Math.max(...['renderer', 'preload', 'protocol/src'].map((dir) => newest(join(repo, dir))));
  const built = [builtIndex, join(repo, 'dist/preload/index.cjs')];
  if (built.every((file) => existsSync(file) && statSync(file).mtimeMs >= sources)) return;
  await promisify(execFile)(process.execPath, [join(repo, 'scripts/build-app.mjs')], { cwd: repo });
}

/** Debian's Chromium where it is installed (CI), else Playwright's own browser. */
export function launchChromium(): Promise<Browser> {
  const executablePath = existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : undefined;
  return chromium.launch({
    ...(executablePath === undefined ? {} : { executablePath }),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}
