/**
 * Where the server's settings come from, lowest to highest precedence:
 * defaults (defaults.ts, through config.ts) < YAML file < `HERALD_*` environment variables < command-line flags.
 *
 * The environment mapping is derived from configSchema, so a new option gets its variable for free:
 * `HERALD_` + the key in SCREAMING_SNAKE_CASE (`tlsCert` → `HERALD_TLS_CERT`); keys of nested objects
 * get the parent as prefix (`jwt.jwksUrl` → `HERALD_JWT_JWKS_URL`).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError, configSchema, resolveConfig, type Config } from './config.js';

/** How a string from the environment or a flag becomes a config value. */
export type ValueKind =
  | { type: 'integer' }
  | { type: 'number' }
  | { type: 'boolean' }
  | { type: 'string' }
  | { type: 'enum'; options: readonly string[] }
  /** Comma-separated; blanks around items are dropped. */
  | { type: 'list' }
  /** A feature that is `false` when off and an object of defaults when on (`rateLimits`). */
  | { type: 'switch' }
  /** A positive integer, or `auto` for a value the server works out (`workers`). */
  | { type: 'count' };

/** One `HERALD_*` variable and the option it sets. */
export interface EnvVariable {
  /** e.g. `HERALD_TLS_CERT`. */
  name: string;
  /** The config path it sets, e.g. `['jwt', 'secret']`. */
  path: readonly string[];
  kind: ValueKind;
  /** Its value never appears in an error message. */
  secret: boolean;
}

export interface LoadConfigOptions {
  /** Parsed flags, camelCase keys of configSchema plus `config` (the YAML file). Undefined values are ignored. */
  flags: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  /** Directory that relative file names and the default `./herald.yml` are resolved against. Default: process.cwd(). */
  cwd?: string;
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the YAML file that was read, if any. */
  file: string | undefined;
}

/** The file read when neither `--config` nor `HERALD_CONFIG` names one, if it exists. */
export const defaultConfigFile = 'herald.yml';

/** Variables read outside the config object: the file name here, the server URL by the admin commands. */
const otherVariables = ['HERALD_CONFIG', 'HERALD_URL'] as const;

/** Env prefixes that differ from the key's own name, to keep common variables short. */
const envPrefixOverrides: Partial<Record<string, string>> = { perMessageDeflate: 'DEFLATE' };

const truthy = new Set(['true', '1', 'yes', 'on']);
const falsy = new Set(['false', '0', 'no', 'off']);

/** Merges the sources into a validated Config; throws a ConfigError that names each bad file, key, variable or flag. */
export function loadConfig(options: LoadConfigOptions): Config {
  return loadConfigWithSource(options).config;
}

/** {@link loadConfig}, also saying which YAML file was read. */
export function loadConfigWithSource(options: LoadConfigOptions): LoadedConfig {
  const cwd = options.cwd ?? process.cwd();
  const raw: Record<string, unknown> = {};
  /** Config path (dotted) → where its value came from, for error messages. */
  const sources = new Map<string, string>();
  const problems: string[] = [];

  const file = configFileOf(options, cwd);
  if (file !== undefined) {
    const values = readConfigFile(file.path, file.origin);
    for (const [key, value] of Object.entries(values)) mergeAt(raw, [key], value, `in ${file.path}`, sources);
  }

  /** Switches the environment turned off, by key, with the variable that did it. */
  const switchedOff = new Map<string, string>();
  for (const variable of environmentVariables) {
    const text = options.env[variable.name];
    if (text === undefined || text === '') continue;
    const value = coerce(text, variable.kind, variable.name, variable.secret, problems);
    if (value === undefined) continue;
    const [key = ''] = variable.path;
    if (value === false && variable.kind.type === 'switch') switchedOff.set(key, variable.name);
    const off = variable.path.length > 1 ? switchedOff.get(key) : undefined;
    if (off !== undefined) {
      problems.push(`${variable.name}: ${off} turns ${key} off; unset one of them`);
      continue;
    }
    mergeAt(raw, variable.path, value, `from ${variable.name}`, sources);
  }

  for (const [key, given] of Object.entries(options.flags)) {
    if (given === undefined || key === 'config') continue;
    const flag = `--${kebab(key)}`;
    const field = fieldsByKey.get(key);
    if (field === undefined) {
      problems.push(`${flag}: not a server option`);
      continue;
    }
    const kind = kindOf(field);
    const value = typeof given === 'string' && kind !== undefined ? coerce(given, kind, flag, isSecret(key, kind), problems) : given;
    if (value !== undefined) mergeAt(raw, [key], value, `from ${flag}`, sources);
  }

  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const at = issue.path.map(String).join('.');
      const where = sourceOf(at, sources);
      return `${at || 'config'}${where === undefined ? '' : ` (${where})`}: ${issue.message}`;
    });
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  // resolveConfig is the one place that fills defaults; it also owns any check added there later.
  return { config: resolveConfig(raw), file: file?.path };
}

