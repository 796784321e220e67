/**
 * SVG charts written by hand, so the docs need no charting dependency: a latency percentile plot, latency
 * against a rate, and a horizontal bar chart, each with a dashed target line.
 */
import { percentile } from './stats.js';

const width = 760;
const font = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const palette = ['#2563eb', '#f59e0b', '#64748b', '#16a34a', '#9333ea'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function svg(height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${font} font-size="12">`,
    `<title>${escape(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600" fill="#111827">${escape(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

function formatMs(ms: number): string {
  return ms >= 1 ? `${Number(ms.toPrecision(3))} ms` : `${Number((ms * 1000).toPrecision(3))} µs`;
}

export interface LatencySeries {
  name: string;
  /** Ascending latencies, ms. */
  values: Float64Array;
}

/**
 * Latency by percentile. The x axis counts nines (0, 90, 99, 99.9, 99.99 %), so the tail gets as much room as
 * the median; the y axis is logarithmic, so a 1 ms median and a 100 ms tail both stay readable.
 */
export function latencyChart(title: string, series: LatencySeries[], targetMs: number | undefined): string {
  const height = 420;
  const left = 70;
  const right = width - 190;
  const top = 44;
  const bottom = height - 52;
  const maxNines = Math.min(4, Math.max(2, Math.floor(Math.log10(Math.max(...series.map((s) => s.values.length), 100)))));
  const points = series.map((s) =>
    Array.from({ length: 241 }, (_, i) => {
      const nines = (i / 240) * maxNines;
      return { nines, ms: Math.max(percentile(s.values, 1 - 10 ** -nines), 1e-3) };
    }),
  );
  const all = points.flat().map((p) => p.ms);
  if (targetMs !== undefined) all.push(targetMs);
  const low = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const x = (nines: number) => left + (nines / maxNines) * (right - left);
  const y = (ms: number) => bottom - ((Math.log10(ms) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))) * (bottom - top);
  const body: string[] = logGrid(low, high, y, left, right);
  for (let nines = 0; nines <= maxNines; nines++) {
    const label = nines === 0 ? '0%' : `${(100 - 100 * 10 ** -nines).toFixed(Math.max(0, nines - 2))}%`;
    body.push(`<line x1="${x(nines)}" x2="${x(nines)}" y1="${top}" y2="${bottom}" stroke="#e5e7eb"/>`);
    body.push(`<text x="${x(nines)}" y="${bottom + 18}" text-anchor="middle" fill="#4b5563">${label}</text>`);
  }
  body.push(`<text x="${(left + right) / 2}" y="${height - 12}" text-anchor="middle" fill="#111827">percentile</text>`);
  body.push(`<text transform="translate(16 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#111827">publish → deliver latency (log scale)</text>`);
  if (targetMs !== undefined) {
    body.push(`<line x1="${left}" x2="${right}" y1="${y(targetMs).toFixed(1)}" y2="${y(targetMs).toFixed(1)}" stroke="#dc2626" stroke-dasharray="6 4" stroke-width="1.5"/>`);
    body.push(`<line x1="${x(2)}" x2="${x(2)}" y1="${top}" y2="${bottom}" stroke="#dc2626" stroke-dasharray="2 4"/>`);
    body.push(`<text x="${left + 6}" y="${(y(targetMs) - 6).toFixed(1)}" fill="#dc2626">target: p99 ≤ ${escape(formatMs(targetMs))}</text>`);
  }
  points.forEach((line, i) => {
    const color = palette[i % palette.length] ?? '#000000';
    const path = line.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p.nines).toFixed(1)},${y(p.ms).toFixed(1)}`).join(' ');
    body.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    const legendY = top + 40 + i * 34;
    const name = series[i]?.name ?? '';
    const p99 = percentile(series[i]?.values ?? new Float64Array(), 0.99);
    body.push(`<line x1="${right + 8}" x2="${right + 28}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="3"/>`);
    body.push(`<text x="${right + 34}" y="${legendY + 4}" fill="#111827">${escape(name)}</text>`);
    body.push(`<text x="${right + 34}" y="${legendY + 18}" fill="#4b5563">p99 ${escape(formatMs(p99))}</text>`);
  });
  body.push(`<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#9ca3af"/>`);
  return svg(height, title, body);
}

/** Horizontal grid lines and labels of a logarithmic ms axis from `low` to `high` (powers of ten): 1, 2 and 5 per decade. */
function logGrid(low: number, high: number, y: (ms: number) => number, left: number, right: number): string[] {
  const lines: string[] = [];
  for (let decade = low; decade <= high * 1.0001; decade *= 10) {
    for (const step of [1, 2, 5]) {
      const ms = decade * step;
      if (ms > high * 1.0001) break;
      lines.push(`<line x1="${left}" x2="${right}" y1="${y(ms).toFixed(1)}" y2="${y(ms).toFixed(1)}" stroke="${step === 1 ? '#d1d5db' : '#f1f5f9'}"/>`);
      lines.push(`<text x="${left - 8}" y="${(y(ms) + 4).toFixed(1)}" text-anchor="end" fill="#4b5563">${escape(formatMs(ms))}</text>`);
    }
  }
  return lines;
}

/** The largest of 1, 2 or 5 × 10ⁿ that cuts `span` into at least four parts: the step of a linear axis. */
function niceStep(span: number): number {
  const decade = 10 ** Math.floor(Math.log10(span / 4));
  return [5, 2, 1].map((m) => m * decade).find((step) => span / step >= 4) ?? decade;
}

export interface LineSeries {
  name: string;
  /** Points in any order (drawn in x order): `x` in the x axis's unit, `ms` a latency in ms. */
  points: { x: number; ms: number }[];
  /** Index into the palette. Default: the series' index. */
  color?: number;
  /** Dashed with hollow dots, e.g. for a median drawn under its tail in the same colour. */
  dashed?: boolean;
}

/** A vertical dotted line at `x`, such as a server's knee, in a series' palette colour; its label goes in the legend. */
export interface XMarker {
  x: number;
  label: string;
  color?: number;
}

/**
 * Latency against a quantity such as the publish rate: one line with dots per series, a linear x axis from 0,
 * a logarithmic ms axis as in {@link latencyChart}, a legend, optional vertical markers, and a dashed line at
 * `targetMs` when there is one.
 */
export function lineChart(title: string, xLabel: string, series: LineSeries[], targetMs: number | undefined, markers: XMarker[] = []): string {
  const height = 440;
  const left = 70;
  const right = width - 200;
  const top = 44;
  const bottom = height - 52;
  const all = series.flatMap((s) => s.points.map((p) => Math.max(p.ms, 1e-3)));
  if (targetMs !== undefined) all.push(targetMs);
  if (all.length === 0) all.push(1);
  const low = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const high = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const xs = [...series.flatMap((s) => s.points.map((p) => p.x)), ...markers.map((m) => m.x)];
  const step = niceStep(Math.max(...xs, 1) * 1.05);
  const xMax = Math.ceil((Math.max(...xs, 1) * 1.05) / step) * step;
  const x = (value: number) => left + (value / xMax) * (right - left);
  const y = (ms: number) => bottom - ((Math.log10(Math.max(ms, 1e-3)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))) * (bottom - top);
  const body: string[] = logGrid(low, high, y, left, right);
  for (let value = 0; value <= xMax * 1.0001; value += step) {
    body.push(`<line x1="${x(value).toFixed(1)}" x2="${x(value).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="#e5e7eb"/>`);
    body.push(`<text x="${x(value).toFixed(1)}" y="${bottom + 18}" text-anchor="middle" fill="#4b5563">${Math.round(value).toLocaleString('en-US')}</text>`);
  }
  body.push(`<text x="${(left + right) / 2}" y="${height - 12}" text-anchor="middle" fill="#111827">${escape(xLabel)}</text>`);
  body.push(`<text transform="translate(16 ${(top + bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#111827">publish → deliver latency (log scale)</text>`);
  const colorOf = (index: number | undefined, fallback: number) => palette[(index ?? fallback) % palette.length] ?? '#000000';
  markers.forEach((marker, i) => {
    const color = colorOf(marker.color, i);
    body.push(`<line x1="${x(marker.x).toFixed(1)}" x2="${x(marker.x).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="${color}" stroke-dasharray="2 3" stroke-width="1.5"/>`);
    // Labelled in the legend column: markers at nearby x would hide each other's labels in the plot.
    const legendY = top + 20 + (series.length + i) * 24 + 8;
    body.push(`<line x1="${right + 18}" x2="${right + 18}" y1="${legendY - 8}" y2="${legendY + 8}" stroke="${color}" stroke-dasharray="2 3" stroke-width="1.5"/>`);
    body.push(`<text x="${right + 34}" y="${legendY + 4}" fill="#111827">${escape(marker.label)}</text>`);
  });
  if (targetMs !== undefined) {
    body.push(`<line x1="${left}" x2="${right}" y1="${y(targetMs).toFixed(1)}" y2="${y(targetMs).toFixed(1)}" stroke="#dc2626" stroke-dasharray="6 4" stroke-width="1.5"/>`);
    body.push(`<text x="${left + 6}" y="${(y(targetMs) - 6).toFixed(1)}" fill="#dc2626">target: ${escape(formatMs(targetMs))}</text>`);
  }
  series.forEach((s, i) => {
    const color = colorOf(s.color, i);
    const points = [...s.points].sort((a, b) => a.x - b.x);
    const dash = s.dashed ? ' stroke-dasharray="5 4"' : '';
    const path = points.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p.x).toFixed(1)},${y(p.ms).toFixed(1)}`).join(' ');
    if (points.length > 1) body.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${dash}/>`);
    for (const p of points) body.push(`<circle cx="${x(p.x).toFixed(1)}" cy="${y(p.ms).toFixed(1)}" r="3" fill="${s.dashed ? '#ffffff' : color}" stroke="${color}" stroke-width="1.5"/>`);
    const legendY = top + 20 + i * 24;
    body.push(`<line x1="${right + 8}" x2="${right + 28}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"${dash}/>`);
    body.push(`<circle cx="${right + 18}" cy="${legendY}" r="3" fill="${s.dashed ? '#ffffff' : color}" stroke="${color}" stroke-width="1.5"/>`);
    body.push(`<text x="${right + 34}" y="${legendY + 4}" fill="#111827">${escape(s.name)}</text>`);
  });
  body.push(`<rect x="${left}" y="${top}" width="${right - left}" height="${bottom - top}" fill="none" stroke="#9ca3af"/>`);
  return svg(height, title, body);
}

