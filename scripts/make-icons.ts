/**
 * Draws Herald's app icon and tray icons from code and writes the PNG, ICO and ICNS files that
 * electron-builder and the tray use. Pure Node: shapes are signed distance functions, rasterized
 * with analytic anti-aliasing and encoded by the small PNG/ICO/ICNS writers below.
 *
 * Run `node --import tsx scripts/make-icons.ts --help`. The output is committed; `--check` proves
 * the committed files are what this code draws (pixel for pixel: deflate output may differ between
 * zlib builds, decoded pixels may not).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { deflateSync, inflateSync } from 'node:zlib';

/** An 8-bit RGBA image with straight (not premultiplied) alpha, rows top to bottom. */
export interface Image {
  width: number;
  height: number;
  data: Uint8Array;
}

/** One file the script writes, relative to the repository root. */
export interface IconFile {
  path: string;
  bytes: Buffer;
}

/** The tray states main/ shows; each has `<state>.png`, `<state>@2x.png` and the macOS `<state>Template*.png`. */
export const trayStates = ['connected', 'reconnecting', 'offline', 'dnd'] as const;
export type TrayState = (typeof trayStates)[number];

// ---------------------------------------------------------------------------------------------
// Geometry: signed distance functions in unit coordinates (0..1, y down), negative inside.

type Sdf = (x: number, y: number) => number;
/** Straight-alpha colour, every channel 0..1. */
type Rgba = readonly [number, number, number, number];
type Paint = Rgba | ((x: number, y: number) => Rgba);

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

const circle = (cx: number, cy: number, r: number): Sdf => (x, y) => Math.hypot(x - cx, y - cy) - r;

const roundedBox = (cx: number, cy: number, hw: number, hh: number, r: number): Sdf => (x, y) => {
  const qx = Math.abs(x - cx) - hw + r;
  const qy = Math.abs(y - cy) - hh + r;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - r;
};

/** Isosceles trapezoid centred on (cx, cy): half-width `top` at the top edge, `bottom` at the bottom. */
const trapezoid = (cx: number, cy: number, top: number, bottom: number, hh: number): Sdf => (x, y) => {
  // https://iquilezles.org/articles/distfunctions2d/ (sdTrapezoid)
  const px = Math.abs(x - cx);
  const py = y - cy;
  const k2x = bottom - top;
  const k2y = 2 * hh;
  const cax = px - Math.min(px, py < 0 ? top : bottom);
  const cay = Math.abs(py) - hh;
  const t = clamp(((bottom - px) * k2x + (hh - py) * k2y) / (k2x * k2x + k2y * k2y), 0, 1);
  const cbx = px - bottom + k2x * t;
  const cby = py - hh + k2y * t;
  const sign = cbx < 0 && cay < 0 ? -1 : 1;
  return sign * Math.sqrt(Math.min(cax * cax + cay * cay, cbx * cbx + cby * cby));
};

const union = (...shapes: Sdf[]): Sdf => (x, y) => Math.min(...shapes.map((shape) => shape(x, y)));
/** `shape` minus `cut` grown by `gap`, so the cut leaves a transparent margin around itself. */
const knockOut = (shape: Sdf, cut: Sdf, gap = 0): Sdf => (x, y) => Math.max(shape(x, y), gap - cut(x, y));
const ring = (shape: Sdf, halfWidth: number): Sdf => (x, y) => Math.abs(shape(x, y)) - halfWidth;
/** Draws `shape` (designed in its own unit square) scaled by `scale` about the canvas point (cx, cy). */
const place = (shape: Sdf, cx: number, cy: number, scale: number): Sdf => (x, y) =>
  shape((x - cx) / scale + 0.5, (y - cy) / scale + 0.5) * scale;

/**
 * Herald's bell, filling its unit square: knob, dome flaring into the body, rim, and a clapper
 * separated from the rim by `gap`. Rim and clapper edges sit on the 16 px grid, so the 16 px tray
 * icons stay sharp where it matters most.
 */
