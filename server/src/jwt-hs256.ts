/**
 * HS256 JWT verification with node:crypto, synchronously. jose verifies through WebCrypto, whose HMAC is an async
 * job on the thread pool: 50–150 µs of a 300–400 µs device handshake on the machines measured, which a reconnect
 * storm pays for every device because a restarted server has verified no JWT yet. The checks are those jose's
 * `jwtVerify` makes for a compact JWS with `algorithms: ['HS256']` and no other options than issuer and audience
 * (RFC 7515 §5.2, RFC 7519 §7.2).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { JWTPayload } from 'jose';

export interface ClaimChecks {
  /** `iss` must equal this, when given. */
  issuer?: string | undefined;
  /** `aud` must be this or an array holding it, when given. */
  audience?: string | undefined;
  /** The time to check `exp` and `nbf` against, epoch ms. */
  now: number;
}

/** A base64url segment: the alphabet only, no padding (Buffer would skip anything else and accept a variant). */
const segment = /^[A-Za-z0-9_-]+$/;

function decodeObject(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const isNumberOrAbsent = (value: unknown) => value === undefined || typeof value === 'number';

/** The payload of `token` when it is an HS256 JWT signed with `key` whose claims hold at `checks.now`; otherwise undefined. */
export function verifyHs256(token: string, key: Buffer, checks: ClaimChecks): JWTPayload | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((part) => segment.test(part))) return undefined;
  const [encodedHeader, encodedPayload, signature] = parts as [string, string, string];
  const header = decodeObject(encodedHeader);
  // No other algorithm (`none` above all), no unencoded payload, and no critical extension this code would not honour.
  if (header?.alg !== 'HS256' || header.b64 !== undefined || header.crit !== undefined) return undefined;
  const expected = createHmac('sha256', key).update(`${encodedHeader}.${encodedPayload}`).digest();
  const given = Buffer.from(signature, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;

  const payload = decodeObject(encodedPayload);
  if (!payload) return undefined;
  const { iss, sub, aud, exp, nbf, iat } = payload;
  if (!isNumberOrAbsent(exp) || !isNumberOrAbsent(nbf) || !isNumberOrAbsent(iat) || !(sub === undefined || typeof sub === 'string')) return undefined;
  const now = Math.floor(checks.now / 1000);
  if (typeof exp === 'number' && exp <= now) return undefined;
  if (typeof nbf === 'number' && nbf > now) return undefined;
  if (checks.issuer !== undefined && iss !== checks.issuer) return undefined;
  if (checks.audience !== undefined && !(aud === checks.audience || (Array.isArray(aud) && aud.includes(checks.audience)))) return undefined;
  return payload;
}
