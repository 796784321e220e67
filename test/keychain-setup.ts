/**
 * Vitest globalSetup: a real, private Secret Service for the vault tests on Linux.
 *
 * Starts a session bus of its own (dbus-daemon) and gnome-keyring-daemon on it with an unlocked
 * login keyring, in a temp HOME/XDG tree, and points DBUS_SESSION_BUS_ADDRESS at that bus. Vitest
 * forks its workers after globalSetup and copies process.env into them, so keytar in every test
 * talks to this keyring and never to the user's. On macOS and Windows it does nothing: the real
 * keychain is used, under a test service name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';

/** Seconds to wait for each daemon to come up before failing the run. */
const startupTimeoutSeconds = 20;

/** The binaries this needs, and the Debian/Ubuntu package that ships each. */
const tools = [
  { bin: 'dbus-daemon', pkg: 'dbus-x11' },
  { bin: 'gnome-keyring-daemon', pkg: 'gnome-keyring' },
  // `gdbus wait` blocks until a bus name has an owner, so readiness needs no polling.
  { bin: 'gdbus', pkg: 'libglib2.0-bin' },
] as const;

const secretServiceName = 'org.freedesktop.secrets';

export default async function setup(): Promise<() => Promise<void>> {
  if (process.platform !== 'linux') return () => Promise.resolve();

  const missing = tools.filter((t) => !onPath(t.bin));
  if (missing.length > 0) {
    throw new Error(
      `The keychain tests need a real Secret Service, but ${missing.map((t) => t.bin).join(', ')} ` +
        `${missing.length === 1 ? 'is' : 'are'} not installed. ` +
        `Install with: sudo apt-get install -y gnome-keyring dbus-x11 libglib2.0-bin`,
    );
  }

  const root = mkdtempSync(join(tmpdir(), 'herald-keyring-'));
  const dirs = { run: join(root, 'run'), data: join(root, 'data'), config: join(root, 'config'), cache: join(root, 'cache') };
  for (const dir of Object.values(dirs)) mkdirSync(dir, { mode: 0o700 });
  // A private HOME and XDG tree: gnome-keyring writes its keyrings under XDG_DATA_HOME and its
  // control socket under XDG_RUNTIME_DIR, so the user's real keyring is never opened.
  const daemonEnv: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: root,
    XDG_RUNTIME_DIR: dirs.run,
    XDG_DATA_HOME: dirs.data,
    XDG_CONFIG_HOME: dirs.config,
    XDG_CACHE_HOME: dirs.cache,
  };
  delete daemonEnv.DBUS_SESSION_BUS_ADDRESS;

  const previousAddress = process.env.DBUS_SESSION_BUS_ADDRESS;
  const started: ChildProcess[] = [];
  // If vitest exits without running teardown, do not leave daemons behind.
  const killAll = () => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.once('exit', killAll);

  const teardown = async () => {
    process.off('exit', killAll);
    if (previousAddress === undefined) delete process.env.DBUS_SESSION_BUS_ADDRESS;
    else process.env.DBUS_SESSION_BUS_ADDRESS = previousAddress;
    // The keyring first: it exits on its own when the bus goes away, but may still be flushing.
    for (const child of [...started].reverse()) await stop(child);
    rmSync(root, { recursive: true, force: true });
  };

  try {
    const bus = spawn('dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=unix:path=${join(root, 'bus')}`, '--print-address=1'], {
      env: daemonEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(bus);
    const address = await firstLine(bus, 'dbus-daemon');

    const keyring = spawn('gnome-keyring-daemon', ['--foreground', '--unlock', '--components=secrets'], {
      env: { ...daemonEnv, DBUS_SESSION_BUS_ADDRESS: address },
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    started.push(keyring);
    const keyringLog = collect(keyring);
    // --unlock reads the login keyring's password from stdin up to EOF, and creates the keyring
    // with it when there is none (the `printf x |` of the shell recipe).
    // An early exit closes stdin under us; that exit is reported below, not as an EPIPE crash.
    keyring.stdin.on('error', () => undefined).end('x');

    const wait = spawn('gdbus', ['wait', '--session', '--timeout', String(startupTimeoutSeconds), secretServiceName], {
      env: { ...daemonEnv, DBUS_SESSION_BUS_ADDRESS: address },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const waitLog = collect(wait);
    const ready = exitOf(wait).then((code) => {
      if (code !== 0) throw new Error(`${secretServiceName} did not appear on the private bus within ${startupTimeoutSeconds} s: ${waitLog()} ${keyringLog()}`);
    });
    const died = exitOf(keyring).then((code) => {
      throw new Error(`gnome-keyring-daemon exited (${String(code)}) before ${secretServiceName} appeared: ${keyringLog()}`);
    });
    try {
      await Promise.race([ready, died]);
    } finally {
      died.catch(() => undefined);
      if (wait.exitCode === null) wait.kill('SIGTERM');
    }

    process.env.DBUS_SESSION_BUS_ADDRESS = address;
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}

function onPath(bin: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The last few KB a child wrote to stderr, for error messages. */
function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    text = (text + chunk).slice(-4096);
  });
  return () => text.trim();
}

/** Resolves with the exit code (or the signal name); rejects if the binary could not be started. */
async function exitOf(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null) return child.exitCode;
  if (child.signalCode !== null) return child.signalCode;
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? signal ?? 'unknown';
}

/** The first line a daemon prints on stdout (its address), or an error carrying its stderr. */
async function firstLine(child: ChildProcess, name: string): Promise<string> {
  const log = collect(child);
  const stdout = child.stdout;
  if (stdout === null) throw new Error(`${name}: no stdout`);
  const lines = createInterface({ input: stdout });
  const timeout = AbortSignal.timeout(startupTimeoutSeconds * 1000);
  const done = new AbortController();
  try {
    const line = once(lines, 'line', { signal: AbortSignal.any([timeout, done.signal]) }).then(([text]) => String(text).trim());
    const died = exitOf(child).then((code) => {
      throw new Error(`${name} exited (${String(code)}) before printing its address: ${log()}`);
    });
    // Whichever loses the race settles later (at the deadline, or when teardown stops the daemon).
    line.catch(() => undefined);
    died.catch(() => undefined);
    const text = await Promise.race([line, died]);
    if (text === '') throw new Error(`${name} printed an empty address: ${log()}`);
    return text;
  } catch (error) {
    if (timeout.aborted) throw new Error(`${name} did not print its address within ${startupTimeoutSeconds} s: ${log()}`, { cause: error });
    throw error;
  } finally {
    done.abort();
    lines.close();
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}
