/**
 * The installers, checked offline:
 * - electron-builder.yml against electron-builder's own JSON schema, and its key choices;
 * - the file set the installers would carry, laid out for real by `electron-builder --linux dir`
 *   with a placeholder Electron (no download, no native rebuild) and listed from app.asar;
 * - the icons: present, the right sizes, and exactly what scripts/make-icons.ts draws.
 * The packed app is the real build output, so `npm run build` must run first (npm test does).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { extractFile, listPackage } from '@electron/asar';
import Ajv from 'ajv';
import type { Configuration } from 'electron-builder';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { iconFiles, readImages, sameImages, trayStates } from '../scripts/make-icons.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string): Buffer => readFileSync(join(root, path));
const config = parse(read('electron-builder.yml').toString('utf8')) as Configuration;
const packageJson = JSON.parse(read('package.json').toString('utf8')) as {
  main?: string;
  dependencies?: Record<string, string>;
  desktopName?: string;
  homepage?: string;
  author?: string | { name?: string; email?: string };
};

/** What `npm run build` produces and the installers start from. */
const buildOutput = ['dist/main/index.js', 'dist/preload/index.cjs', 'dist/renderer/index.html'];
/** Packages only the server uses; none may reach an installer (DESIGN.md). */
const serverPackages = ['@herald/server', 'better-sqlite3', 'pg', 'ioredis', 'amqplib', 'pino', 'prom-client'];

describe('electron-builder.yml', () => {
  it("is valid against electron-builder's own schema", () => {
    const schema = JSON.parse(read('node_modules/app-builder-lib/scheme.json').toString('utf8')) as object;
    const ajv = new Ajv({ allErrors: true, allowUnionTypes: true });
    // scheme.json says `typeof: "function"` for hooks and for a few maps (linux.desktop.entry) that
    // its generator could not express. electron-builder validates with `strict: false`, which ignores
    // the keyword; declaring it keeps that meaning while strict mode still checks the rest.
    ajv.addKeyword('typeof');
    const validate = ajv.compile(schema);
    const valid = validate(config);
    expect(valid, ajv.errorsText(validate.errors, { separator: '\n', dataVar: 'electron-builder.yml' })).toBe(true);
  });

  it('packs only the build output, the tray icons and package.json, into an asar with native modules unpacked', () => {
    expect(config.appId).toBe('org.herald.desktop');
    expect(config.productName).toBe('Herald');
    const files = config.files as string[];
    expect(files.filter((pattern) => !pattern.startsWith('!'))).toEqual([
      'dist/main/**',
      'dist/preload/**',
      'dist/renderer/**',
      'assets/**',
      'package.json',
    ]);
    expect(files).toContain('!server{,/**}');
    expect(config.asar).toBe(true);
    expect(config.asarUnpack).toEqual(['**/*.node']);
    expect(config.publish).toBeNull();
  });

  it('hardens Electron with fuses', () => {
    expect(config.electronFuses).toEqual({
      runAsNode: false,
      enableCookieEncryption: true,
      enableNodeOptionsEnvironmentVariable: false,
      enableNodeCliInspectArguments: false,
      enableEmbeddedAsarIntegrityValidation: true,
      onlyLoadAppFromAsar: true,
      loadBrowserProcessSpecificV8Snapshot: false,
      // The renderer is loaded from file:// (see electron-builder.yml).
      grantFileProtocolExtraPrivileges: true,
    });
  });

  it('builds a hardened, notarized macOS dmg and zip with only the entitlements Electron needs', () => {
    const mac = config.mac ?? {};
    expect(mac.target).toEqual([
      { target: 'dmg', arch: ['arm64', 'x64'] },
      { target: 'zip', arch: ['arm64', 'x64'] },
    ]);
    expect(mac.category).toBe('public.app-category.productivity');
    expect(mac.hardenedRuntime).toBe(true);
    expect(mac.notarize).toBe(true);
    expect(mac.entitlements).toBe('build/entitlements.mac.plist');
    expect(mac.entitlementsInherit).toBe('build/entitlements.mac.plist');
    const plist = read('build/entitlements.mac.plist').toString('utf8').replace(/<!--[\s\S]*?-->/g, '');
    const entitlements = [...plist.matchAll(/<key>([^<]+)<\/key>\s*<(true|false)\/>/g)].map((match) => `${match[1] ?? ''}=${match[2] ?? ''}`);
    expect(entitlements).toEqual(['com.apple.security.cs.allow-jit=true', 'com.apple.security.cs.allow-unsigned-executable-memory=true']);
  });

  it('builds a Windows NSIS installer and Linux AppImage and deb with a desktop entry that names the app', () => {
    expect(config.win?.target).toEqual([{ target: 'nsis', arch: ['x64'] }]);
    const linux = config.linux ?? {};
    expect(linux.target).toEqual([
      { target: 'AppImage', arch: ['x64'] },
      { target: 'deb', arch: ['x64'] },
    ]);
    expect(linux.category).toBeTruthy();
    expect(linux.syncDesktopName).toBe(true);
    expect(linux.desktop?.entry).toMatchObject({ Name: 'Herald', StartupWMClass: 'herald' });
  });

  it('points every platform at icons that exist', () => {
    expect(config.mac?.icon).toBe('build/icon.icns');
    expect(config.win?.icon).toBe('build/icon.ico');
    expect(config.linux?.icon).toBe('build/icons');
    for (const path of ['build/icon.png', 'build/icon.icns', 'build/icon.ico', 'build/icons/512x512.png', 'build/entitlements.mac.plist']) {
      expect(existsSync(join(root, path)), path).toBe(true);
    }
  });
});