function bell(gap: number): Sdf {
  const domeY = 0.4;
  const domeR = 0.27;
  const flare = 0.28; // horizontal run of each side per unit of height
  // The sides leave the dome where its tangent has the flare's slope, so the outline has no kink.
  const joinY = domeY - (domeR * flare) / Math.sqrt(1 + flare * flare);
  const joinHalfWidth = domeR / Math.sqrt(1 + flare * flare);
  const bodyBottom = 0.72; // inside the rim, so the two overlap instead of touching along a seam
  const rim = roundedBox(0.5, 0.75, 0.4375, 0.0625, 0.0625);
  const body = trapezoid(0.5, (joinY + bodyBottom) / 2, joinHalfWidth, joinHalfWidth + flare * (bodyBottom - joinY), (bodyBottom - joinY) / 2);
  const knob = circle(0.5, 0.085, 0.07);
  const clapper = knockOut(circle(0.5, 0.85, 0.15), rim, gap);
  return union(knob, circle(0.5, domeY, domeR), body, rim, clapper);
}

// ---------------------------------------------------------------------------------------------
// Raster

interface Layer {
  shape: Sdf;
  paint: Paint;
  /** Soft edge width in unit coordinates (shadows); edges are one pixel wide otherwise. */
  blur?: number;
}

const hex = (value: string, alpha = 1): Rgba => {
  const n = Number.parseInt(value.slice(1), 16);
  return [((n >> 16) & 255) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255, alpha];
};

/** Colours of the brand: indigo body, white glyph, orange "new" dot; state colours for the tray. */
const palette = {
  indigoTop: hex('#6366F1'),
  indigoBottom: hex('#4338CA'),
  white: hex('#FFFFFF'),
  black: hex('#000000'),
  orange: hex('#F97316'),
  amber: hex('#F59E0B'),
  red: hex('#EF4444'),
  grey: hex('#6B7280'),
  shadow: hex('#000000', 0.3),
} as const;

const verticalGradient = (top: Rgba, bottom: Rgba, y0: number, y1: number): Paint => (_x, y) => {
  const t = clamp((y - y0) / (y1 - y0), 0, 1);
  return [top[0] + (bottom[0] - top[0]) * t, top[1] + (bottom[1] - top[1]) * t, top[2] + (bottom[2] - top[2]) * t, 1];
};

/** Composites the layers bottom to top, sampling each pixel at its centre. */
export function render(size: number, layers: readonly Layer[]): Image {
  const data = new Uint8Array(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const x = (px + 0.5) / size;
      const y = (py + 0.5) / size;
      // Premultiplied accumulator.
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (const layer of layers) {
        const d = layer.shape(x, y);
        const edge = (layer.blur ?? 0) + 1 / size;
        let coverage = clamp(0.5 - d / edge, 0, 1);
        if (layer.blur !== undefined) coverage = coverage * coverage * (3 - 2 * coverage);
        if (coverage === 0) continue;
        const color = typeof layer.paint === 'function' ? layer.paint(x, y) : layer.paint;
        const alpha = color[3] * coverage;
        r = color[0] * alpha + r * (1 - alpha);
        g = color[1] * alpha + g * (1 - alpha);
        b = color[2] * alpha + b * (1 - alpha);
        a = alpha + a * (1 - alpha);
      }
      const o = (py * size + px) * 4;
      const a8 = Math.round(a * 255);
      if (a8 === 0) continue;
      data[o] = Math.round((r / a) * 255);
      data[o + 1] = Math.round((g / a) * 255);
      data[o + 2] = Math.round((b / a) * 255);
      data[o + 3] = a8;
    }
  }
  return { width: size, height: size, data };
}

// ---------------------------------------------------------------------------------------------
// Drawings

/**
 * The application icon: a white bell with an orange "new" dot on an indigo rounded square.
 * `mac` follows Apple's icon grid (824 px body in a 1024 px canvas, with a drop shadow);
 * `flat` fills the canvas for Windows and Linux, where icons carry no padding of their own.
 */