export interface Bar {
  label: string;
  value: number;
  /** Shown after the bar instead of the plain value. */
  text?: string;
  /** Index into the palette. */
  color?: number;
}

/** Horizontal bars, with a dashed line at the target when there is one. */
export function barChart(title: string, unit: string, bars: Bar[], target: { value: number; label: string } | undefined): string {
  const rowHeight = 34;
  const top = 44;
  const left = 230;
  const right = width - 120;
  const height = top + bars.length * rowHeight + 50;
  const max = Math.max(...bars.map((b) => b.value), target?.value ?? 0) * 1.08;
  const x = (value: number) => left + (value / max) * (right - left);
  const body: string[] = [];
  bars.forEach((bar, i) => {
    const y = top + i * rowHeight;
    const color = palette[(bar.color ?? i) % palette.length] ?? '#000000';
    body.push(`<text x="${left - 10}" y="${y + rowHeight / 2 + 4}" text-anchor="end" fill="#111827">${escape(bar.label)}</text>`);
    body.push(`<rect x="${left}" y="${y + 6}" width="${Math.max(1, x(bar.value) - left).toFixed(1)}" height="${rowHeight - 12}" fill="${color}" rx="2"/>`);
    body.push(`<text x="${(x(bar.value) + 6).toFixed(1)}" y="${y + rowHeight / 2 + 4}" fill="#111827">${escape(bar.text ?? `${Math.round(bar.value).toLocaleString('en-US')} ${unit}`)}</text>`);
  });
  const axisY = top + bars.length * rowHeight + 4;
  body.push(`<line x1="${left}" x2="${right}" y1="${axisY}" y2="${axisY}" stroke="#9ca3af"/>`);
  body.push(`<text x="${(left + right) / 2}" y="${axisY + 34}" text-anchor="middle" fill="#111827">${escape(unit)}</text>`);
  if (target) {
    body.push(`<line x1="${x(target.value).toFixed(1)}" x2="${x(target.value).toFixed(1)}" y1="${top}" y2="${axisY}" stroke="#dc2626" stroke-dasharray="6 4" stroke-width="1.5"/>`);
    body.push(`<text x="${x(target.value).toFixed(1)}" y="${axisY + 16}" text-anchor="middle" fill="#dc2626">${escape(target.label)}</text>`);
  }
  return svg(height, title, body);
}
