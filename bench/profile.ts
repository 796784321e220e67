/**
 * Summarizes a V8 `.cpuprofile` (from `node --cpu-prof`) into the functions and the modules with the most
 * self time, which is where an optimization pays.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const cpuProfile = z.object({
  nodes: z.array(
    z.object({
      id: z.number(),
      callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number() }),
    }),
  ),
  startTime: z.number(),
  endTime: z.number(),
  samples: z.array(z.number()),
  timeDeltas: z.array(z.number()),
});

export interface ProfileEntry {
  name: string;
  /** Self time, ms. */
  selfMs: number;
  /** Share of the profile's non-idle time, percent. */
  percent: number;
}

export interface ProfileSummary {
  file: string;
  /** Non-idle sampled time, ms. */
  busyMs: number;
  /** Idle time (the event loop waiting), ms. */
  idleMs: number;
  functions: ProfileEntry[];
  modules: ProfileEntry[];
}

const root = fileURLToPath(new URL('..', import.meta.url));

function where(url: string): string {
  if (url === '') return '';
  const path = url.startsWith('file://') ? relative(root, fileURLToPath(url)) : url;
  return path.replace(/^node_modules\//, '');
}

/** The module a function belongs to: an npm package, a source file of this repo, a Node internal, or a V8 pseudo-frame. */
function moduleOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  return pkg ?? where(url);
}

/**
 * Reads the main thread's `.cpuprofile` in `dir` (the largest: tsx's module-loader thread writes a small one
 * too) and sums self time by function and by module.
 */
export function summarizeProfile(dir: string, top = 15): ProfileSummary {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size);
  const file = files[0];
  if (file === undefined) throw new Error(`no .cpuprofile in ${dir}`);
  const profile = cpuProfile.parse(JSON.parse(readFileSync(join(dir, file), 'utf8')));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  profile.samples.forEach((id, i) => {
    // timeDeltas[i] is the time before sample i; the time after it (until the next) belongs to it.
    const us = profile.timeDeltas[i + 1] ?? 0;
    const frame = nodes.get(id);
    if (!frame) return;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      return;
    }
    busyUs += us;
    const location = where(frame.url);
    const name = `${frame.functionName || '(anonymous)'}${location ? ` ${location}:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + us);
    const module = moduleOf(frame.url, frame.functionName);
    byModule.set(module, (byModule.get(module) ?? 0) + us);
  });
  const entries = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 1000), percent: Math.round((us / busyUs) * 1000) / 10 }));
  return { file: join(dir, file), busyMs: Math.round(busyUs / 1000), idleMs: Math.round(idleUs / 1000), functions: entries(byFunction), modules: entries(byModule) };
}

/** The summary as plain-text tables. */
export function formatProfile(summary: ProfileSummary): string {
  const table = (title: string, rows: ProfileEntry[]) =>
    [title, ...rows.map((r) => `  ${r.percent.toFixed(1).padStart(5)}%  ${String(r.selfMs).padStart(6)} ms  ${r.name}`)].join('\n');
  return [
    `profile ${summary.file}: ${summary.busyMs} ms busy, ${summary.idleMs} ms idle`,
    table('top self time by function (% of busy):', summary.functions),
    table('top self time by module (% of busy):', summary.modules),
  ].join('\n');
}
