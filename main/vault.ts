/**
 * The device-token vault: one OS keychain entry per (server, user), through keytar.
 * The token lives only in the keychain and in memory. It is never written to disk, never logged,
 * and never put in an error message: every failure is a `VaultError` with a stable code and a
 * sentence that says what to install or unlock.
 */
import { userName } from '@herald/protocol';
import { canonicalServer } from './api.js';

/** The part of keytar the vault uses; injected so the logic runs against any keychain. */
export interface Keychain {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
  findCredentials(service: string): Promise<{ account: string; password: string }[]>;
}

/** Whose token: a Herald user on one server. */
export interface VaultAccount {
  /** http(s) URL of the server; stored as origin plus path, without a trailing slash. */
  server: string;
  /** The user name on that server (`namePattern`, 1–64 characters). */
  user: string;
}

export type VaultErrorCode =
  /** The server is not an http(s) URL, or it carries credentials, a query or a fragment. */
  | 'invalid_server'
  /** The user name does not match the server's user name pattern. */
  | 'invalid_user'
  /** The token is empty, not a string, or contains whitespace. */
  | 'invalid_token'
  /** The keytar native module could not be loaded. */
  | 'keychain_missing'
  /** The OS keychain refused or did not answer (no Secret Service, locked keyring, denied access). */
  | 'keychain_unavailable';

export class VaultError extends Error {
  override readonly name = 'VaultError';
  constructor(
    readonly code: VaultErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface VaultOptions {
  /** The keychain. Default: the keytar module, loaded on first use. */
  keytar?: Keychain | (() => Promise<Keychain>);
  /** Keychain service name. Default `Herald`. Only tests change it, so they never touch a real install's entries. */
  service?: string;
  /** Platform whose keychain the error messages describe. Default `process.platform`. */
  platform?: NodeJS.Platform;
}

export interface Vault {
  /** Stores (or replaces) the account's token. */
  save(account: VaultAccount, token: string): Promise<void>;
  /** The account's token, or null when the keychain holds none. */
  read(account: VaultAccount): Promise<string | null>;
  /** Deletes the account's token; false when there was none. */
  remove(account: VaultAccount): Promise<boolean>;
  /** Every account with a stored token, sorted by key. Entries the vault did not write are ignored. */
  accounts(): Promise<VaultAccount[]>;
}

/** Default keychain service name. */
export const defaultVaultService = 'Herald';

/**
 * The keychain account string for an account: `user@server`, e.g. `alice@https://herald.example:8443`.
 * User names cannot contain `@`, so the first `@` separates the two. Throws `invalid_user` or `invalid_server`.
 */
export function accountKey(account: VaultAccount): string {
  return `${checkUser(account.user)}@${normalizeServer(account.server)}`;
}

/** The inverse of `accountKey`; undefined for a string the vault did not write. */
export function parseAccountKey(key: string): VaultAccount | undefined {
  const at = key.indexOf('@');
  if (at < 0) return undefined;
  const account = { user: key.slice(0, at), server: key.slice(at + 1) };
  try {
    return accountKey(account) === key ? account : undefined;
  } catch {
    return undefined;
  }
}

export function createVault(options: VaultOptions = {}): Vault {
  const service = options.service ?? defaultVaultService;
  if (service.trim() === '') throw new TypeError('vault service must be a non-empty string');
  const platform = options.platform ?? process.platform;
  const supplied = options.keytar;
  let loading: Promise<Keychain> | undefined;
  const keychain = (): Promise<Keychain> => {
    if (supplied !== undefined && typeof supplied !== 'function') return Promise.resolve(supplied);
    loading ??= (supplied ?? loadKeytar)().catch((error: unknown) => {
      throw error instanceof VaultError ? error : new VaultError('keychain_missing', missingText(detail(error)));
    });
    return loading;
  };

  /** Runs one keychain call; any failure becomes `keychain_unavailable` with the token scrubbed from the detail. */
  async function call<T>(run: (k: Keychain) => Promise<T>, token?: string): Promise<T> {
    const k = await keychain();
    try {
      return await run(k);
    } catch (error) {
      throw new VaultError('keychain_unavailable', unavailableText(platform, redact(detail(error), token)));
    }
  }

  return {
    async save(account, token) {
      const key = accountKey(account);
      checkToken(token);
      await call((k) => k.setPassword(service, key, token), token);
    },
    async read(account) {
      const key = accountKey(account);
      const token = await call((k) => k.getPassword(service, key));
      // Some keychains hand back an empty string for an entry that was cleared rather than deleted.
      return token === null || token === '' ? null : token;
    },
    async remove(account) {
      const key = accountKey(account);
      return call((k) => k.deletePassword(service, key));
    },
    async accounts() {
      // keytar has no call that lists accounts without their secrets; the passwords are dropped here.
      const credentials = await call((k) => k.findCredentials(service));
      const keys = credentials.map((c) => c.account).sort();
      return keys.map(parseAccountKey).filter((a) => a !== undefined);
    },
  };
}

async function loadKeytar(): Promise<Keychain> {
  // keytar is CommonJS; Node's ESM loader exposes module.exports as `default`.
  const module = await import('keytar');
  return module.default;
}

function normalizeServer(raw: unknown): string {
  if (typeof raw !== 'string') throw new VaultError('invalid_server', 'The server must be an http:// or https:// URL.');
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new VaultError('invalid_server', 'The server must be an http:// or https:// URL.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new VaultError('invalid_server', 'The server must be an http:// or https:// URL.');
  if (url.username !== '' || url.password !== '') throw new VaultError('invalid_server', 'The server URL must not contain a user name or password.');
  if (url.search !== '' || url.hash !== '') throw new VaultError('invalid_server', 'The server URL must not have a query or fragment.');
  return canonicalServer(url);
}

function checkUser(user: unknown): string {
  const parsed = userName.safeParse(user);
  if (!parsed.success) {
    throw new VaultError('invalid_user', 'The user name must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit.');
  }
  return parsed.data;
}

function checkToken(token: unknown): void {
  // The message describes the rule only; the value itself must never reach an error.
  if (typeof token !== 'string' || token === '' || /\s/.test(token)) {
    throw new VaultError('invalid_token', 'The token must be a non-empty string without spaces or line breaks.');
  }
}

function detail(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function redact(text: string, token: string | undefined): string {
  return token === undefined || token === '' ? text : text.split(token).join('[token]');
}

function missingText(reason: string): string {
  return (
    `The keychain module (keytar) could not be loaded: ${reason}. ` +
    'Reinstall Herald. When running from source on Linux, install libsecret-1-dev, python3, make and g++, then run `npm rebuild keytar`.'
  );
}

function unavailableText(platform: NodeJS.Platform, reason: string): string {
  if (platform === 'darwin') {
    return `The macOS Keychain refused the request (${reason}). Unlock the login keychain in Keychain Access and allow Herald to use it.`;
  }
  if (platform === 'win32') {
    return `Windows Credential Manager refused the request (${reason}). Sign in to Windows with a profile that has Credential Manager enabled.`;
  }
  return (
    `No unlocked keyring answered on the Secret Service (${reason}). ` +
    'Install one (e.g. `apt-get install gnome-keyring`, or KeePassXC with Secret Service integration), ' +
    'make sure a D-Bus session bus is running, and unlock the keyring.'
  );
}