/** Every `HERALD_*` variable that sets a config option, in schema order. */
export function envVariables(): readonly EnvVariable[] {
  return environmentVariables;
}

/** A `--help` section: one line per variable with its type and default. */
export function describeEnv(): string {
  const defaults: unknown = resolveConfig({});
  const rows = environmentVariables.map((variable) => {
    const fallback = valueAt(defaults, variable.path);
    const secret = variable.secret ? ', secret' : '';
    return [variable.name, `${describeKind(variable.kind)}${secret}${describeDefault(variable, fallback)}`] as const;
  });
  rows.push(['HERALD_CONFIG', `YAML file with the same options in camelCase (default: ./${defaultConfigFile} if it exists)`]);
  const width = Math.max(...rows.map(([name]) => name.length));
  return rows.map(([name, text]) => `  ${name.padEnd(width)}  ${text}`).join('\n');
}

/** `HERALD_*` variables in `env` that no option reads, each with a suggestion when one is close. */
export function unknownEnvVariables(env: NodeJS.ProcessEnv): string[] {
  const known = new Set<string>([...environmentVariables.map((variable) => variable.name), ...otherVariables]);
  return Object.keys(env)
    .filter((name) => name.startsWith('HERALD_') && !known.has(name))
    .sort()
    .map((name) => {
      const close = suggest(name, [...known]);
      return close === undefined ? name : `${name} (did you mean ${close}?)`;
    });
}

// ---------------------------------------------------------------------------------------------
// The schema, read once.

type Schema = z.core.$ZodType;

const fieldsByKey = new Map<string, Schema>(Object.entries(configSchema.shape));

/** Strips optional/default/nullable wrappers. */
function unwrap(schema: Schema): Schema {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodOptional || current instanceof z.ZodDefault || current instanceof z.ZodNullable) {
      current = current.unwrap();
    } else {
      return current;
    }
  }
}

/** The object schema to check keys against: the field itself, or the object member of a union. */
function objectOf(schema: Schema): z.ZodObject | undefined {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) return inner;
  if (inner instanceof z.ZodUnion) {
    for (const option of inner.options as readonly Schema[]) {
      const member = unwrap(option);
      if (member instanceof z.ZodObject) return member;
    }
  }
  return undefined;
}

/** How a scalar field is written as a string; undefined for objects and anything else without a string form. */
function kindOf(schema: Schema): ValueKind | undefined {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodNumber) return inner.format?.includes('int') ? { type: 'integer' } : { type: 'number' };
  if (inner instanceof z.ZodBoolean) return { type: 'boolean' };
  // $ZodString also covers the string formats (z.url(), z.email(), ...).
  if (inner instanceof z.core.$ZodString) return { type: 'string' };
  if (inner instanceof z.ZodEnum) return { type: 'enum', options: inner.options.map(String) };
  if (inner instanceof z.ZodArray && unwrap(inner.element) instanceof z.core.$ZodString) return { type: 'list' };
  if (inner instanceof z.ZodUnion) {
    const options = (inner.options as readonly Schema[]).map(unwrap);
    const hasFalse = options.some((option) => option instanceof z.ZodLiteral && option.values.has(false));
    if (hasFalse && options.some((option) => option instanceof z.ZodObject)) return { type: 'switch' };
    const hasAuto = options.some((option) => option instanceof z.ZodLiteral && option.values.has('auto'));
    if (hasAuto && options.some((option) => option instanceof z.ZodNumber)) return { type: 'count' };
  }
  return undefined;
}

function isSecret(key: string, kind: ValueKind): boolean {
  return kind.type === 'string' && (/secret|token|password/i.test(key) || /^(store|redis|amqp)Url$/.test(key));
}

/**
 * Top-level scalars get `HERALD_<KEY>`; scalar members of nested objects get `HERALD_<PARENT>_<KEY>`. A switch
 * (`false` or an object) gets both: `HERALD_ADMISSION=off`, and `HERALD_ADMISSION_BURST` for a member.
 */
