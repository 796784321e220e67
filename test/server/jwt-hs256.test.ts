import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SignJWT, jwtVerify } from 'jose';
import { verifyHs256 } from '../../server/src/jwt-hs256.js';

const secret = 'a-test-secret-of-at-least-32-characters';
const key = Buffer.from(secret);
const now = Date.parse('2026-11-27T10:00:00Z');
const seconds = Math.floor(now / 1000);
const checks = { issuer: 'https://id.example.com', audience: 'herald', now };
/** The same checks, as jose's jwtVerify takes them. */
const joseChecks = { algorithms: ['HS256'], issuer: checks.issuer, audience: checks.audience, currentDate: new Date(now) };

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS of any header and payload, signed with HMAC-SHA256 whatever the header says. */
function token(header: object, payload: unknown, signingKey: Buffer | string = key): string {
  const input = `${encode(header)}.${encode(payload)}`;
  return `${input}.${createHmac('sha256', signingKey).update(input).digest('base64url')}`;
}

const good = { sub: 'alice', iss: checks.issuer, aud: checks.audience, iat: seconds - 60, exp: seconds + 600 };
const hs256 = { alg: 'HS256', typ: 'JWT' };

/** What jose's jwtVerify decides for the same token and checks: the reference this module must agree with. */
async function joseAccepts(jwt: string): Promise<boolean> {
  try {
    await jwtVerify(jwt, key, joseChecks);
    return true;
  } catch {
    return false;
  }
}

describe('HS256 JWT verification (node:crypto)', () => {
  it('accepts a token jose signed, with the payload jose reads', async () => {
    const jwt = await new SignJWT({ scope: 'devices' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setIssuer(checks.issuer)
      .setAudience(['other', 'herald'])
      .setIssuedAt(seconds)
      .setExpirationTime(seconds + 60)
      .sign(key);
    const { payload } = await jwtVerify(jwt, key, joseChecks);
    expect(verifyHs256(jwt, key, checks)).toEqual(payload);
  });

  const cases: [string, string, boolean][] = [
    ['a valid token', token(hs256, good), true],
    ['no iss and no aud, both required here', token(hs256, { sub: 'alice' }), false],
    ['an audience among several', token(hs256, { ...good, aud: ['x', 'herald'] }), true],
    ['the wrong secret', token(hs256, good, 'another-secret-of-at-least-32-characters'), false],
    ['a payload changed after signing', (() => {
      const [h, , s] = token(hs256, good).split('.');
      return `${h}.${encode({ ...good, sub: 'mallory' })}.${s}`;
    })(), false],
    ['a signature cut short', token(hs256, good).slice(0, -2), false],
    ['alg none', `${encode({ alg: 'none' })}.${encode(good)}.`, false],
    ['alg none with a signature', token({ alg: 'none' }, good), false],
    ['alg HS512', token({ alg: 'HS512' }, good), false],
    ['alg RS256', token({ alg: 'RS256' }, good), false],
    ['a critical extension', token({ ...hs256, crit: ['exp'] }, good), false],
    ['expired a second ago', token(hs256, { ...good, exp: seconds - 1 }), false],
    ['expiring this very second', token(hs256, { ...good, exp: seconds }), false],
    ['not valid for another minute', token(hs256, { ...good, nbf: seconds + 60 }), false],
    ['valid from now on', token(hs256, { ...good, nbf: seconds }), true],
    ['exp that is not a number', token(hs256, { ...good, exp: String(seconds + 600) }), false],
    ['iat that is not a number', token(hs256, { ...good, iat: 'yesterday' }), false],
    ['another issuer', token(hs256, { ...good, iss: 'https://evil.example.com' }), false],
    ['another audience', token(hs256, { ...good, aud: 'someone-else' }), false],
    ['no audience', token(hs256, { ...good, aud: undefined }), false],
    ['a payload that is an array', token(hs256, [good]), false],
    ['a payload that is a string', token(hs256, 'alice'), false],
    ['a header that is not JSON', (() => {
      const [, p] = token(hs256, good).split('.');
      const input = `${Buffer.from('{alg:HS256}').toString('base64url')}.${p}`;
      return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
    })(), false],
    ['two segments', token(hs256, good).split('.').slice(0, 2).join('.'), false],
    ['four segments', `${token(hs256, good)}.x`, false],
  ];

  it.each(cases)('%s: agrees with jose', async (_name, jwt, accepted) => {
    expect(await joseAccepts(jwt)).toBe(accepted);
    expect(verifyHs256(jwt, key, checks) !== undefined).toBe(accepted);
  });

  it('refuses base64url segments with characters outside the alphabet, which Buffer alone would skip', () => {
    const jwt = token(hs256, good);
    expect(verifyHs256(jwt, key, checks)).toBeDefined();
    for (const variant of [`${jwt}=`, `${jwt}==`, jwt.replace('.', '=.'), `${jwt.slice(0, -4)}+${jwt.slice(-4)}`, ` ${jwt}`]) {
      expect(verifyHs256(variant, key, checks), variant).toBeUndefined();
    }
  });

  it('refuses a sub that is not a string, and an unencoded payload header, which jose would let through', () => {
    expect(verifyHs256(token(hs256, { ...good, sub: 42 }), key, checks)).toBeUndefined();
    expect(verifyHs256(token({ ...hs256, b64: true }, good), key, checks)).toBeUndefined();
  });

  it('checks issuer and audience only when they are configured', () => {
    const bare = token(hs256, { sub: 'alice', exp: seconds + 60 });
    expect(verifyHs256(bare, key, { now })).toEqual({ sub: 'alice', exp: seconds + 60 });
    expect(verifyHs256(bare, key, { now, issuer: checks.issuer })).toBeUndefined();
    expect(verifyHs256(bare, key, { now, audience: checks.audience })).toBeUndefined();
  });
});
