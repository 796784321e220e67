import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, configSchema } from '../../server/src/config.js';
import { describeEnv, envVariables, loadConfig, loadConfigWithSource, unknownEnvVariables } from '../../server/src/config-sources.js';
import { defaults } from '../../server/src/defaults.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'herald-config-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeYaml(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** The ConfigError that `load` throws; fails the test when it does not throw one. */
function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const secret = 'this-is-a-secret-value-that-must-never-be-printed';

describe('precedence', () => {
  it('is defaults < file < HERALD_* < flags, key by key', () => {
    const file = writeYaml(
      'herald.yml',
      ['port: 9001', 'host: file-host', 'data: ./file-data', 'logLevel: warn', 'heartbeatMs: 1000', 'jwt:', '  issuer: file-issuer', '  secret: ' + secret].join('\n'),
    );
    const config = loadConfig({
      flags: { config: file, data: './flag-data', port: undefined },
      env: { HERALD_HOST: 'env-host', HERALD_DATA: './env-data', HERALD_HEARTBEAT_MS: '2000', HERALD_JWT_AUDIENCE: 'env-audience' },
      cwd: dir,
    });
    expect(config.port).toBe(9001); // file over default; an undefined flag does not count
    expect(config.host).toBe('env-host'); // env over file
    expect(config.data).toBe('./flag-data'); // flag over env and file
    expect(config.logLevel).toBe('warn'); // file only
    expect(config.heartbeatMs).toBe(2000); // env over file
    expect(config.maxPayload).toBe(defaults.maxPayload); // nobody set it
    // Nested objects merge: the env variable adds to the file's jwt rather than replacing it.
    expect(config.jwt).toEqual({ issuer: 'file-issuer', secret, audience: 'env-audience' });
  });

  it('reads the file named by HERALD_CONFIG, and --config over it', () => {
    const fromEnv = writeYaml('env.yml', 'port: 1111\n');
    const fromFlag = writeYaml('flag.yml', 'port: 2222\n');
    expect(loadConfig({ flags: {}, env: { HERALD_CONFIG: fromEnv }, cwd: dir }).port).toBe(1111);
    expect(loadConfig({ flags: { config: fromFlag }, env: { HERALD_CONFIG: fromEnv }, cwd: dir }).port).toBe(2222);
  });

  it('reads ./herald.yml only when it exists, and reports which file it read', () => {
    expect(loadConfigWithSource({ flags: {}, env: {}, cwd: dir })).toMatchObject({ file: undefined, config: { port: defaults.port } });
    const file = writeYaml('herald.yml', 'port: 3333\n');
    expect(loadConfigWithSource({ flags: {}, env: {}, cwd: dir })).toMatchObject({ file, config: { port: 3333 } });
  });

  it('treats an empty file and empty YAML values as unset', () => {
    writeYaml('herald.yml', 'tlsCert:\nport: 4444\n');
    const config = loadConfig({ flags: {}, env: {}, cwd: dir });
    expect(config.port).toBe(4444);
    expect(config).not.toHaveProperty('tlsCert');
    writeYaml('herald.yml', '');
    expect(loadConfig({ flags: {}, env: {}, cwd: dir }).port).toBe(defaults.port);
  });

  it('lets HERALD_RATE_LIMITS=on restore limits that the file turned off, and keeps file rates otherwise', () => {
    writeYaml('herald.yml', 'rateLimits: false\n');
    expect(loadConfig({ flags: {}, env: {}, cwd: dir }).rateLimits).toBe(false);
    expect(loadConfig({ flags: {}, env: { HERALD_RATE_LIMITS: 'on' }, cwd: dir }).rateLimits).toEqual({
      connect: defaults.connectRate,
      authFailure: defaults.authFailureRate,
      login: defaults.loginRate,
      publish: defaults.publishRate,
    });
    writeYaml('herald.yml', 'rateLimits:\n  login: { perSecond: 5, burst: 50 }\n');
    const config = loadConfig({ flags: {}, env: { HERALD_RATE_LIMITS: 'yes' }, cwd: dir });
    expect(config.rateLimits).toMatchObject({ login: { perSecond: 5, burst: 50 }, connect: defaults.connectRate });
  });
});

describe('environment variables', () => {
  it('coerces numbers, booleans, lists, enums and the feature switches', () => {
    const config = loadConfig({
      flags: {},
      env: {
        HERALD_PORT: '0',
        HERALD_RETENTION_DAYS: '0.5',
        HERALD_ALLOW_QUERY_TOKEN: 'yes',
        HERALD_METRICS_AUTH: 'ON',
        HERALD_TRUST_PROXY: '1',
        HERALD_ALLOWED_ORIGINS: 'https://a.example, https://b.example,',
        HERALD_LOG_LEVEL: 'debug',
        HERALD_SQLITE_SYNCHRONOUS: 'normal',
        HERALD_DEFLATE_THRESHOLD: '512',
        HERALD_RATE_LIMITS: 'off',
        HERALD_JWT_JWKS_URL: 'https://login.example/.well-known/jwks.json',
        HERALD_ADMIN_TOKEN: secret,
        HERALD_TLS_CERT: '', // empty means unset
      },
      cwd: dir,
    });
    expect(config).toMatchObject({
      port: 0,
      retentionDays: 0.5,
      allowQueryToken: true,
      metricsAuth: true,
      trustProxy: true,
      allowedOrigins: ['https://a.example', 'https://b.example'],
      logLevel: 'debug',
      sqliteSynchronous: 'normal',
      perMessageDeflate: { threshold: 512 },
      rateLimits: false,
      jwt: { jwksUrl: 'https://login.example/.well-known/jwks.json' },
      adminToken: secret,
    });
    expect(config).not.toHaveProperty('tlsCert');
    for (const [text, value] of [['false', false], ['0', false], ['no', false], ['off', false], ['TRUE', true]] as const) {
      expect(loadConfig({ flags: {}, env: { HERALD_TRUST_PROXY: text }, cwd: dir }).trustProxy).toBe(value);
    }
  });

  it('has a variable for every option, derived from the schema', () => {
    const names = envVariables().map((variable) => variable.name);
    for (const key of Object.keys(configSchema.shape)) {
      expect(envVariables().some((variable) => variable.path[0] === key), key).toBe(true);
    }
    expect(names).toEqual(
      expect.arrayContaining([
        'HERALD_PORT',
        'HERALD_TLS_CERT',
        'HERALD_ADMIN_TOKEN',
        'HERALD_MAX_PAYLOAD',
        'HERALD_JWT_SECRET',
        'HERALD_JWT_JWKS_URL',
        'HERALD_JWT_ISSUER',
        'HERALD_JWT_AUDIENCE',
        'HERALD_DEFLATE_THRESHOLD',
        'HERALD_RATE_LIMITS',
        'HERALD_SQLITE_SYNCHRONOUS',
        'HERALD_STORE_URL',
        'HERALD_STORE_SCHEMA',
        'HERALD_REDIS_URL',
        'HERALD_AMQP_URL',
        'HERALD_AMQP_QUEUE',
        'HERALD_AMQP_PREFETCH',
      ]),
    );
    expect(envVariables().filter((variable) => variable.secret).map((variable) => variable.name)).toEqual(['HERALD_ADMIN_TOKEN', 'HERALD_JWT_SECRET', 'HERALD_STORE_URL', 'HERALD_REDIS_URL', 'HERALD_AMQP_URL']);
    const help = describeEnv();
    for (const name of names) expect(help).toContain(name);
    // A URL with a password in it is treated as a secret: a bad value is named, never echoed.
    const refused = (() => {
      try {
        loadConfig({ flags: {}, env: { HERALD_STORE_URL: 'mysql://root:hunter2@db/herald' }, cwd: tmpdir() });
      } catch (error) {
        return String(error);
      }
      return 'accepted';
    })();
    expect(refused).toMatch(/storeUrl must be a postgres/);
    expect(refused).not.toContain('hunter2');
    expect(help).toContain('HERALD_CONFIG');
  });

  it('names a variable whose value does not coerce, with the value when it is not secret', () => {
    const error = configError(() =>
      loadConfig({ flags: {}, env: { HERALD_PORT: '80abc', HERALD_TRUST_PROXY: 'maybe', HERALD_LOG_LEVEL: 'loud', HERALD_RATE_LIMITS: 'sometimes' }, cwd: dir }),
    );
    expect(error.message).toContain('HERALD_PORT: expected a whole number, got "80abc"');
    expect(error.message).toContain('HERALD_TRUST_PROXY: expected true/false, 1/0, yes/no or on/off, got "maybe"');
    expect(error.message).toContain('HERALD_LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"');
    expect(error.message).toContain('HERALD_RATE_LIMITS: expected on or off, got "sometimes"');
  });

  it('names the variable behind a value the schema refuses', () => {
    const error = configError(() => loadConfig({ flags: {}, env: { HERALD_PORT: '70000', HERALD_MAX_PAYLOAD: '10' }, cwd: dir }));
    expect(error.message).toMatch(/port \(from HERALD_PORT\): .*65535/);
    expect(error.message).toMatch(/maxPayload \(from HERALD_MAX_PAYLOAD\): .*1024/);
  });

  it('never echoes the value of HERALD_ADMIN_TOKEN or HERALD_JWT_SECRET', () => {
    const short = 'hunter2-short-secret';
    const admin = configError(() => loadConfig({ flags: {}, env: { HERALD_ADMIN_TOKEN: short }, cwd: dir }));
    expect(admin.message).toContain('adminToken (from HERALD_ADMIN_TOKEN): adminToken must be at least 32 characters');
    expect(admin.message).not.toContain(short);

    const jwt = configError(() => loadConfig({ flags: {}, env: { HERALD_JWT_SECRET: short }, cwd: dir }));
    expect(jwt.message).toContain('jwt.secret (from HERALD_JWT_SECRET)');
    expect(jwt.message).not.toContain(short);

    const both = configError(() => loadConfig({ flags: {}, env: { HERALD_JWT_SECRET: secret, HERALD_JWT_JWKS_URL: 'https://login.example/jwks' }, cwd: dir }));
    expect(both.message).toContain('jwt needs exactly one of secret or jwksUrl');
    expect(both.message).not.toContain(secret);
  });

  it('lists HERALD_* variables that no option reads, with a suggestion', () => {
    expect(unknownEnvVariables({ HERALD_PROT: '1', HERALD_URL: 'http://x', HERALD_CONFIG: 'a.yml', HERALD_PORT: '1', PATH: '/bin', HERALD_WHATEVER: 'x' })).toEqual([
      'HERALD_PROT (did you mean HERALD_PORT?)',
      'HERALD_WHATEVER',
    ]);
  });
});

describe('flags', () => {
  it('coerces strings as commander passes them and names the flag on failure', () => {
    expect(loadConfig({ flags: { port: '0', logLevel: 'silent', tlsCert: undefined }, env: {}, cwd: dir })).toMatchObject({ port: 0, logLevel: 'silent' });
    expect(loadConfig({ flags: { port: 0 }, env: {}, cwd: dir }).port).toBe(0);
    expect(configError(() => loadConfig({ flags: { port: 'eighty' }, env: {}, cwd: dir })).message).toContain('--port: expected a whole number, got "eighty"');
    expect(configError(() => loadConfig({ flags: { logLevel: 'loud' }, env: {}, cwd: dir })).message).toContain('--log-level: expected one of');
    expect(configError(() => loadConfig({ flags: { colour: 'blue' }, env: {}, cwd: dir })).message).toContain('--colour: not a server option');
  });
});

describe('errors', () => {
  it('names a config file that does not exist, and who named it', () => {
    const missing = path.join(dir, 'missing.yml');
    expect(configError(() => loadConfig({ flags: { config: missing }, env: {}, cwd: dir })).message).toBe(`config file not found: ${missing} (named by --config)`);
    expect(configError(() => loadConfig({ flags: {}, env: { HERALD_CONFIG: missing }, cwd: dir })).message).toBe(
      `config file not found: ${missing} (named by HERALD_CONFIG)`,
    );
  });

  it('reports bad YAML with file, line and column, without quoting the line', () => {
    const file = writeYaml('bad.yml', `port: 8080\nadminToken: ${secret}: oops\n`);
    const error = configError(() => loadConfig({ flags: { config: file }, env: {}, cwd: dir }));
    expect(error.message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: invalid YAML: `));
    expect(error.message).not.toContain(secret);
  });

  it('refuses a file that is not a mapping', () => {
    const file = writeYaml('list.yml', '- port\n- 8080\n');
    expect(configError(() => loadConfig({ flags: { config: file }, env: {}, cwd: dir })).message).toBe(
      `${file}: expected a mapping of option names to values at the top level`,
    );
  });

  it('names unknown keys at any depth, with the file and a suggestion', () => {
    const file = writeYaml('herald.yml', ['prot: 8080', 'tls_cert: a.pem', 'jwt:', '  secrt: x', 'rateLimits:', '  conect: { perSecond: 1, burst: 1 }', 'colour: blue'].join('\n'));
    const error = configError(() => loadConfig({ flags: {}, env: {}, cwd: dir }));
    expect(error.message).toBe(
      [
        `${file}:`,
        '  unknown key "prot" (did you mean "port"?)',
        '  unknown key "tls_cert" (did you mean "tlsCert"?)',
        '  unknown key "jwt.secrt" (did you mean "secret"?)',
        '  unknown key "rateLimits.conect" (did you mean "connect"?)',
        '  unknown key "colour"',
      ].join('\n'),
    );
  });

  it('refuses a TLS certificate without a key, naming where it came from', () => {
    const error = configError(() => loadConfig({ flags: {}, env: { HERALD_TLS_CERT: '/etc/herald/cert.pem' }, cwd: dir }));
    expect(error.message).toBe('invalid configuration:\n  tlsCert (from HERALD_TLS_CERT): tlsCert and tlsKey go together: give both or neither');
    const file = writeYaml('herald.yml', 'tlsKey: /etc/herald/key.pem\n');
    expect(configError(() => loadConfig({ flags: {}, env: {}, cwd: dir })).message).toContain('tlsCert and tlsKey go together');
    expect(loadConfig({ flags: { tlsCert: '/etc/herald/cert.pem' }, env: {}, cwd: dir })).toMatchObject({ tlsCert: '/etc/herald/cert.pem', tlsKey: '/etc/herald/key.pem' });
    expect(file).toBeDefined();
  });

  it('names the file for a wrongly typed value in it', () => {
    const file = writeYaml('herald.yml', 'port: "8080"\nallowedOrigins: https://a.example\n');
    const error = configError(() => loadConfig({ flags: {}, env: {}, cwd: dir }));
    expect(error.message).toContain(`port (in ${file}): `);
    expect(error.message).toContain(`allowedOrigins (in ${file}): `);
  });
});
