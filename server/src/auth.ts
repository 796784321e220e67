import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { IncomingMessage } from 'node:http';
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { userName } from '@herald/protocol';
import type { Config } from './config.js';
import { defaults } from './defaults.js';
import { verifyHs256 } from './jwt-hs256.js';
import type { Store, TokenRecord } from './store/store.js';

const scryptAsync = promisify(scrypt) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;

export type Principal =
  | { kind: 'admin'; tokenId: string }
  | { kind: 'app'; tokenId: string; name: string; topics: string[] | null }
  | { kind: 'device'; tokenId: string; user: { id: number; name: string }; expiresAt: number | null };

/** Opaque tokens carry a prefix so that leaked ones are easy to spot and scan for. */
export const tokenPrefix = 'hrld_';

/** 32 random bytes, base64url, prefixed. Shown once; only its hash is stored. */
export function generateToken(): string {
  return tokenPrefix + randomBytes(32).toString('base64url');
}

/** Tokens are high-entropy, so a fast hash is safe and keeps auth off the hot path's budget. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newId(prefix: string): string {
  return prefix + randomBytes(9).toString('base64url');
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, 32);
  return `scrypt$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64url');
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64url'), expected.length);
  return timingSafeEqual(actual, expected);
}

/** The bearer token of a request, if any. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

function looksLikeJwt(token: string): boolean {
  return token.startsWith('eyJ') && token.split('.').length === 3;
}

/**
 * Turns tokens into principals. Opaque tokens are verified against an in-memory cache of the store
 * (revocation invalidates it), so a reconnect storm does not become a query storm.
 */
export class AuthService {
  /** By token hash: the record, and for device tokens the user, so a connect costs no query. */
  readonly #cache = new Map<string, { record: TokenRecord; user?: { id: number; name: string } }>();
  /** The last token hashed on each keep-alive connection; gone with the connection. */
  readonly #connectionHashes = new WeakMap<object, { token: string; hash: string }>();
  readonly #adminHash: Buffer | undefined;
  /** The HS256 secret's bytes (verified with node:crypto, jwt-hs256.ts), or the JWKS key lookup (verified by jose). */
  readonly #jwtKey: Buffer | JWTVerifyGetKey | undefined;
  /**
   * JWTs whose signature and claims were verified, by the token itself, oldest first: a device reconnects with the
   * same JWT until it expires, and a reconnect storm would otherwise verify each one again. An entry still checks
   * `exp` and `nbf` on use, and is kept at most `jwtCacheTtlMs`, so a key removed from the JWKS stops working within
   * that time.
   */
  readonly #verifiedJwts = new Map<string, { sub: string | undefined; exp: number | undefined; nbf: number | undefined; until: number }>();

  constructor(
    readonly store: Store,
    readonly config: Pick<Config, 'adminToken' | 'jwt'>,
    readonly now: () => number = Date.now,
  ) {
    this.#adminHash = config.adminToken === undefined ? undefined : Buffer.from(hashToken(config.adminToken), 'hex');
    const jwt = config.jwt;
    if (jwt?.secret !== undefined) this.#jwtKey = Buffer.from(jwt.secret, 'utf8');
    else if (jwt?.jwksUrl !== undefined) this.#jwtKey = createRemoteJWKSet(new URL(jwt.jwksUrl));
  }

  /**
   * The principal for a token, or undefined when it is unknown, revoked or expired. `connection` (a keep-alive
   * socket) lets its later requests with the same token skip hashing it again.
   */
  async authenticate(token: string, connection?: object): Promise<Principal | undefined> {
    if (looksLikeJwt(token)) return this.#verifyJwt(token);
    const hash = this.#hashFor(token, connection);
    if (this.#adminHash && timingSafeEqual(Buffer.from(hash, 'hex'), this.#adminHash)) return { kind: 'admin', tokenId: 'env-admin' };
    let entry = this.#cache.get(hash);
    if (!entry) {
      const record = await this.store.tokenByHash(hash);
      if (!record) return undefined;
      const user = record.userId === null ? undefined : await this.store.userById(record.userId);
      entry = { record, ...(user ? { user: { id: user.id, name: user.name } } : {}) };
      this.#cache.set(hash, entry);
    }
    const { record, user } = entry;
    if (record.expiresAt !== null && record.expiresAt <= this.now()) return undefined;
    switch (record.kind) {
      case 'admin':
        return { kind: 'admin', tokenId: record.id };
      case 'app':
        return { kind: 'app', tokenId: record.id, name: record.name ?? record.id, topics: record.topics };
      case 'device':
        return user && { kind: 'device', tokenId: record.id, user, expiresAt: record.expiresAt };
    }
  }

  #hashFor(token: string, connection: object | undefined): string {
    const known = connection && this.#connectionHashes.get(connection);
    if (known?.token === token) return known.hash;
    const hash = hashToken(token);
    if (connection) this.#connectionHashes.set(connection, { token, hash });
    return hash;
  }

  /** Forgets a revoked token, so that its next use goes to the store and fails. */
  forget(tokenId: string): void {
    for (const [hash, { record }] of this.#cache) if (record.id === tokenId) this.#cache.delete(hash);
  }

  /** The claims of a verified JWT, from the cache when it was verified recently; undefined when it is not valid now. */
  async #jwtClaims(token: string): Promise<Pick<JWTPayload, 'sub' | 'exp'> | undefined> {
    const now = this.now();
    const known = this.#verifiedJwts.get(token);
    if (known !== undefined && known.until > now) {
      const valid = (known.exp === undefined || known.exp * 1000 > now) && (known.nbf === undefined || known.nbf * 1000 <= now);
      return valid ? { sub: known.sub, exp: known.exp } : undefined;
    }
    const key = this.#jwtKey;
    if (key === undefined) return undefined;
    const checks = { issuer: this.config.jwt?.issuer, audience: this.config.jwt?.audience };
    let payload: JWTPayload | undefined;
    if (Buffer.isBuffer(key)) payload = verifyHs256(token, key, { ...checks, now });
    else {
      try {
        ({ payload } = await jwtVerify(token, key, { ...checks, algorithms: ['RS256', 'ES256', 'EdDSA', 'PS256'], currentDate: new Date(now) }));
      } catch {
        return undefined;
      }
    }
    if (payload === undefined) return undefined;
    this.#verifiedJwts.delete(token);
    this.#verifiedJwts.set(token, { sub: payload.sub, exp: payload.exp, nbf: payload.nbf, until: now + defaults.jwtCacheTtlMs });
    if (this.#verifiedJwts.size > defaults.jwtCacheMax) this.#verifiedJwts.delete(this.#verifiedJwts.keys().next().value as string);
    return payload;
  }

  async #verifyJwt(token: string): Promise<Principal | undefined> {
    const payload = await this.#jwtClaims(token);
    if (payload === undefined) return undefined;
    const name = userName.safeParse(payload.sub);
    if (!name.success) return undefined;
    // A store that is down is not a bad token: its error goes on (503, close 1013), so devices come back later.
    // Every reconnect of a known user is a read; only the first sign-in writes.
    const user = (await this.store.userByName(name.data)) ?? (await this.store.ensureUser(name.data, this.now()));
    return {
      kind: 'device',
      tokenId: `jwt:${user.name}`,
      user: { id: user.id, name: user.name },
      expiresAt: payload.exp === undefined ? null : payload.exp * 1000,
    };
  }
}