export function appIcon(size: number, style: 'mac' | 'flat'): Image {
  const margin = style === 'mac' ? 100 / 1024 : size < 64 ? 1 / 32 : 1 / 16;
  const half = 0.5 - margin;
  const square = roundedBox(0.5, 0.5, half, half, 2 * half * 0.2246);
  const dot = circle(0.8, 0.18, 0.14);
  const glyph = knockOut(bell(0.0625), dot, 0.06);
  const scale = 2 * half * 0.62;
  const layers: Layer[] = [];
  if (style === 'mac' && size >= 128) {
    layers.push({ shape: roundedBox(0.5, 0.5 + 0.012, half, half, 2 * half * 0.2246), paint: palette.shadow, blur: 0.03 });
  }
  layers.push(
    { shape: square, paint: verticalGradient(palette.indigoTop, palette.indigoBottom, margin, 1 - margin) },
    { shape: place(glyph, 0.5, 0.52, scale), paint: palette.white },
    { shape: place(dot, 0.5, 0.52, scale), paint: palette.orange },
  );
  return render(size, layers);
}

const trayBadge = circle(0.78, 0.76, 0.2);
/** The "no entry" bar of the do-not-disturb badge. */
const trayBar = (cx: number, cy: number): Sdf => roundedBox(cx, cy, 0.12, 0.04, 0.02);

/**
 * A macOS template image: black plus alpha, tinted by the menu bar. States differ in shape, not
 * colour: connected is the bell, reconnecting adds a ring, offline dims the bell, and
 * do-not-disturb adds a "no entry" badge, as presence indicators do.
 */
export function trayTemplate(size: number, state: TrayState): Image {
  const glyph = bell(0.0625);
  const ink = palette.black;
  switch (state) {
    case 'connected':
      return render(size, [{ shape: glyph, paint: ink }]);
    case 'reconnecting':
      return render(size, [
        { shape: knockOut(glyph, trayBadge, 0.07), paint: ink },
        { shape: ring(circle(0.78, 0.76, 0.15), 0.05), paint: ink },
      ]);
    case 'offline':
      return render(size, [{ shape: glyph, paint: [0, 0, 0, 0.4] }]);
    case 'dnd':
      return render(size, [
        { shape: knockOut(glyph, trayBadge, 0.07), paint: ink },
        { shape: knockOut(trayBadge, trayBar(0.78, 0.76)), paint: ink },
      ]);
  }
}

/**
 * A coloured tray icon for Windows and Linux, readable on light and dark taskbars: the app tile,
 * grey while offline, with a state badge: amber while reconnecting, red "no entry" for
 * do-not-disturb.
 */
export function trayColor(size: number, state: TrayState): Image {
  const tile = roundedBox(0.5, 0.5, 0.5, 0.5, 0.22);
  const glyph = place(bell(0.0625), 0.5, 0.5, 0.68);
  const badge = circle(0.8, 0.8, 0.2);
  const brand = verticalGradient(palette.indigoTop, palette.indigoBottom, 0, 1);
  const badged = (color: Rgba): Layer[] => [
    { shape: knockOut(tile, badge, 0.06), paint: brand },
    { shape: knockOut(glyph, badge, 0.06), paint: palette.white },
    { shape: badge, paint: color },
  ];
  switch (state) {
    case 'connected':
      return render(size, [
        { shape: tile, paint: brand },
        { shape: glyph, paint: palette.white },
      ]);
    case 'reconnecting':
      return render(size, badged(palette.amber));
    case 'offline':
      return render(size, [
        { shape: tile, paint: palette.grey },
        { shape: glyph, paint: palette.white },
      ]);
    case 'dnd':
      return render(size, [...badged(palette.red), { shape: trayBar(0.8, 0.8), paint: palette.white }]);
  }
}

