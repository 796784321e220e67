import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Conf from 'conf';
import type ElectronStore from 'electron-store';
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import type { SettingsPatch } from '@herald/protocol';
import {
  maxAccounts,
  maxCorruptBackups,
  openSettings,
  SettingsError,
  settingsDefaults,
  type OpenSettingsOptions,
  type Settings,
  type SettingsBackendClass,
  type SettingsStore,
} from '../../main/settings.js';
import type { ToastSettings } from '../../main/toast-policy.js';

let dir: string;
let ids: number;
const time = Date.UTC(2025, 2, 10, 12, 0, 0);

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'herald-settings-'));
  ids = 0;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function open(options: Partial<OpenSettingsOptions> = {}): SettingsStore {
  return openSettings({ Store: Conf, cwd: dir, now: () => time, newId: () => `acc-${++ids}`, ...options });
}

const file = () => join(dir, 'settings.json');
const backups = () => readdirSync(dir).filter((name) => name.startsWith('settings.json.corrupt-')).sort();

/** Runs `change` and returns the SettingsError it throws. */
function refusal(change: () => unknown): SettingsError {
  try {
    change();
  } catch (error) {
    expect(error).toBeInstanceOf(SettingsError);
    return error as SettingsError;
  }
  throw new Error('expected a SettingsError');
}

const expectedDefaults: Settings = {
  accounts: [],
  activeAccountId: null,
  quietHours: null,
  minPriority: 1,
  sounds: { 1: null, 2: null, 3: 'default', 4: 'default', 5: 'default' },
  launchAtLogin: false,
  startHidden: false,
  doNotDisturbUntil: null,
};

describe('settings: defaults and round trip', () => {
  it('starts from the defaults and writes them to <cwd>/settings.json', () => {
    const settings = open();
    expect(settings.get()).toEqual(expectedDefaults);
    expect(settings.warnings).toEqual([]);
    expect(settings.path).toBe(file());
    expect(JSON.parse(readFileSync(file(), 'utf8'))).toEqual(expectedDefaults);
    expect(settingsDefaults).toMatchObject({ ...expectedDefaults, accounts: [] });
  });

  it('writes the file owner-only', () => {
    open();
    if (process.platform !== 'win32') expect(statSync(file()).mode & 0o777).toBe(0o600);
  });

  it('uses the file name it is given', () => {
    const settings = open({ name: 'other' });
    expect(settings.path).toBe(join(dir, 'other.json'));
    expect(existsSync(join(dir, 'other.json'))).toBe(true);
  });

  it('keeps every kind of change across a reopen', () => {
    const first = open();
    first.update({ minPriority: 3, quietHours: { start: '22:00', end: '07:30' }, launchAtLogin: true, startHidden: true });
    first.setSound(5, 'Sosumi');
    first.setSound(3, null);
    first.setDoNotDisturbUntil(time + 3_600_000);
    const work = first.addAccount({ serverUrl: 'https://herald.example.com/', user: 'ada', label: 'Work' });
    first.addAccount({ serverUrl: 'http://localhost:8080', user: 'ada' });
    const before = first.get();

    const second = open();
    expect(second.warnings).toEqual([]);
    expect(second.get()).toEqual(before);
    expect(second.get()).toMatchObject({
      minPriority: 3,
      quietHours: { start: '22:00', end: '07:30' },
      launchAtLogin: true,
      startHidden: true,
      sounds: { 1: null, 2: null, 3: null, 4: 'default', 5: 'Sosumi' },
      doNotDisturbUntil: time + 3_600_000,
      activeAccountId: work.id,
    });
    expect(second.view()).toEqual({ minPriority: 3, quietHours: { start: '22:00', end: '07:30' }, sounds: { 1: null, 2: null, 3: null, 4: 'default', 5: 'Sosumi' }, launchAtLogin: true, startHidden: true });
  });

  it('keeps what a patch does not name', () => {
    const settings = open();
    settings.update({ minPriority: 4 });
    settings.update({ launchAtLogin: true });
    settings.update({ quietHours: { start: '23:00', end: '06:00' } });
    settings.update({ quietHours: null });
    expect(settings.get()).toMatchObject({ minPriority: 4, launchAtLogin: true, quietHours: null });
  });

  it('fills fields missing from an older file with defaults, without a warning', () => {
    writeFileSync(file(), JSON.stringify({ minPriority: 2 }));
    const settings = open();
    expect(settings.warnings).toEqual([]);
    expect(settings.get()).toEqual({ ...expectedDefaults, minPriority: 2 });
    expect(JSON.parse(readFileSync(file(), 'utf8'))).toEqual({ ...expectedDefaults, minPriority: 2 });
  });

  it('hands out frozen snapshots: nobody changes settings behind the store', () => {
    const settings = open();
    const snapshot = settings.get();
    expect(() => {
      (snapshot as { minPriority: number }).minPriority = 5;
    }).toThrow(TypeError);
    expect(() => {
      (snapshot.sounds as Record<number, string | null>)[1] = 'x';
    }).toThrow(TypeError);
    expect(settings.get().minPriority).toBe(1);
  });
});

