/** A PostgreSQL cluster of a test's own, on a port of its own, that the test can stop and start again. */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Debian's server binaries (package postgresql-NN): the newest installed version. */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (newest === undefined) throw new Error(`no PostgreSQL server binaries under ${root}/*/bin: apt-get install postgresql`);
  return join(root, newest, 'bin');
}

/**
 * A cluster made by `initdb` in a temp directory, trust auth for the `postgres` role, fsync off, listening on
 * 127.0.0.1 only. PostgreSQL refuses to run as root, so under root every command runs as the `postgres` OS user.
 */
export class PostgresProcess {
  readonly dir = mkdtempSync(join(tmpdir(), 'herald-pg-'));
  readonly #bin = binDir();
  readonly #asRoot = userInfo().uid === 0;
  #initialized = false;
  #running = false;

  constructor(readonly port: number) {
    if (this.#asRoot) {
      const { uid, gid } = postgresUser();
      chownSync(this.dir, uid, gid);
    }
  }

  /** The `postgres` database as the `postgres` superuser. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get #data(): string {
    return join(this.dir, 'data');
  }

  /** Creates the cluster on the first call, then starts it; resolves once it accepts connections. */
  async start(): Promise<void> {
    if (!this.#initialized) {
      await this.#run('initdb', ['-D', this.#data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync']);
      this.#initialized = true;
    }
    const settings = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    // -l: the server must not inherit this process's pipes, or pg_ctl's output would never end.
    await this.#run('pg_ctl', ['-D', this.#data, '-l', join(this.dir, 'server.log'), '-o', settings, '-w', 'start']);
    this.#running = true;
  }

  /**
   * Stops the cluster. `immediate` (the default) kills every backend at once, as a crash or a failover would;
   * `fast` rolls back open transactions and tells clients it is shutting down (57P01).
   */
  async stop(mode: 'immediate' | 'fast' = 'immediate'): Promise<void> {
    if (!this.#running) return;
    await this.#run('pg_ctl', ['-D', this.#data, '-m', mode, '-w', 'stop']);
    this.#running = false;
  }

  /** The server's log since the cluster was made, for a failing test's message. */
  log(): string {
    const file = join(this.dir, 'server.log');
    return existsSync(file) ? readFileSync(file, 'utf8') : '';
  }

  async dispose(): Promise<void> {
    try {
      await this.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  async #run(command: string, args: string[]): Promise<void> {
    const file = join(this.#bin, command);
    const [program, argv] = this.#asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
    try {
      await run(program, argv, { cwd: this.dir, timeout: 60_000 });
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      throw new Error(`${command} failed: ${stderr ?? ''}${stdout ?? ''}\n${this.log()}`, { cause: error });
    }
  }
}

/** The uid and gid of the `postgres` OS user that Debian's package creates. */
function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) throw new Error('no postgres OS user: apt-get install postgresql');
  return { uid: Number(uid), gid: Number(gid) };
}
