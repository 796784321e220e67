/**
 * The desktop app's settings: a zod schema, and a store over electron-store that never hands out invalid data.
 *
 * The store class is injected (`ElectronStore` in the app, its base class `Conf` under plain Node in tests),
 * because electron-store imports `electron`. zod is the one validator: the file is parsed with
 * {@link settingsSchema} when opened and every change is validated before it is written; electron-store's
 * own JSON-schema option is not used.
 *
 * Tokens never live here: they are in the OS keychain (main/vault.ts). Account objects are parsed with unknown
 * keys stripped, and account input rejects them, so a `token` field can neither be written nor read back.
 */
import { copyFileSync, constants, readdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { Limits, settingsPatch, userName, type SettingsPatch, type SettingsView } from '@herald/protocol';
import { parseClock, systemSound, type Priority } from './toast-policy.js';

/** Every default of the settings: what a first start, or a corrupt file, begins with. */
export const settingsDefaults = Object.freeze({
  /** Signed-in servers/accounts. None until the first sign-in. */
  accounts: Object.freeze([]),
  /** Id of the account the app connects to; `null` when there is none. */
  activeAccountId: null,
  /** Daily quiet hours `{start, end}` (`HH:MM`, local time), or `null` for none. Off: nothing is muted unasked. */
  quietHours: null,
  /** Lowest priority toasted, 1–5. 1: every notification toasts (1–2 silently, see `sounds`); the user raises it. */
  minPriority: 1,
  /** Sound name per priority, or `null` for silent. `'default'` is the OS default sound. Low priorities are silent. */
  sounds: Object.freeze({ 1: null, 2: null, 3: systemSound, 4: systemSound, 5: systemSound }),
  /** Start with the OS session. Off: the OS asks the user's consent for login items on some platforms. */
  launchAtLogin: false,
  /** Start in the tray without opening the history window. */
  startHidden: false,
  /** Do not disturb until this time, epoch ms, or `null` when off. */
  doNotDisturbUntil: null,
});

/** Most accounts kept. Bounded so a runaway caller cannot grow the file; nobody signs in to 32 servers. */
export const maxAccounts = 32;
/** Most `<file>.corrupt-<time>` backups kept next to the settings file; older ones are removed. */
export const maxCorruptBackups = 3;

const clock = z.string().refine((value) => parseClock(value) !== undefined, 'must be a time HH:MM from 00:00 to 23:59');

export const quietHoursSchema = z
  .object({ start: clock, end: clock })
  .strict()
  .refine((hours) => hours.start !== hours.end, { message: 'start and end must differ', path: ['end'] });

/**
 * A server's base URL: http(s), without credentials, query or fragment (where a token could hide).
 * Normalized to origin plus path, without a trailing slash.
 */
export const serverUrlSchema = z
  .string()
  .max(Limits.urlMax)
  .refine((value) => /^https?:\/\//i.test(value) && URL.canParse(value), 'must be an http(s) URL')
  .refine((value) => {
    const url = new URL(value);
    return url.username === '' && url.password === '';
  }, 'must not contain credentials')
  .refine((value) => {
    const url = new URL(value);
    return url.search === '' && url.hash === '';
  }, 'must not contain a query or fragment')
  .transform((value) => {
    const url = new URL(value);
    return url.origin + url.pathname.replace(/\/+$/, '');
  });

const accountFields = {
  /** Stable id; the vault keys the account's token by it. */
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 letters, digits, "_" or "-"'),
  serverUrl: serverUrlSchema,
  user: userName,
  label: z.string().trim().min(1).max(64).optional(),
};

/** A stored account. Unknown keys are dropped, so nothing but these fields is ever read or written back. */
export const accountSchema = z.object(accountFields);
export type Account = z.infer<typeof accountSchema>;

/** What {@link SettingsStore.addAccount} takes: no id (it is made here), and no other keys (a `token` is refused). */
export const accountInputSchema = z.object({ serverUrl: accountFields.serverUrl, user: accountFields.user, label: accountFields.label }).strict();
export type AccountInput = z.input<typeof accountInputSchema>;

const soundName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, 'must be a sound name: 1–64 letters, digits, " ", ".", "_" or "-"')
  .nullable();

export const soundTableSchema = z.object({ 1: soundName, 2: soundName, 3: soundName, 4: soundName, 5: soundName }).strict();

/**
 * The settings file. Missing fields take their default (a file from an older version stays valid); fields of
 * the wrong type make the whole file invalid. An `activeAccountId` naming no account reads as `null`.
 */
export const settingsSchema = z
  .object({
    accounts: z
      .array(accountSchema)
      .max(maxAccounts)
      .default(() => [])
      .refine((accounts) => new Set(accounts.map((account) => account.id)).size === accounts.length, 'account ids must be unique')
      .refine((accounts) => new Set(accounts.map(accountIdentity)).size === accounts.length, 'each server and user at most once'),
    activeAccountId: z.string().nullable().default(settingsDefaults.activeAccountId),
    quietHours: quietHoursSchema.nullable().default(settingsDefaults.quietHours),
    minPriority: z.int().min(1).max(5).default(settingsDefaults.minPriority),
    sounds: soundTableSchema.default(() => ({ ...settingsDefaults.sounds })),
    launchAtLogin: z.boolean().default(settingsDefaults.launchAtLogin),
    startHidden: z.boolean().default(settingsDefaults.startHidden),
    doNotDisturbUntil: z.int().min(0).nullable().default(settingsDefaults.doNotDisturbUntil),
  })
  .transform((settings) => ({
    ...settings,
    activeAccountId: settings.accounts.some((account) => account.id === settings.activeAccountId) ? settings.activeAccountId : null,
  }));
export type Settings = z.infer<typeof settingsSchema>;

function accountIdentity(account: { serverUrl: string; user: string }): string {
  return `${account.serverUrl}\n${account.user}`;
}

/** Stable codes of {@link SettingsError}. */
export const settingsErrorCodes = ['invalid_settings', 'account_exists', 'unknown_account'] as const;
export type SettingsErrorCode = (typeof settingsErrorCodes)[number];

/** A refused change. `message` names the field and the rule, never the value. */
export class SettingsError extends Error {
  constructor(
    readonly code: SettingsErrorCode,
    message: string,
    readonly issues: readonly z.core.$ZodIssue[] = [],
  ) {
    super(message);
    this.name = 'SettingsError';
  }
}

/** Why the settings file was set aside on open. */
export interface SettingsWarning {
  /** `invalid_json`: not JSON at all. `invalid_settings`: JSON that fails {@link settingsSchema}. */
  code: 'invalid_json' | 'invalid_settings';
  /** What was wrong: field paths and rules, never values. */
  message: string;
  /** The settings file. */
  path: string;
  /** The copy of the bad file, or `null` when it could not be made (the file is then left as it was until the next change). */
  backupPath: string | null;
}

/** The subset of `Conf` / `ElectronStore` options this module passes. */
export interface SettingsBackendOptions {
  cwd?: string;
  /** File name without extension: `ElectronStore` reads `name`, `Conf` reads `configName`. */
  name: string;
  configName: string;
  clearInvalidConfig: false;
  accessPropertiesByDotNotation: false;
  watch: false;
  /** The file holds server URLs and user names: owner-only. */
  configFileMode: number;
  deserialize: (text: string) => Record<string, unknown>;
}

/** What this module uses of a `Conf` / `ElectronStore` instance. */
export interface SettingsBackend {
  readonly path: string;
  store: Record<string, unknown>;
}

/** `ElectronStore` in the app, `Conf` under Node. */
export type SettingsBackendClass = new (options: SettingsBackendOptions) => SettingsBackend;

export interface OpenSettingsOptions {
  Store: SettingsBackendClass;
  /** Directory of the file. Default: electron-store's `app.getPath('userData')` (required with `Conf`). */
  cwd?: string;
  /** File name without `.json`. Default `'settings'`. */
  name?: string;
  /** Clock for backup names, epoch ms. Default `Date.now`. */
  now?: () => number;
  /** New account ids. Default `crypto.randomUUID`. */
  newId?: () => string;
}

export type SettingsListener = (next: Settings, previous: Settings) => void;

/** The settings API the rest of main uses. Every value it returns has passed {@link settingsSchema} and is frozen. */
export interface SettingsStore {
  /** The settings file. */
  readonly path: string;
  /** Problems found when opening; empty when the file was fine or absent. */
  readonly warnings: readonly SettingsWarning[];
  get(): Settings;
  /** What the history window sees (`settings:get`). */
  view(): SettingsView;
  /** Applies a patch from the window (`settings:set`). @throws SettingsError `invalid_settings` */
  update(patch: SettingsPatch): Settings;
  /** @throws SettingsError `invalid_settings` */
  setDoNotDisturbUntil(until: number | null): Settings;
  /** @throws SettingsError `invalid_settings` */
  setSound(priority: Priority, sound: string | null): Settings;
  /** Adds an account with a new id; the first one becomes active. @throws SettingsError `invalid_settings`, `account_exists` */
  addAccount(input: AccountInput): Account;
  /** Removes an account; when it was active, the first remaining one (or none) becomes active. @throws SettingsError `unknown_account` */
  removeAccount(id: string): Settings;
  /** @throws SettingsError `unknown_account` */
  setActiveAccount(id: string | null): Settings;
  activeAccount(): Account | undefined;
  /**
   * Calls `listener` after each change that altered something, with the new and previous settings.
   * Every listener is called; if any threw, the first error is rethrown to the caller of the change, which is committed regardless.
   */
  onChange(listener: SettingsListener, options?: { signal?: AbortSignal }): () => void;
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 3)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

function validate<S extends z.ZodType>(schema: S, data: unknown): z.infer<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  throw new SettingsError('invalid_settings', `invalid settings: ${describeIssues(result.error.issues)}`, result.error.issues);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Copies the bad file to `<file>.corrupt-<time>` and removes the oldest such copies beyond {@link maxCorruptBackups}. */
function backUp(path: string, now: number): string | null {
  const stamp = new Date(now).toISOString().replace(/[:.]/g, '-');
  let backupPath: string | undefined;
  for (let attempt = 0; attempt < 100 && backupPath === undefined; attempt++) {
    const candidate = `${path}.corrupt-${stamp}${attempt === 0 ? '' : `-${attempt}`}`;
    try {
      copyFileSync(path, candidate, constants.COPYFILE_EXCL);
      backupPath = candidate;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return null;
    }
  }
  if (backupPath === undefined) return null;
  try {
    const prefix = `${basename(path)}.corrupt-`;
    const backups = readdirSync(dirname(path))
      .filter((name) => name.startsWith(prefix))
      .sort();
    for (const name of backups.slice(0, Math.max(0, backups.length - maxCorruptBackups))) unlinkSync(join(dirname(path), name));
  } catch {
    // Pruning is housekeeping; the backup itself was made.
  }
  return backupPath;
}

/**
 * Opens (or creates) the settings file. Never throws because of the file's content: an unreadable or invalid
 * file is copied aside, replaced by the defaults, and reported in `warnings`.
 */
export function openSettings(options: OpenSettingsOptions): SettingsStore {
  const now = options.now ?? Date.now;
  const newId = options.newId ?? randomUUID;
  const name = options.name ?? 'settings';

  // Conf reads the file on construction and on every access; this hook sees each read. It keeps conf from
  // throwing on bad JSON (or, with clearInvalidConfig, from overwriting it before a backup exists).
  const reads: ({ kind: 'json'; data: unknown } | { kind: 'invalid_json' })[] = [];
  const deserialize = (text: string): Record<string, unknown> => {
    try {
      const data: unknown = JSON.parse(text);
      reads.push({ kind: 'json', data });
      return isRecord(data) ? data : {};
    } catch {
      reads.push({ kind: 'invalid_json' });
      return {};
    }
  };
  const backend = new options.Store({
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    name,
    configName: name,
    clearInvalidConfig: false,
    accessPropertiesByDotNotation: false,
    watch: false,
    configFileMode: 0o600,
    deserialize,
  });

  const write = (settings: Settings) => {
    backend.store = structuredClone(settings);
  };

  const warnings: SettingsWarning[] = [];
  const recover = (code: SettingsWarning['code'], message: string): Settings => {
    const backupPath = backUp(backend.path, now());
    warnings.push({ code, message, path: backend.path, backupPath });
    const defaults = deepFreeze(settingsSchema.parse({}));
    if (backupPath !== null) write(defaults);
    return defaults;
  };

  reads.length = 0;
  const stored = backend.store;
  // No read means no file yet: conf answers ENOENT with an empty store.
  const read = reads.at(-1) ?? { kind: 'json', data: stored };
  let current: Settings;
  if (read.kind === 'invalid_json') {
    current = recover('invalid_json', 'the settings file is not valid JSON');
  } else {
    const parsed = settingsSchema.safeParse(read.data);
    if (parsed.success) {
      current = deepFreeze(parsed.data);
      // Writes the defaults on a first start, and drops unknown (possibly secret) keys from a hand-edited file.
      if (JSON.stringify(read.data) !== JSON.stringify(current)) write(current);
    } else {
      current = recover('invalid_settings', `the settings file fails the schema: ${describeIssues(parsed.error.issues)}`);
    }
  }

  const listeners = new Set<SettingsListener>();

  const commit = (candidate: unknown): Settings => {
    const next = deepFreeze(validate(settingsSchema, candidate));
    if (JSON.stringify(next) === JSON.stringify(current)) return current;
    write(next);
    const previous = current;
    current = next;
    let failure: { error: unknown } | undefined;
    for (const listener of [...listeners]) {
      try {
        listener(next, previous);
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure) throw failure.error;
    return next;
  };

  const findAccount = (id: string): Account => {
    const account = current.accounts.find((candidate) => candidate.id === id);
    if (account === undefined) throw new SettingsError('unknown_account', `no account with id ${JSON.stringify(id)}`);
    return account;
  };

  return {
    path: backend.path,
    warnings: Object.freeze(warnings),
    get: () => current,
    view: () => ({ minPriority: current.minPriority, quietHours: current.quietHours, sounds: current.sounds, launchAtLogin: current.launchAtLogin, startHidden: current.startHidden }),
    update: (patch) => commit({ ...current, ...validate(settingsPatch, patch) }),
    setDoNotDisturbUntil: (until) => commit({ ...current, doNotDisturbUntil: until }),
    setSound: (priority, sound) => commit({ ...current, sounds: { ...current.sounds, [priority]: sound } }),
    addAccount(input) {
      const valid = validate(accountInputSchema, input);
      if (current.accounts.some((account) => accountIdentity(account) === accountIdentity(valid))) {
        throw new SettingsError('account_exists', `an account for ${valid.user} on ${valid.serverUrl} exists already`);
      }
      const account: Account = { id: newId(), ...valid };
      const next = commit({ ...current, accounts: [...current.accounts, account], activeAccountId: current.activeAccountId ?? account.id });
      return findAccountIn(next, account.id);
    },
    removeAccount(id) {
      findAccount(id);
      const accounts = current.accounts.filter((account) => account.id !== id);
      const activeAccountId = current.activeAccountId === id ? (accounts[0]?.id ?? null) : current.activeAccountId;
      return commit({ ...current, accounts, activeAccountId });
    },
    setActiveAccount(id) {
      if (id !== null) findAccount(id);
      return commit({ ...current, activeAccountId: id });
    },
    activeAccount: () => current.accounts.find((account) => account.id === current.activeAccountId),
    onChange(listener, { signal } = {}) {
      if (signal?.aborted) return () => undefined;
      const entry: SettingsListener = (next, previous) => {
        listener(next, previous);
      };
      listeners.add(entry);
      const off = () => {
        listeners.delete(entry);
        signal?.removeEventListener('abort', off);
      };
      signal?.addEventListener('abort', off, { once: true });
      return off;
    },
  };
}

function findAccountIn(settings: Settings, id: string): Account {
  const account = settings.accounts.find((candidate) => candidate.id === id);
  if (account === undefined) throw new Error(`account ${id} vanished on commit`);
  return account;
}