describe('settings: refused changes', () => {
  it.each<[string, unknown, RegExp]>([
    ['minPriority 0', { minPriority: 0 }, /^invalid settings: minPriority: Too small/],
    ['minPriority 6', { minPriority: 6 }, /^invalid settings: minPriority: Too big/],
    ['minPriority 2.5', { minPriority: 2.5 }, /^invalid settings: minPriority: .*int/i],
    ['minPriority as a string', { minPriority: '3' }, /^invalid settings: minPriority: Invalid input: expected number, received string$/],
    ['quiet hours 25:00', { quietHours: { start: '25:00', end: '07:00' } }, /^invalid settings: quietHours\.start: must be a time HH:MM from 00:00 to 23:59$/],
    ['quiet hours 12:60', { quietHours: { start: '22:00', end: '12:60' } }, /^invalid settings: quietHours\.end: must be a time HH:MM from 00:00 to 23:59$/],
    ['quiet hours 7:00', { quietHours: { start: '7:00', end: '08:00' } }, /^invalid settings: quietHours\.start: /],
    ['quiet hours of no length', { quietHours: { start: '08:00', end: '08:00' } }, /^invalid settings: quietHours\.end: start and end must differ$/],
    ['quiet hours without an end', { quietHours: { start: '08:00' } }, /^invalid settings: quietHours/],
    ['launchAtLogin "yes"', { launchAtLogin: 'yes' }, /^invalid settings: launchAtLogin: Invalid input: expected boolean/],
    ['an unknown key', { token: 'secret-value' }, /^invalid settings: Unrecognized key: "token"$/],
    ['not an object', 'minPriority=3', /^invalid settings: Invalid input: expected object/],
  ])('refuses %s with invalid_settings, naming the field', (_name, patch, message) => {
    const settings = open();
    const before = readFileSync(file(), 'utf8');
    const error = refusal(() => settings.update(patch as SettingsPatch));
    expect(error.code).toBe('invalid_settings');
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('secret-value');
    expect(error.issues.length).toBeGreaterThan(0);
    expect(settings.get()).toEqual(expectedDefaults);
    expect(readFileSync(file(), 'utf8')).toBe(before);
  });

  it.each<[string, () => (store: SettingsStore) => unknown, RegExp]>([
    ['a negative do-not-disturb time', () => (s) => s.setDoNotDisturbUntil(-1), /^invalid settings: doNotDisturbUntil: Too small/],
    ['a fractional do-not-disturb time', () => (s) => s.setDoNotDisturbUntil(1.5), /^invalid settings: doNotDisturbUntil: /],
    ['a sound name with a path', () => (s) => s.setSound(3, '../../etc/x'), /^invalid settings: sounds\.3: must be a sound name/],
    ['an empty sound name', () => (s) => s.setSound(4, ''), /^invalid settings: sounds\.4: must be a sound name/],
  ])('refuses %s', (_name, make, message) => {
    const settings = open();
    const error = refusal(() => make()(settings));
    expect(error.code).toBe('invalid_settings');
    expect(error.message).toMatch(message);
    expect(settings.get()).toEqual(expectedDefaults);
  });
});

