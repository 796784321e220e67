import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import keytar from 'keytar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountKey, createVault, parseAccountKey, VaultError, type Keychain, type VaultAccount } from '../../main/vault.js';

// A service name of its own per run, so no real Herald entry (or another run's) is ever touched.
const service = `Herald-test-${String(process.pid)}-${randomUUID()}`;
const vault = createVault({ service });

const alice: VaultAccount = { user: 'alice', server: 'https://herald.example:8443' };
const bob: VaultAccount = { user: 'bob', server: 'https://herald.example:8443' };
const aliceElsewhere: VaultAccount = { user: 'alice', server: 'http://127.0.0.1:8080' };

/** A token shaped like the server's: `hrld_` plus 43 base64url characters. */
const newToken = () => `hrld_${randomBytes(32).toString('base64url')}`;

async function vaultError(promise: Promise<unknown>): Promise<VaultError> {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof VaultError)) throw new Error(`expected a VaultError, got ${String(error)}`);
  return error;
}

// On Linux the keyring must be the private one test/keychain-setup.ts starts, never the user's.
const noPrivateBus = process.platform === 'linux' && process.env.DBUS_SESSION_BUS_ADDRESS === undefined;

beforeAll(() => {
  if (noPrivateBus) throw new Error('No private Secret Service: run through vitest.config.ts, whose globalSetup includes test/keychain-setup.ts.');
});

afterAll(async () => {
  if (noPrivateBus) return;
  // On macOS and Windows this is the real keychain: leave nothing behind.
  for (const { account } of await keytar.findCredentials(service)) await keytar.deletePassword(service, account);
});

describe('vault on the real keychain', () => {
  it('saves, reads, overwrites and removes a token', async () => {
    const first = newToken();
    const second = newToken();
    await vault.save(alice, first);
    expect(await vault.read(alice)).toBe(first);
    // Stored under `user@server` in the service, where other keychain tools can see it.
    expect(await keytar.getPassword(service, 'alice@https://herald.example:8443')).toBe(first);

    await vault.save(alice, second);
    expect(await vault.read(alice)).toBe(second);
    expect((await keytar.findCredentials(service)).filter((c) => c.account === accountKey(alice))).toHaveLength(1);

    expect(await vault.remove(alice)).toBe(true);
    expect(await vault.read(alice)).toBeNull();
    expect(await keytar.getPassword(service, accountKey(alice))).toBeNull();
  });

  it('keeps accounts apart by user and by server', async () => {
    const tokens = new Map([alice, bob, aliceElsewhere].map((a) => [a, newToken()]));
    for (const [account, token] of tokens) await vault.save(account, token);
    for (const [account, token] of tokens) expect(await vault.read(account)).toBe(token);

    await vault.remove(bob);
    expect(await vault.read(bob)).toBeNull();
    expect(await vault.read(alice)).toBe(tokens.get(alice));
    expect(await vault.read(aliceElsewhere)).toBe(tokens.get(aliceElsewhere));

    await vault.remove(alice);
    await vault.remove(aliceElsewhere);
  });

  it('reads null and removes nothing for an account it never saw', async () => {
    const nobody = { user: 'nobody', server: 'https://never.example' };
    expect(await vault.read(nobody)).toBeNull();
    expect(await vault.remove(nobody)).toBe(false);
  });

  it('finds one entry for one server however its URL is spelled', async () => {
    const token = newToken();
    await vault.save({ user: 'carol', server: 'HTTPS://Herald.Example:443/' }, token);
    expect(await vault.read({ user: 'carol', server: '  https://herald.example  ' })).toBe(token);
    expect(accountKey({ user: 'carol', server: 'https://herald.example/' })).toBe('carol@https://herald.example');
    // A path prefix is part of the server (a reverse proxy may host several), as in api.ts.
    expect(accountKey({ user: 'carol', server: 'https://herald.example/team-a/' })).toBe('carol@https://herald.example/team-a');
    expect(await vault.read({ user: 'carol', server: 'https://herald.example/team-a' })).toBeNull();
    await vault.remove({ user: 'carol', server: 'https://herald.example' });
  });

  it('lists its own accounts and ignores foreign entries', async () => {
    await vault.save(bob, newToken());
    await vault.save(aliceElsewhere, newToken());
    await keytar.setPassword(service, 'written-by-something-else', 'x');

    expect(await vault.accounts()).toEqual([
      { user: 'alice', server: 'http://127.0.0.1:8080' },
      { user: 'bob', server: 'https://herald.example:8443' },
    ]);

    await keytar.deletePassword(service, 'written-by-something-else');
    await vault.remove(bob);
    await vault.remove(aliceElsewhere);
    expect(await vault.accounts()).toEqual([]);
  });
});