const environmentVariables: readonly EnvVariable[] = [...fieldsByKey].flatMap(([key, field]): EnvVariable[] => {
  const prefix = `HERALD_${envPrefixOverrides[key] ?? snake(key)}`;
  const kind = kindOf(field);
  const own: EnvVariable[] = kind === undefined ? [] : [{ name: prefix, path: [key], kind, secret: isSecret(key, kind) }];
  if (kind !== undefined && kind.type !== 'switch') return own;
  const object = objectOf(field);
  if (object === undefined) return own;
  const shape: Record<string, Schema> = object.shape;
  return own.concat(
    Object.entries(shape).flatMap(([member, memberSchema]): EnvVariable[] => {
      const memberKind = kindOf(memberSchema);
      if (memberKind === undefined) return [];
      return [{ name: `${prefix}_${snake(member)}`, path: [key, member], kind: memberKind, secret: isSecret(member, memberKind) }];
    }),
  );
});

// ---------------------------------------------------------------------------------------------
// The YAML file.

function configFileOf(options: LoadConfigOptions, cwd: string): { path: string; origin: string } | undefined {
  const flag = options.flags.config;
  if (typeof flag === 'string' && flag !== '') return { path: path.resolve(cwd, flag), origin: '--config' };
  const variable = options.env.HERALD_CONFIG;
  if (variable !== undefined && variable !== '') return { path: path.resolve(cwd, variable), origin: 'HERALD_CONFIG' };
  const fallback = path.resolve(cwd, defaultConfigFile);
  return existsSync(fallback) ? { path: fallback, origin: 'default' } : undefined;
}

function readConfigFile(file: string, origin: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOENT') throw new ConfigError(`config file not found: ${file} (named by ${origin})`);
    throw new ConfigError(`cannot read config file ${file}: ${code ?? String(error)}`);
  }

  let document: unknown;
  try {
    document = parseYaml(text, { logLevel: 'error' });
  } catch (error) {
    if (!(error instanceof YAMLParseError)) throw error;
    // Only the first line: the rest quotes the offending source line, which may hold a secret.
    const [summary = 'invalid YAML'] = error.message.split('\n');
    const at = error.linePos?.[0];
    throw new ConfigError(`${file}${at === undefined ? '' : `:${at.line}:${at.col}`}: invalid YAML: ${summary}`);
  }

  if (document === null || document === undefined) return {};
  if (!isPlainObject(document)) throw new ConfigError(`${file}: expected a mapping of option names to values at the top level`);
  const values = withoutNulls(document);

  const unknown = unknownKeys(configSchema, values, []);
  if (unknown.length > 0) {
    const lines = unknown.map(({ key, known }) => {
      const close = suggest(key.split('.').at(-1) ?? key, known);
      return `unknown key "${key}"${close === undefined ? '' : ` (did you mean "${close}"?)`}`;
    });
    throw new ConfigError(`${file}:\n  ${lines.join('\n  ')}`);
  }
  return values;
}

/** Keys the schema does not know, at any depth, with the keys it knows at that level. */
function unknownKeys(schema: Schema, value: unknown, at: string[]): { key: string; known: string[] }[] {
  const object = objectOf(schema);
  if (object === undefined || !isPlainObject(value)) return [];
  const shape: Record<string, Schema> = object.shape;
  return Object.entries(value).flatMap(([key, member]) => {
    const field = shape[key];
    if (field === undefined) return [{ key: [...at, key].join('.'), known: Object.keys(shape) }];
    return unknownKeys(field, member, [...at, key]);
  });
}

/** YAML `key:` with no value means "not set", as an unset variable does. */
function withoutNulls(value: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) {
    if (member === null) continue;
    result[key] = isPlainObject(member) ? withoutNulls(member) : member;
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Strings to values.

/** Returns the value, or undefined after adding a problem naming `label` (and never a secret's value). */
function coerce(text: string, kind: ValueKind, label: string, secret: boolean, problems: string[]): unknown {
  const got = secret ? '' : `, got ${JSON.stringify(text)}`;
  const trimmed = text.trim();
  switch (kind.type) {
    case 'string':
      return text;
    case 'integer':
      if (/^[+-]?\d+$/.test(trimmed)) return Number(trimmed);
      problems.push(`${label}: expected a whole number${got}`);
      return undefined;
    case 'count':
      if (trimmed.toLowerCase() === 'auto') return 'auto';
      if (/^\+?\d+$/.test(trimmed)) return Number(trimmed);
      problems.push(`${label}: expected a whole number or auto${got}`);
      return undefined;
    case 'number':
      if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(trimmed)) return Number(trimmed);
      problems.push(`${label}: expected a number${got}`);
      return undefined;
    case 'boolean': {
      const word = trimmed.toLowerCase();
      if (truthy.has(word)) return true;
      if (falsy.has(word)) return false;
      problems.push(`${label}: expected true/false, 1/0, yes/no or on/off${got}`);
      return undefined;
    }
    case 'switch': {
      const word = trimmed.toLowerCase();
      // `{}` merges into what lower sources set, and fills defaults for the rest.
      if (truthy.has(word)) return {};
      if (falsy.has(word)) return false;
      problems.push(`${label}: expected on or off${got}`);
      return undefined;
    }
    case 'enum':
      if (kind.options.includes(trimmed)) return trimmed;
      problems.push(`${label}: expected one of ${kind.options.join(', ')}${got}`);
      return undefined;
    case 'list':
      return trimmed
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
  }
}