describe('settings: a corrupt file', () => {
  it('that is not JSON: defaults, a byte-exact backup, and a warning without its content', () => {
    const corrupt = '{"minPriority": 3, "launchAtLogin": tru';
    writeFileSync(file(), corrupt);
    const settings = open();
    expect(settings.get()).toEqual(expectedDefaults);
    const backupPath = join(dir, 'settings.json.corrupt-2025-03-10T12-00-00-000Z');
    expect(settings.warnings).toEqual([{ code: 'invalid_json', message: 'the settings file is not valid JSON', path: file(), backupPath }]);
    expect(readFileSync(backupPath, 'utf8')).toBe(corrupt);
    expect(JSON.parse(readFileSync(file(), 'utf8'))).toEqual(expectedDefaults);
    // The next start is clean.
    expect(open().warnings).toEqual([]);
    expect(backups()).toEqual(['settings.json.corrupt-2025-03-10T12-00-00-000Z']);
  });

  it.each([
    ['an empty file', ''],
    ['binary garbage', '\u0000\u0001\u00ff'],
    ['a truncated write', '{\n\t"accounts": [\n\t\t{'],
  ])('that is %s: invalid_json', (_name, content) => {
    writeFileSync(file(), content);
    const settings = open();
    expect(settings.warnings.map((warning) => warning.code)).toEqual(['invalid_json']);
    expect(settings.get()).toEqual(expectedDefaults);
    expect(backups()).toHaveLength(1);
  });

  it.each([
    ['a wrong type', { minPriority: 'high' }, 'minPriority: Invalid input: expected number, received string'],
    ['an out-of-range value', { minPriority: 9 }, 'minPriority: Too big'],
    ['bad quiet hours', { quietHours: { start: '24:00', end: '01:00' } }, 'quietHours.start: must be a time HH:MM'],
    ['an account with a non-http URL', { accounts: [{ id: 'a', serverUrl: 'ftp://x.test', user: 'ada' }] }, 'accounts.0.serverUrl: must be an http(s) URL'],
    ['duplicate account ids', { accounts: [{ id: 'a', serverUrl: 'https://a.test', user: 'ada' }, { id: 'a', serverUrl: 'https://b.test', user: 'bob' }] }, 'accounts: account ids must be unique'],
    ['an array', [], 'Invalid input: expected object, received array'],
    ['null', null, 'Invalid input: expected object, received null'],
    ['a number', 42, 'Invalid input: expected object, received number'],
  ])('that fails the schema (%s): defaults, a backup, and a warning naming the field', (_name, content, message) => {
    const text = JSON.stringify(content);
    writeFileSync(file(), text);
    const settings = open();
    expect(settings.get()).toEqual(expectedDefaults);
    expect(settings.warnings).toHaveLength(1);
    const [warning] = settings.warnings;
    expect(warning?.code).toBe('invalid_settings');
    expect(warning?.message).toContain(`the settings file fails the schema: ${message}`);
    expect(warning?.backupPath).not.toBeNull();
    expect(readFileSync(warning?.backupPath ?? '', 'utf8')).toBe(text);
    expect(JSON.parse(readFileSync(file(), 'utf8'))).toEqual(expectedDefaults);
  });

  it('never quotes the bad value in the warning', () => {
    writeFileSync(file(), JSON.stringify({ accounts: [{ id: 'a', serverUrl: 'https://ada:hunter2@x.test', user: 'ada' }] }));
    const [warning] = open().warnings;
    expect(warning?.message).toContain('accounts.0.serverUrl: must not contain credentials');
    expect(warning?.message).not.toContain('hunter2');
  });

  it('keeps a separate backup for each corruption, and only the latest few', () => {
    let now = time;
    for (let i = 0; i < maxCorruptBackups + 2; i++) {
      writeFileSync(file(), `corrupt ${i}`);
      open({ now: () => now });
      now += 1000;
    }
    expect(backups()).toHaveLength(maxCorruptBackups);
    expect(backups().map((name) => readFileSync(join(dir, name), 'utf8'))).toEqual(['corrupt 2', 'corrupt 3', 'corrupt 4']);
  });

  it('does not overwrite an earlier backup made in the same millisecond', () => {
    writeFileSync(file(), 'first');
    open();
    writeFileSync(file(), 'second');
    const [warning] = open().warnings;
    expect(warning?.backupPath).toBe(join(dir, 'settings.json.corrupt-2025-03-10T12-00-00-000Z-1'));
    expect(backups().map((name) => readFileSync(join(dir, name), 'utf8'))).toEqual(['first', 'second']);
  });

  it('works on after recovering: changes persist', () => {
    writeFileSync(file(), '][');
    open().update({ minPriority: 5 });
    const reopened = open();
    expect(reopened.warnings).toEqual([]);
    expect(reopened.get().minPriority).toBe(5);
  });
});

