import { z } from 'zod';
import { parseUnknown } from '@herald/protocol';
import { generateToken, hashToken, newId, verifyPassword } from './auth.js';
import type { Config } from './config.js';
import { HeraldError } from './errors.js';
import { readJson, type Router } from './http.js';
import type { RateLimiter } from './rate-limit.js';
import type { Store } from './store/store.js';

const loginRequest = z.object({
  name: z.string().min(1).max(256),
  password: z.string().min(1).max(1024),
  label: z.string().max(128).optional(),
});

/** A scrypt hash to verify against when the user does not exist, so timing does not reveal user names. */
const decoyHash = 'scrypt$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

/** `POST /v1/login`: a username and password buy a new device token. */
export function registerLogin(router: Router, deps: { config: Config; store: Store; limit: RateLimiter | undefined; now: () => number }): void {
  router.add('POST', '/v1/login', async (ctx) => {
    const wait = deps.limit?.take(ctx.ip) ?? 0;
    if (wait > 0) throw new HeraldError('rate_limited', 'too many login attempts', { 'retry-after': String(Math.ceil(wait / 1000)) });
    const body = parseUnknown(loginRequest, await readJson(ctx.req, deps.config.maxBodyBytes));
    const user = await deps.store.userByName(body.name);
    const valid = await verifyPassword(body.password, user?.passwordHash ?? decoyHash);
    if (!user || user.passwordHash === null || !valid) throw new HeraldError('unauthorized', 'wrong user name or password');
    const token = generateToken();
    const createdAt = deps.now();
    const ttl = deps.config.deviceTokenTtl;
    await deps.store.insertToken({
      id: newId('tok_'),
      kind: 'device',
      hash: hashToken(token),
      userId: user.id,
      name: null,
      label: body.label ?? 'login',
      topics: null,
      createdAt,
      expiresAt: ttl > 0 ? createdAt + ttl * 1000 : null,
    });
    return { status: 200, body: { token, user: { id: user.id, name: user.name } } };
  });
}