function describeKind(kind: ValueKind): string {
  switch (kind.type) {
    case 'integer':
      return 'integer';
    case 'number':
      return 'number';
    case 'boolean':
      return 'true|false';
    case 'string':
      return 'string';
    case 'enum':
      return kind.options.join('|');
    case 'list':
      return 'comma-separated list';
    case 'switch':
      return 'on|off';
    case 'count':
      return 'integer|auto';
  }
}

function describeDefault(variable: EnvVariable, fallback: unknown): string {
  if (variable.kind.type === 'switch') return fallback === false ? ' (default: off)' : ' (default: on)';
  if (fallback === undefined) return variable.path.length > 1 ? ` (sets ${variable.path.join('.')})` : ' (default: unset)';
  if (Array.isArray(fallback) && fallback.length === 0) return ' (default: empty)';
  const shown = typeof fallback === 'string' || typeof fallback === 'number' || typeof fallback === 'boolean' ? String(fallback) : JSON.stringify(fallback);
  return ` (default: ${shown})`;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets `at` in `root` and remembers where it came from. */
function mergeAt(root: Record<string, unknown>, at: readonly string[], value: unknown, source: string, sources: Map<string, string>): void {
  merge(root, at, value);
  recordSources(at, value, source, sources);
}

/** Merges objects into objects, so that each source overrides only what it names; anything else replaces. */
function merge(target: Record<string, unknown>, at: readonly string[], value: unknown): void {
  const [head, ...rest] = at;
  if (head === undefined) return;
  const existing = target[head];
  if (rest.length > 0) {
    const child = isPlainObject(existing) ? existing : {};
    target[head] = child;
    merge(child, rest, value);
  } else if (isPlainObject(value) && isPlainObject(existing)) {
    for (const [key, member] of Object.entries(value)) merge(existing, [key], member);
  } else {
    target[head] = isPlainObject(value) ? structuredClone(value) : value;
  }
}

function recordSources(at: readonly string[], value: unknown, source: string, sources: Map<string, string>): void {
  sources.set(at.join('.'), source);
  if (isPlainObject(value)) for (const [key, member] of Object.entries(value)) recordSources([...at, key], member, source, sources);
}

/** Where the value at `at` (or the nearest enclosing one, or the ones inside it) came from. */
function sourceOf(at: string, sources: Map<string, string>): string | undefined {
  for (let parts = at.split('.'); parts.length > 0 && parts[0] !== ''; parts = parts.slice(0, -1)) {
    const source = sources.get(parts.join('.'));
    if (source !== undefined) return source;
  }
  const inner = new Set([...sources].filter(([key]) => at === '' || key.startsWith(`${at}.`)).map(([, source]) => source));
  return inner.size > 0 ? [...inner].join(', ') : undefined;
}

function valueAt(value: unknown, at: readonly string[]): unknown {
  let current = value;
  for (const key of at) current = isPlainObject(current) ? current[key] : undefined;
  return current;
}

function snake(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function kebab(camel: string): string {
  return camel.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined;
  return typeof error.code === 'string' ? error.code : undefined;
}

/** The closest candidate by edit distance after ignoring case, `_` and `-`; undefined when none is close. */
function suggest(name: string, candidates: readonly string[]): string | undefined {
  const normal = (text: string) => text.toLowerCase().replace(/[-_]/g, '');
  const wanted = normal(name);
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(wanted, normal(candidate));
    if (distance <= Math.max(1, Math.floor(wanted.length / 4)) && (best === undefined || distance < best.distance)) best = { candidate, distance };
  }
  return best?.candidate;
}

/** Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps ("prot" → "port") cost 1. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const above = rows[i - 1] ?? [];
    const twoAbove = rows[i - 2] ?? [];
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      let best = Math.min((above[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (above[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, (twoAbove[j - 2] ?? 0) + 1);
      row.push(best);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}