describe('settings: accounts', () => {
  it('holds several accounts; the first one added becomes active', () => {
    const settings = open();
    expect(settings.activeAccount()).toBeUndefined();
    const work = settings.addAccount({ serverUrl: 'https://herald.work.test', user: 'ada', label: 'Work' });
    const home = settings.addAccount({ serverUrl: 'https://home.test:8443/herald/', user: 'ada' });
    const other = settings.addAccount({ serverUrl: 'https://herald.work.test', user: 'bob' });
    expect(work).toEqual({ id: 'acc-1', serverUrl: 'https://herald.work.test', user: 'ada', label: 'Work' });
    expect(home).toEqual({ id: 'acc-2', serverUrl: 'https://home.test:8443/herald', user: 'ada' });
    expect(other.id).toBe('acc-3');
    expect(settings.get().accounts).toEqual([work, home, other]);
    expect(settings.activeAccount()).toEqual(work);

    settings.setActiveAccount(home.id);
    expect(settings.activeAccount()).toEqual(home);
    expect(open().activeAccount()).toEqual(home);
  });

  it('activates the first remaining account when the active one is removed, and none when the last goes', () => {
    const settings = open();
    const a = settings.addAccount({ serverUrl: 'https://a.test', user: 'ada' });
    const b = settings.addAccount({ serverUrl: 'https://b.test', user: 'ada' });
    const c = settings.addAccount({ serverUrl: 'https://c.test', user: 'ada' });
    settings.setActiveAccount(b.id);
    settings.removeAccount(a.id);
    expect(settings.get().activeAccountId).toBe(b.id);
    settings.removeAccount(b.id);
    expect(settings.get().activeAccountId).toBe(c.id);
    settings.removeAccount(c.id);
    expect(settings.get()).toMatchObject({ accounts: [], activeAccountId: null });
  });

  it('can have no active account', () => {
    const settings = open();
    settings.addAccount({ serverUrl: 'https://a.test', user: 'ada' });
    settings.setActiveAccount(null);
    expect(settings.activeAccount()).toBeUndefined();
  });

  it('reads an active id that names no account as none', () => {
    writeFileSync(file(), JSON.stringify({ accounts: [{ id: 'a', serverUrl: 'https://a.test', user: 'ada' }], activeAccountId: 'gone' }));
    const settings = open();
    expect(settings.warnings).toEqual([]);
    expect(settings.get().activeAccountId).toBeNull();
  });

  it.each<[string, (store: SettingsStore) => unknown, string, RegExp]>([
    ['an unknown id to remove', (s) => s.removeAccount('nope'), 'unknown_account', /^no account with id "nope"$/],
    ['an unknown id to activate', (s) => s.setActiveAccount('nope'), 'unknown_account', /^no account with id "nope"$/],
    ['the same server and user again', (s) => s.addAccount({ serverUrl: 'https://a.test/', user: 'ada' }), 'account_exists', /^an account for ada on https:\/\/a\.test exists already$/],
    ['a non-http server', (s) => s.addAccount({ serverUrl: 'ws://a.test', user: 'bob' }), 'invalid_settings', /^invalid settings: serverUrl: must be an http\(s\) URL$/],
    ['credentials in the URL', (s) => s.addAccount({ serverUrl: 'https://bob:pw@a.test', user: 'bob' }), 'invalid_settings', /^invalid settings: serverUrl: must not contain credentials$/],
    ['a token in the query', (s) => s.addAccount({ serverUrl: 'https://a.test/?token=abc', user: 'bob' }), 'invalid_settings', /^invalid settings: serverUrl: must not contain a query or fragment$/],
    ['a bad user name', (s) => s.addAccount({ serverUrl: 'https://b.test', user: 'bob smith' }), 'invalid_settings', /^invalid settings: user: /],
    ['a token field', (s) => s.addAccount({ serverUrl: 'https://b.test', user: 'bob', token: 'tok' } as never), 'invalid_settings', /^invalid settings: Unrecognized key: "token"$/],
  ])('refuses %s', (_name, change, code, message) => {
    const settings = open();
    settings.addAccount({ serverUrl: 'https://a.test', user: 'ada' });
    const before = settings.get();
    const error = refusal(() => change(settings));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(settings.get()).toBe(before);
  });

  it(`holds at most ${maxAccounts} accounts`, () => {
    const settings = open();
    for (let i = 0; i < maxAccounts; i++) settings.addAccount({ serverUrl: `https://s${i}.test`, user: 'ada' });
    const error = refusal(() => settings.addAccount({ serverUrl: 'https://one-too-many.test', user: 'ada' }));
    expect(error.code).toBe('invalid_settings');
    expect(error.message).toMatch(/^invalid settings: accounts: Too big/);
    expect(open().get().accounts).toHaveLength(maxAccounts);
  });

  it('makes ids with crypto.randomUUID by default', () => {
    const settings = openSettings({ Store: Conf, cwd: dir });
    expect(settings.addAccount({ serverUrl: 'https://a.test', user: 'ada' }).id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('settings: no tokens, ever', () => {
  const secretish = /token|secret|password|bearer|hunter2/i;

  it('never writes a token-like field, whatever the API is asked', () => {
    const settings = open();
    const attempts: (() => unknown)[] = [
      () => settings.addAccount({ serverUrl: 'https://a.test', user: 'ada', token: 'hunter2' } as never),
      () => settings.addAccount({ serverUrl: 'https://a.test?token=hunter2', user: 'ada' }),
      () => settings.addAccount({ serverUrl: 'https://ada:hunter2@a.test', user: 'ada' }),
      () => settings.update({ token: 'hunter2' } as never),
      () => settings.update({ minPriority: 2, password: 'hunter2' } as never),
    ];
    for (const attempt of attempts) expect(attempt).toThrow(SettingsError);
    settings.addAccount({ serverUrl: 'https://a.test', user: 'ada', label: 'Work' });
    settings.update({ minPriority: 2 });
    expect(readFileSync(file(), 'utf8')).not.toMatch(secretish);
  });

  it('drops token-like fields from a hand-edited file on open', () => {
    writeFileSync(
      file(),
      JSON.stringify({ token: 'hunter2', accounts: [{ id: 'a', serverUrl: 'https://a.test', user: 'ada', token: 'hunter2', password: 'hunter2' }], activeAccountId: 'a' }),
    );
    const settings = open();
    expect(settings.warnings).toEqual([]);
    expect(settings.get().accounts).toEqual([{ id: 'a', serverUrl: 'https://a.test', user: 'ada' }]);
    expect(JSON.stringify(settings.get())).not.toMatch(secretish);
    expect(readFileSync(file(), 'utf8')).not.toMatch(secretish);
  });
});

describe('settings: onChange', () => {
  it('reports each change with the new and previous settings, and nothing for a no-op', () => {
    const settings = open();
    const seen: [number, number][] = [];
    settings.onChange((next, previous) => seen.push([previous.minPriority, next.minPriority]));
    settings.update({ minPriority: 2 });
    settings.update({ minPriority: 2 });
    settings.update({});
    settings.update({ minPriority: 4 });
    expect(seen).toEqual([
      [1, 2],
      [2, 4],
    ]);
  });

  it('reports account changes', () => {
    const settings = open();
    const active: (string | null)[] = [];
    settings.onChange((next) => active.push(next.activeAccountId));
    const a = settings.addAccount({ serverUrl: 'https://a.test', user: 'ada' });
    const b = settings.addAccount({ serverUrl: 'https://b.test', user: 'ada' });
    settings.setActiveAccount(b.id);
    settings.removeAccount(b.id);
    expect(active).toEqual([a.id, a.id, b.id, a.id]);
  });

  it('stops on unsubscribe or abort', () => {
    const settings = open();
    let calls = 0;
    const off = settings.onChange(() => calls++);
    const controller = new AbortController();
    settings.onChange(() => calls++, { signal: controller.signal });
    settings.update({ minPriority: 2 });
    expect(calls).toBe(2);
    off();
    controller.abort();
    settings.update({ minPriority: 3 });
    expect(calls).toBe(2);
    settings.onChange(() => calls++, { signal: controller.signal }); // already aborted
    settings.update({ minPriority: 4 });
    expect(calls).toBe(2);
  });

  it('calls every listener even when one throws, commits, and rethrows the error', () => {
    const settings = open();
    const calls: string[] = [];
    settings.onChange(() => {
      calls.push('first');
      throw new Error('listener failed');
    });
    settings.onChange(() => calls.push('second'));
    expect(() => settings.update({ startHidden: true })).toThrow('listener failed');
    expect(calls).toEqual(['first', 'second']);
    expect(settings.get().startHidden).toBe(true);
    expect(open().get().startHidden).toBe(true);
  });
});

describe('settings: types', () => {
  it('takes ElectronStore and Conf as the store class, and feeds the toast policy', () => {
    expectTypeOf<typeof ElectronStore>().toExtend<SettingsBackendClass>();
    expectTypeOf<typeof Conf>().toExtend<SettingsBackendClass>();
    expectTypeOf<Settings>().toExtend<ToastSettings>();
    expectTypeOf<ReturnType<SettingsStore['view']>>().toEqualTypeOf<Required<SettingsPatch>>();
  });
});
