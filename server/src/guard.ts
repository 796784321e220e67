import type { AuthService, Principal } from './auth.js';
import { bearerToken } from './auth.js';
import { HeraldError } from './errors.js';
import type { Context } from './http.js';
import type { RateLimiter } from './rate-limit.js';

type Kind = Principal['kind'];
type Of<K extends Kind> = Extract<Principal, { kind: K }>;

export type Guard = <K extends Kind>(ctx: Context, ...kinds: K[]) => Promise<Of<K>>;

/** Authenticates a request and checks its token kind; repeated failures from one address are throttled. */
export function createGuard(auth: AuthService, authFailures: RateLimiter | undefined): Guard {
  return async <K extends Kind>(ctx: Context, ...kinds: K[]): Promise<Of<K>> => {
    const wait = authFailures?.wait(ctx.ip) ?? 0;
    if (wait > 0) throw new HeraldError('rate_limited', 'too many failed authentications', { 'retry-after': String(Math.ceil(wait / 1000)) });
    const token = ctx.token ?? bearerToken(ctx.req);
    if (token === undefined) throw new HeraldError('unauthorized', 'send Authorization: Bearer <token>', { 'www-authenticate': 'Bearer' });
    const principal = await auth.authenticate(token, ctx.req.socket);
    if (!principal) {
      authFailures?.take(ctx.ip);
      throw new HeraldError('unauthorized', 'invalid, expired or revoked token', { 'www-authenticate': 'Bearer' });
    }
    if (!(kinds as Kind[]).includes(principal.kind)) {
      throw new HeraldError('forbidden', `this endpoint needs ${kinds.map((k) => (k === 'admin' || k === 'app' ? 'an ' : 'a ') + k).join(' or ')} token`);
    }
    return principal as Of<K>;
  };
}