// ---------------------------------------------------------------------------------------------
// Encoders and decoders

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (crcTable[(c ^ byte) & 255] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Paeth predictor from the PNG specification. */
function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Encodes 8-bit RGBA as PNG, choosing each row's filter by the usual minimum-sum heuristic. */
export function encodePng(image: Image): Buffer {
  const stride = image.width * 4;
  const raw = Buffer.alloc((stride + 1) * image.height);
  const candidate = Buffer.alloc(stride);
  const best = Buffer.alloc(stride);
  for (let y = 0; y < image.height; y++) {
    const row = image.data.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? image.data.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    let bestFilter = 0;
    let bestScore = Infinity;
    for (let filter = 0; filter <= 4; filter++) {
      let score = 0;
      for (let i = 0; i < stride; i++) {
        const left = i >= 4 ? (row[i - 4] ?? 0) : 0;
        const above = up[i] ?? 0;
        const corner = i >= 4 ? (up[i - 4] ?? 0) : 0;
        const predicted = [0, left, above, (left + above) >> 1, paeth(left, above, corner)][filter] ?? 0;
        const value = ((row[i] ?? 0) - predicted) & 255;
        candidate[i] = value;
        score += value < 128 ? value : 256 - value;
      }
      if (score < bestScore) {
        bestScore = score;
        bestFilter = filter;
        candidate.copy(best);
      }
    }
    raw[y * (stride + 1)] = bestFilter;
    best.copy(raw, y * (stride + 1) + 1);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(image.width, 0);
  header.writeUInt32BE(image.height, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit, RGBA, deflate, adaptive filtering, no interlace
  return Buffer.concat([
    pngSignature,
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(raw, { level: 9 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Decodes the PNGs this script writes (8-bit RGBA, not interlaced). */
export function decodePng(bytes: Buffer): Image {
  if (!bytes.subarray(0, 8).equals(pngSignature)) throw new Error('not a PNG file');
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  for (let offset = 8; offset < bytes.length; ) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const body = bytes.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 6 || body[12] !== 0) throw new Error('only 8-bit RGBA non-interlaced PNGs are supported');
    } else if (type === 'IDAT') {
      idat.push(body);
    }
    offset += length + 12;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * 4;
  const data = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let i = 0; i < stride; i++) {
      const o = y * stride + i;
      const left = i >= 4 ? (data[o - 4] ?? 0) : 0;
      const above = y > 0 ? (data[o - stride] ?? 0) : 0;
      const corner = i >= 4 && y > 0 ? (data[o - stride - 4] ?? 0) : 0;
      const predicted = [0, left, above, (left + above) >> 1, paeth(left, above, corner)][filter ?? 0] ?? 0;
      data[o] = ((raw[y * (stride + 1) + 1 + i] ?? 0) + predicted) & 255;
    }
  }
  return { width, height, data };
}

/** A 32-bit BMP image (BGRA, bottom-up) with its 1-bit AND mask, as ICO entries below 256 px hold it. */
function icoBitmap(image: Image): Buffer {
  const { width, height, data } = image;
  const maskStride = Math.ceil(width / 32) * 4;
  const out = Buffer.alloc(40 + width * height * 4 + maskStride * height);
  out.writeUInt32LE(40, 0);
  out.writeInt32LE(width, 4);
  out.writeInt32LE(height * 2, 8); // colour rows plus mask rows
  out.writeUInt16LE(1, 12);
  out.writeUInt16LE(32, 14);
  out.writeUInt32LE(width * height * 4 + maskStride * height, 20);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = ((height - 1 - y) * width + x) * 4;
      const to = 40 + (y * width + x) * 4;
      out[to] = data[from + 2] ?? 0;
      out[to + 1] = data[from + 1] ?? 0;
      out[to + 2] = data[from] ?? 0;
      out[to + 3] = data[from + 3] ?? 0;
      if ((data[from + 3] ?? 0) === 0) {
        const maskByte = 40 + width * height * 4 + y * maskStride + (x >> 3);
        out[maskByte] = (out[maskByte] ?? 0) | (0x80 >> (x & 7));
      }
    }
  }
  return out;
}

/** A Windows icon: BMP entries for the small sizes (read by every tool, NSIS included), PNG for 256. */
export function encodeIco(images: readonly Image[]): Buffer {
  const payloads = images.map((image) => (image.width >= 256 ? encodePng(image) : icoBitmap(image)));
  const header = Buffer.alloc(6 + 16 * images.length);
  header.writeUInt16LE(1, 2); // type: icon
  header.writeUInt16LE(images.length, 4);
  let offset = header.length;
  images.forEach((image, i) => {
    const entry = 6 + 16 * i;
    header[entry] = image.width >= 256 ? 0 : image.width;
    header[entry + 1] = image.height >= 256 ? 0 : image.height;
    header.writeUInt16LE(1, entry + 4); // planes
    header.writeUInt16LE(32, entry + 6); // bits per pixel
    const size = payloads[i]?.length ?? 0;
    header.writeUInt32LE(size, entry + 8);
    header.writeUInt32LE(offset, entry + 12);
    offset += size;
  });
  return Buffer.concat([header, ...payloads]);
}

/** ICNS element types holding PNG data, with their pixel size (macOS 10.7+). */
export const icnsTypes = [
  ['icp4', 16],
  ['icp5', 32],
  ['ic11', 32],
  ['ic12', 64],
  ['ic07', 128],
  ['ic13', 256],
  ['ic08', 256],
  ['ic14', 512],
  ['ic09', 512],
  ['ic10', 1024],
] as const;

export function encodeIcns(imageOfSize: (size: number) => Image): Buffer {
  const elements = icnsTypes.map(([type, size]) => {
    const png = encodePng(imageOfSize(size));
    const head = Buffer.alloc(8);
    head.write(type, 0, 'latin1');
    head.writeUInt32BE(png.length + 8, 4);
    return Buffer.concat([head, png]);
  });
  const body = Buffer.concat(elements);
  const head = Buffer.alloc(8);
  head.write('icns', 0, 'latin1');
  head.writeUInt32BE(body.length + 8, 4);
  return Buffer.concat([head, body]);
}

/** Every image inside a PNG, ICO or ICNS file, decoded, with the entry's name; for comparisons. */
export function readImages(path: string, bytes: Buffer): { name: string; image: Image }[] {
  if (path.endsWith('.png')) return [{ name: 'png', image: decodePng(bytes) }];
  if (path.endsWith('.icns')) {
    if (bytes.toString('latin1', 0, 4) !== 'icns') throw new Error(`${path}: not an ICNS file`);
    const images: { name: string; image: Image }[] = [];
    for (let offset = 8; offset < bytes.length; ) {
      const length = bytes.readUInt32BE(offset + 4);
      images.push({ name: bytes.toString('latin1', offset, offset + 4), image: decodePng(bytes.subarray(offset + 8, offset + length)) });
      offset += length;
    }
    return images;
  }
  if (path.endsWith('.ico')) {
    if (bytes.readUInt16LE(0) !== 0 || bytes.readUInt16LE(2) !== 1) throw new Error(`${path}: not an ICO file`);
    return Array.from({ length: bytes.readUInt16LE(4) }, (_, i) => {
      const entry = 6 + 16 * i;
      const size = bytes[entry] || 256;
      const payload = bytes.subarray(bytes.readUInt32LE(entry + 12), bytes.readUInt32LE(entry + 12) + bytes.readUInt32LE(entry + 8));
      if (payload.subarray(0, 8).equals(pngSignature)) return { name: `${size}`, image: decodePng(payload) };
      const data = new Uint8Array(size * size * 4);
      for (let y = 0; y < size; y++) {
        for (let x = 0; x < size; x++) {
          const from = 40 + ((size - 1 - y) * size + x) * 4;
          data.set([payload[from + 2] ?? 0, payload[from + 1] ?? 0, payload[from] ?? 0, payload[from + 3] ?? 0], (y * size + x) * 4);
        }
      }
      return { name: `${size}`, image: { width: size, height: size, data } };
    });
  }
  throw new Error(`${path}: unknown image type`);
}

// ---------------------------------------------------------------------------------------------
// The file set

/** Sizes of the Linux icon set (hicolor theme) that electron-builder installs from build/icons/. */
const linuxSizes = [16, 24, 32, 48, 64, 128, 256, 512];
/** Sizes inside build/icon.ico: the shell's small, medium, large and jumbo views. */
const windowsSizes = [16, 24, 32, 48, 64, 128, 256];

/** Everything the script writes, in a fixed order. */
export function iconFiles(): IconFile[] {
  const memo = new Map<string, Image>();
  const cached = (key: string, draw: () => Image): Image => {
    const hit = memo.get(key);
    if (hit) return hit;
    const image = draw();
    memo.set(key, image);
    return image;
  };
  const mac = (size: number) => cached(`mac${size}`, () => appIcon(size, 'mac'));
  const flat = (size: number) => cached(`flat${size}`, () => appIcon(size, 'flat'));
  const files: IconFile[] = [
    { path: 'build/icon.png', bytes: encodePng(mac(1024)) },
    { path: 'build/icon.icns', bytes: encodeIcns(mac) },
    { path: 'build/icon.ico', bytes: encodeIco(windowsSizes.map(flat)) },
    ...linuxSizes.map((size) => ({ path: `build/icons/${size}x${size}.png`, bytes: encodePng(flat(size)) })),
    // Window and toast icon for Linux, where neither comes from the installer.
    { path: 'assets/icon.png', bytes: encodePng(flat(256)) },
  ];
  for (const state of trayStates) {
    files.push(
      { path: `assets/tray/${state}.png`, bytes: encodePng(trayColor(16, state)) },
      { path: `assets/tray/${state}@2x.png`, bytes: encodePng(trayColor(32, state)) },
      { path: `assets/tray/${state}Template.png`, bytes: encodePng(trayTemplate(16, state)) },
      { path: `assets/tray/${state}Template@2x.png`, bytes: encodePng(trayTemplate(32, state)) },
    );
  }
  return files;
}

/** Whether two image files hold the same entries with the same pixels. */
export function sameImages(path: string, a: Buffer, b: Buffer): boolean {
  const left = readImages(path, a);
  const right = readImages(path, b);
  return (
    left.length === right.length &&
    left.every((entry, i) => {
      const other = right[i];
      return (
        other !== undefined &&
        entry.name === other.name &&
        entry.image.width === other.image.width &&
        entry.image.height === other.image.height &&
        Buffer.from(entry.image.data).equals(Buffer.from(other.image.data))
      );
    })
  );
}

const usage = `Usage: node --import tsx scripts/make-icons.ts [--check] [--root DIR]

Draws Herald's icons from code and writes them under DIR (default: the repository root):
  build/icon.png            1024x1024 app icon (macOS grid), the source electron-builder knows by default
  build/icon.icns           macOS app icon, 16-1024 px
  build/icon.ico            Windows app icon, 16-256 px
  build/icons/NxN.png       Linux icon set, 16-512 px
  assets/icon.png           256 px window and toast icon (Linux)
  assets/tray/<state>[@2x].png          coloured tray icons, 16 and 32 px
  assets/tray/<state>Template[@2x].png  macOS menu-bar template images (black + alpha)
  where <state> is one of: ${trayStates.join(', ')}

Options:
  --check     write nothing; exit 1 if a file under DIR differs in pixels from what the code draws
  --root DIR  repository root to write to or check
  --help      show this help`;

function main(argv: readonly string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    return 0;
  }
  const rootIndex = argv.indexOf('--root');
  const unknown = argv.filter((arg, i) => !['--check', '--root'].includes(arg) && !(rootIndex >= 0 && i === rootIndex + 1));
  if (unknown.length > 0 || (rootIndex >= 0 && argv[rootIndex + 1] === undefined)) {
    console.error(`make-icons: unexpected arguments: ${unknown.join(' ') || '--root needs a directory'}\n\n${usage}`);
    return 2;
  }
  const root = rootIndex >= 0 ? resolve(argv[rootIndex + 1] ?? '.') : resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const check = argv.includes('--check');
  let stale = 0;
  for (const file of iconFiles()) {
    const target = join(root, file.path);
    if (check) {
      let current: Buffer | undefined;
      try {
        current = readFileSync(target);
      } catch {
        current = undefined;
      }
      if (current === undefined || !sameImages(file.path, current, file.bytes)) {
        console.error(`stale: ${file.path}`);
        stale++;
      }
      continue;
    }
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.bytes);
    console.log(`wrote ${file.path} (${file.bytes.length} bytes)`);
  }
  if (stale > 0) console.error(`${stale} icon file(s) differ from scripts/make-icons.ts; run it and commit the result.`);
  return stale > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