describe('vault input checks', () => {
  it.each([
    ['ftp://herald.example', 'invalid_server'],
    ['ws://herald.example', 'invalid_server'],
    ['herald.example', 'invalid_server'],
    ['', 'invalid_server'],
    ['https://alice:pw@herald.example', 'invalid_server'],
    ['https://herald.example/?x=1', 'invalid_server'],
    ['https://herald.example/#inbox', 'invalid_server'],
  ])('server %j → %s', async (server, code) => {
    expect((await vaultError(vault.save({ user: 'alice', server }, newToken()))).code).toBe(code);
    expect((await vaultError(vault.read({ user: 'alice', server }))).code).toBe(code);
    expect((await vaultError(vault.remove({ user: 'alice', server }))).code).toBe(code);
  });

  it.each(['', 'a@b', '-alice', 'al ice', 'a'.repeat(65)])('user %j → invalid_user', async (user) => {
    expect((await vaultError(vault.save({ user, server: alice.server }, newToken()))).code).toBe('invalid_user');
    expect((await vaultError(vault.read({ user, server: alice.server }))).code).toBe('invalid_user');
  });

  it.each(['', ' ', 'hrld_abc\n', 'hrld_ abc'])('token %j → invalid_token, and the value stays out of the message', async (token) => {
    const error = await vaultError(vault.save(alice, token));
    expect(error.code).toBe('invalid_token');
    if (token.trim() !== '') expect(error.message).not.toContain(token.trim());
    expect(await vault.read(alice)).toBeNull();
  });

  it('parses only keys it wrote', () => {
    expect(parseAccountKey('alice@https://herald.example:8443')).toEqual(alice);
    expect(parseAccountKey('alice@https://herald.example/')).toBeUndefined();
    expect(parseAccountKey('alice')).toBeUndefined();
    expect(parseAccountKey('alice@ftp://herald.example')).toBeUndefined();
  });
});

describe('vault failures', () => {
  it('never puts the token in an error, even when the keychain echoes it', async () => {
    const token = newToken();
    const leaky: Keychain = {
      ...keytar,
      setPassword: (_service, _account, password) => Promise.reject(new Error(`store rejected secret ${password}`)),
    };
    const error = await vaultError(createVault({ service, keytar: leaky, platform: 'linux' }).save(alice, token));
    expect(error.code).toBe('keychain_unavailable');
    expect(error.message).toContain('store rejected secret [token]');
    expect(error.message).toContain('gnome-keyring');
    expect(error.message).not.toContain(token);
    expect(String(error.stack)).not.toContain(token);
  });

  it('reports a keytar module that cannot load as keychain_missing', async () => {
    const broken = createVault({ service, keytar: () => Promise.reject(new Error('keytar.node: invalid ELF header')) });
    const error = await vaultError(broken.read(alice));
    expect(error.code).toBe('keychain_missing');
    expect(error.message).toContain('invalid ELF header');
    expect(error.message).toContain('libsecret-1-dev');
  });

  it.runIf(process.platform === 'linux')('says what to install when no Secret Service answers, without the token', async () => {
    // libsecret keeps one bus connection per process, so the dead bus needs a process of its own.
    const vaultUrl = new URL('../../main/vault.ts', import.meta.url).href;
    const token = newToken();
    const script = `
      import { createVault } from ${JSON.stringify(vaultUrl)};
      try {
        await createVault({ service: ${JSON.stringify(service)} }).save({ user: 'alice', server: 'https://herald.example' }, process.env.TOKEN);
        console.log(JSON.stringify({ saved: true }));
      } catch (e) {
        console.log(JSON.stringify({ code: e.code, message: e.message }));
      }`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, TOKEN: token, DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/herald-test-bus' },
    });
    const result = JSON.parse(stdout) as { code?: string; message?: string };
    expect(result.code).toBe('keychain_unavailable');
    expect(result.message).toContain('apt-get install gnome-keyring');
    expect(result.message).not.toContain(token);
  });
});