describe('.github/workflows/release.yml', () => {
  interface Step {
    run?: string;
    uses?: string;
    if?: string;
    env?: Record<string, string>;
    with?: Record<string, unknown>;
  }
  interface Workflow {
    on: { push: { tags: string[] } };
    jobs: Record<string, { strategy?: { matrix: { os: string[] } }; steps: Step[] }>;
  }
  const workflow = parse(read('.github/workflows/release.yml').toString('utf8')) as Workflow;
  const installers = workflow.jobs.installers;
  const steps = installers?.steps ?? [];

  it('builds the installers on every OS with Node 22 when a v* tag is pushed', () => {
    expect(workflow.on.push.tags).toEqual(['v*']);
    expect(installers?.strategy?.matrix.os).toEqual(['macos-latest', 'windows-latest', 'ubuntu-latest']);
    expect(steps.find((step) => step.uses?.startsWith('actions/setup-node@'))?.with).toMatchObject({ 'node-version': 22 });
    const commands = steps.map((step) => step.run ?? '').join('\n');
    for (const command of ['npm ci', 'npm run build', 'libsecret-1-dev', '--mac --publish never', '--win --publish never', '--linux --publish never']) {
      expect(commands).toContain(command);
    }
  });

  it('passes the macOS signing and notarization secrets to the macOS packaging step only', () => {
    const mac = steps.find((step) => step.if === "runner.os == 'macOS'");
    expect(Object.keys(mac?.env ?? {})).toEqual(expect.arrayContaining(['MAC_CSC_LINK', 'APPLE_ID', 'APPLE_APP_SPECIFIC_PASSWORD', 'APPLE_TEAM_ID']));
    const others = steps.filter((step) => step !== mac).map((step) => JSON.stringify(step.env ?? {}));
    expect(others.join('')).not.toMatch(/APPLE_|MAC_CSC/);
  });

  it('uploads the installers and attaches them to the release', () => {
    expect(steps.some((step) => step.uses?.startsWith('actions/upload-artifact@'))).toBe(true);
    expect(workflow.jobs.release?.steps.map((step) => step.run ?? '').join('\n')).toContain('gh release upload');
  });
});

