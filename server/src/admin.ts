import { z } from 'zod';
import { Limits, parseUnknown, topicName, userName } from '@herald/protocol';
import { generateToken, hashPassword, hashToken, newId, type AuthService } from './auth.js';
import type { Broker } from './broker/broker.js';
import type { Config } from './config.js';
import { HeraldError } from './errors.js';
import type { Guard } from './guard.js';
import { readJson, type Router } from './http.js';
import type { Store, TokenRecord } from './store/store.js';

const createUser = z.object({
  name: userName,
  password: z.string().min(8, 'password needs at least 8 characters').max(1024).optional(),
});

const createToken = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('device'),
    user: userName,
    label: z.string().max(128).optional(),
    /** Seconds. */
    expiresIn: z.int().min(60).max(10 * 365 * 24 * 3600).optional(),
  }),
  z.object({ kind: z.literal('app'), name: z.string().min(1).max(Limits.userNameMax), topics: z.array(topicName).max(1000).optional() }),
  z.object({ kind: z.literal('admin'), label: z.string().max(128).optional() }),
]);

export interface AdminDeps {
  config: Config;
  store: Store;
  auth: AuthService;
  broker: Broker;
  guard: Guard;
  now: () => number;
}

/** Users and tokens: `POST /v1/users`, `POST|GET /v1/tokens`, `DELETE /v1/tokens/:id`. */
export function registerAdmin(router: Router, deps: AdminDeps): void {
  const { store, guard, now } = deps;

  router.add('POST', '/v1/users', async (ctx) => {
    await guard(ctx, 'admin');
    const body = parseUnknown(createUser, await readJson(ctx.req, deps.config.maxBodyBytes));
    const hash = body.password === undefined ? null : await hashPassword(body.password);
    const user = await store.createUser(body.name, hash, now());
    if (!user) throw new HeraldError('user_exists', `user ${body.name} already exists`);
    return { status: 201, body: { id: user.id, name: user.name } };
  });

  router.add('POST', '/v1/tokens', async (ctx) => {
    await guard(ctx, 'admin');
    const body = parseUnknown(createToken, await readJson(ctx.req, deps.config.maxBodyBytes));
    const token = generateToken();
    const createdAt = now();
    const record: TokenRecord = {
      id: newId('tok_'),
      kind: body.kind,
      hash: hashToken(token),
      userId: null,
      name: null,
      label: null,
      topics: null,
      createdAt,
      expiresAt: null,
    };
    switch (body.kind) {
      case 'device': {
        const user = await store.userByName(body.user);
        if (!user) throw new HeraldError('unknown_user', `no user named ${body.user}`);
        const ttl = body.expiresIn ?? deps.config.deviceTokenTtl;
        Object.assign(record, { userId: user.id, label: body.label ?? null, expiresAt: ttl > 0 ? createdAt + ttl * 1000 : null });
        break;
      }
      case 'app':
        Object.assign(record, { name: body.name, topics: body.topics ?? null });
        break;
      case 'admin':
        record.label = body.label ?? null;
        break;
    }
    await store.insertToken(record);
    return { status: 201, body: { ...(await describe(store, record)), token } };
  });

  router.add('GET', '/v1/tokens', async (ctx) => {
    await guard(ctx, 'admin');
    const tokens = await store.listTokens();
    return { status: 200, body: { tokens: await Promise.all(tokens.map((t) => describe(store, t))) } };
  });

  router.add('DELETE', '/v1/tokens/:id', async (ctx) => {
    await guard(ctx, 'admin');
    const id = ctx.params.id ?? '';
    const revoked = await store.revokeToken(id);
    if (!revoked) throw new HeraldError('not_found', `no token with id ${id}`);
    deps.auth.forget(id);
    deps.broker.publishControl({ type: 'revoke', tokenId: id });
    return { status: 204 };
  });
}

/** A token as the API shows it: never the secret or its hash. */
async function describe(store: Store, token: TokenRecord) {
  const user = token.userId === null ? undefined : await store.userById(token.userId);
  return {
    id: token.id,
    kind: token.kind,
    ...(user ? { user: user.name } : {}),
    ...(token.name === null ? {} : { name: token.name }),
    label: token.label,
    ...(token.kind === 'app' ? { topics: token.topics } : {}),
    createdAt: new Date(token.createdAt).toISOString(),
    expiresAt: token.expiresAt === null ? null : new Date(token.expiresAt).toISOString(),
  };
}