describe('package.json, as the installers read it', () => {
  it('names the bundled entry point, the desktop file and the deb metadata', () => {
    expect(packageJson.main, 'package.json "main"').toBe('dist/main/index.js');
    expect(packageJson.desktopName, 'package.json "desktopName" (Linux WM_CLASS and toasts)').toBe('herald.desktop');
    expect(packageJson.homepage, 'package.json "homepage" (deb)').toMatch(/^https:\/\//);
    const author = packageJson.author;
    const email = typeof author === 'string' ? /<([^>]+)>/.exec(author)?.[1] : author?.email;
    expect(email, 'package.json "author" email (deb maintainer)').toMatch(/@/);
  });
});

describe('icons', () => {
  it('are exactly what scripts/make-icons.ts draws', () => {
    const stale = iconFiles()
      .filter((file) => !existsSync(join(root, file.path)) || !sameImages(file.path, read(file.path), file.bytes))
      .map((file) => file.path);
    expect(stale, 'run `node --import tsx scripts/make-icons.ts` and commit the result').toEqual([]);
  });

  it('come in the sizes each platform asks for', () => {
    const [png] = readImages('build/icon.png', read('build/icon.png'));
    expect([png?.image.width, png?.image.height]).toEqual([1024, 1024]);
    for (const size of [16, 32, 48, 128, 256, 512]) {
      expect(readImages('x.png', read(`build/icons/${size}x${size}.png`))[0]?.image.width).toBe(size);
    }
    const icns = readImages('build/icon.icns', read('build/icon.icns')).map(({ name, image }) => `${name}:${image.width}`);
    expect(icns).toEqual(expect.arrayContaining(['icp4:16', 'ic11:32', 'ic07:128', 'ic08:256', 'ic09:512', 'ic10:1024']));
    const ico = readImages('build/icon.ico', read('build/icon.ico')).map(({ image }) => image.width);
    expect(ico).toEqual(expect.arrayContaining([16, 32, 48, 256]));
  });

  it('give the tray every state at 1x and 2x, with black-and-alpha macOS template variants', () => {
    for (const state of trayStates) {
      for (const [suffix, size] of [['', 16], ['@2x', 32]] as const) {
        const image = (path: string) => readImages(path, read(path))[0]?.image;
        const colour = image(`assets/tray/${state}${suffix}.png`);
        const template = image(`assets/tray/${state}Template${suffix}.png`);
        expect([colour?.width, colour?.height, template?.width, template?.height]).toEqual([size, size, size, size]);
        const data = template?.data ?? new Uint8Array();
        const coloured = data.filter((_, i) => i % 4 !== 3 && data[i] !== 0).length;
        const inked = data.filter((value, i) => i % 4 === 3 && value > 0).length;
        expect(coloured, `${state}Template${suffix}.png has non-black pixels`).toBe(0);
        expect(inked, `${state}Template${suffix}.png is empty`).toBeGreaterThan(size * 2);
      }
    }
  });
});

describe('the packed app (electron-builder --linux dir, offline)', () => {
  const fuseSentinel = 'dL7pKGdnNz796PbbjQWNKmHXBZaB9tsX';
  let work = '';
  let resources = '';
  let entries: string[] = [];

  beforeAll(async () => {
    const missing = buildOutput.filter((path) => !existsSync(join(root, path)));
    if (missing.length > 0) {
      throw new Error(`Build output missing (${missing.join(', ')}): run \`npm run build\` before this test; \`npm test\` does.`);
    }
    if (packageJson.main === undefined || !existsSync(join(root, packageJson.main))) {
      throw new Error(`package.json "main" (${packageJson.main ?? 'unset, so index.js'}) must name the bundled entry point, dist/main/index.js.`);
    }
    work = mkdtempSync(join(tmpdir(), 'herald-packaging-'));
    // A stand-in for the Electron binary: electron-builder copies and renames it, and flips the fuses
    // in it, so it carries a fuse wire (sentinel, version 1, 8 fuses) set to Electron's defaults.
    const electronDist = join(work, 'electron-dist');
    mkdirSync(electronDist);
    writeFileSync(join(electronDist, 'electron'), Buffer.concat([Buffer.from('placeholder electron\n'), Buffer.from(fuseSentinel), Buffer.from([1, 8]), Buffer.from('10110001')]));
    chmodSync(join(electronDist, 'electron'), 0o755);
    const output = join(work, 'out');
    try {
      await promisify(execFile)(
        process.execPath,
        [
          join(root, 'node_modules/electron-builder/cli.js'),
          '--linux',
          'dir',
          '--publish',
          'never',
          `-c.electronDist=${electronDist}`,
          '-c.npmRebuild=false', // a rebuild for Electron would download its headers
          `-c.directories.output=${output}`,
        ],
        { cwd: root, env: { ...process.env, CSC_IDENTITY_AUTO_DISCOVERY: 'false' }, maxBuffer: 16 * 1024 * 1024 },
      );
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      throw new Error(`electron-builder --linux dir failed:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: error });
    }
    resources = join(output, 'linux-unpacked', 'resources');
    entries = listPackage(join(resources, 'app.asar'), { isPack: false }).map((path) => path.replaceAll('\\', '/'));
  }, 180_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('carries the main, preload and renderer bundles, package.json and the tray icons', () => {
    expect(entries).toEqual(expect.arrayContaining(['/package.json', ...buildOutput.map((path) => `/${path}`)]));
    for (const state of trayStates) {
      expect(entries).toEqual(expect.arrayContaining([`/assets/tray/${state}.png`, `/assets/tray/${state}@2x.png`, `/assets/tray/${state}Template.png`, `/assets/tray/${state}Template@2x.png`]));
    }
    const packed = JSON.parse(extractFile(join(resources, 'app.asar'), 'package.json').toString('utf8')) as { main?: string };
    expect(entries).toContain(`/${packed.main ?? 'index.js'}`);
  });

  it("carries keytar and the rest of package.json's dependencies", () => {
    for (const name of new Set(['keytar', ...Object.keys(packageJson.dependencies ?? {})])) {
      expect(entries).toContain(`/node_modules/${name}/package.json`);
    }
  });

  it('carries nothing of the server, no sources, tests or benchmarks', () => {
    const offending = entries.filter(
      (path) =>
        /^\/(server|protocol|main|preload|renderer|scripts|test|bench|docs)(\/|$)/.test(path) ||
        serverPackages.some((name) => path === `/node_modules/${name}` || path.startsWith(`/node_modules/${name}/`) || path.includes(`/node_modules/${name}/`)) ||
        path.startsWith('/node_modules/@herald/') ||
        /\.(ts|mts|cts|tsx)$/.test(path) ||
        /\/(test|tests|__tests__|bench)\//.test(path),
    );
    expect(offending).toEqual([]);
  });

  it("unpacks keytar's native module from the asar", () => {
    const unpacked = join(resources, 'app.asar.unpacked', 'node_modules', 'keytar', 'build', 'Release', 'keytar.node');
    expect(existsSync(unpacked), unpacked).toBe(true);
    const packedNatives = listPackage(join(resources, 'app.asar'), { isPack: true }).filter((line) => line.endsWith('.node') && !line.startsWith('unpack'));
    expect(packedNatives).toEqual([]);
  });

  it('flips the fuses in the Electron binary', () => {
    const binary = readFileSync(join(resources, '..', 'herald'));
    const wire = binary.indexOf(fuseSentinel) + fuseSentinel.length;
    // RunAsNode, CookieEncryption, NodeOptions, NodeCliInspect, AsarIntegrity, OnlyLoadFromAsar, V8Snapshot, FileProtocol
    expect(binary.toString('latin1', wire + 2, wire + 10)).toBe('01001101');
  });
});
