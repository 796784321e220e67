import { createHash } from 'node:crypto';
import { ParseError, parseUnknown, publishBatchRequest, publishFieldCodes, publishRequest, type PublishRequest } from '@herald/protocol';
import type { Principal } from './auth.js';
import type { Broker } from './broker/broker.js';
import type { Config } from './config.js';
import { HeraldError } from './errors.js';
import { notificationId } from './ids.js';
import { userFrame } from './fanout.js';
import type { Guard } from './guard.js';
import { readJson, type Context, type Router } from './http.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './rate-limit.js';
import type { Fanout, PublishInput, PublishOutcome, Store } from './store/store.js';

export interface PublishDeps {
  config: Config;
  store: Store;
  broker: Broker;
  guard: Guard;
  metrics: Metrics;
  fanout: (fanout: Fanout) => void;
  publishLimit: RateLimiter | undefined;
  now: () => number;
}

export type Publisher = Extract<Principal, { kind: 'app' | 'admin' }>;

/** Validates one publish body, turning the first bad field into its stable code. */
export function parsePublish(data: unknown, where = ''): PublishRequest {
  try {
    return parseUnknown(publishRequest, data);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    const field = error.issues[0]?.path[0];
    const code = (typeof field === 'string' ? publishFieldCodes[field] : undefined) ?? 'invalid_request';
    throw new HeraldError(code, where + error.message);
  }
}

/** App tokens limited to topics may publish to those topics only. */
function checkTopics(publisher: Publisher, request: PublishRequest, where = ''): void {
  if (publisher.kind !== 'app' || publisher.topics === null) return;
  const allowed = publisher.topics;
  const { users, topics, all } = request.to;
  if (all === true || (users?.length ?? 0) > 0) {
    throw new HeraldError('topic_not_allowed', `${where}this app token may publish to its topics only (${allowed.join(', ')})`);
  }
  const denied = (topics ?? []).filter((t) => !allowed.includes(t));
  if (denied.length > 0) throw new HeraldError('topic_not_allowed', `${where}this app token may not publish to ${denied.join(', ')}`);
}

function idempotencyKey(ctx: Context): string | undefined {
  const header = ctx.req.headers['idempotency-key'];
  const key = Array.isArray(header) ? header[0] : header;
  if (key === undefined) return undefined;
  if (key.length === 0 || key.length > 255) throw new HeraldError('invalid_request', 'Idempotency-Key must be 1 to 255 characters');
  return key;
}

/** Hashes the validated request, so unknown fields neither change the hash nor reach JSON.stringify. */
function requestHash(request: PublishRequest): string {
  return createHash('sha256').update(JSON.stringify(request)).digest('hex');
}

function outcomeError(outcome: Exclude<PublishOutcome, { ok: true }>, where = ''): HeraldError {
  switch (outcome.code) {
    case 'unknown_user':
      return new HeraldError('unknown_user', `${where}no such user: ${outcome.users.join(', ')}`);
    case 'idempotency_key_reused':
      return new HeraldError('idempotency_key_reused', `${where}this Idempotency-Key was used with a different request`);
  }
}

function accepted(outcome: Fanout) {
  return {
    id: outcome.id,
    recipients: outcome.recipients,
    ...(outcome.scheduledFor === undefined ? {} : { deliverAt: new Date(outcome.scheduledFor).toISOString() }),
  };
}

/** The 202 body of one publish. */
export type Accepted = ReturnType<typeof accepted>;

/** The publish path shared by every way in (`POST /v1/notifications`, ntfy's `POST /<topic>`, RabbitMQ). */
export interface Publishing {
  /** Checks for an app or admin token and takes from its publish rate bucket. */
  authorize: (ctx: Context) => Promise<Publisher>;
  /**
   * Validates `data` as a publish body (stable codes per field), checks an app token's topics, honours
   * `Idempotency-Key`, commits, and hands the outcome to the fan-out. Resolves to the 202 body.
   */
  publish: (ctx: Context, publisher: Publisher, data: unknown) => Promise<Accepted>;
  /**
   * Commits a request already validated, as `publisher` (a token id), and fans it out. A refusal by the store
   * throws its stable code (`unknown_user`, `idempotency_key_reused`). For ways in without an HTTP request (RabbitMQ).
   */
  publishRequest: (request: PublishRequest, publisher: string, key: string | undefined) => Promise<Fanout>;
  /** Runs a store write, timing it as a publish. */
  commit: <T>(work: Promise<T>) => Promise<T>;
  /** Counts a committed outcome and fans it out unless it was an idempotent repeat. */
  deliver: (outcome: Fanout) => void;
}

export function createPublishing(deps: PublishDeps): Publishing {
  const { store, metrics, now } = deps;

  async function authorize(ctx: Context): Promise<Publisher> {
    const publisher = await deps.guard(ctx, 'app', 'admin');
    const wait = deps.publishLimit?.take(publisher.tokenId) ?? 0;
    if (wait > 0) throw new HeraldError('rate_limited', 'publish rate limit reached for this token', { 'retry-after': String(Math.ceil(wait / 1000)) });
    return publisher;
  }

  async function commit<T>(work: Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work;
    } finally {
      metrics.storeLatency.observe({ op: 'publish' }, (performance.now() - started) / 1000);
    }
  }

  function deliver(outcome: Fanout): void {
    metrics.publishes.inc({ result: outcome.duplicate ? 'duplicate' : outcome.scheduledFor === undefined ? 'delivered' : 'scheduled' });
    if (!outcome.duplicate) deps.fanout(outcome);
  }

  async function publish(ctx: Context, publisher: Publisher, data: unknown): Promise<Accepted> {
    const key = idempotencyKey(ctx);
    const request = parsePublish(data);
    checkTopics(publisher, request);
    return accepted(await publishRequest(request, publisher.tokenId, key));
  }

  async function publishRequest(request: PublishRequest, publisher: string, key: string | undefined): Promise<Fanout> {
    const input: PublishInput = { id: notificationId(), request, publisher, now: now() };
    if (key !== undefined) input.idempotency = { key, hash: requestHash(request) };
    const outcome = await commit(store.publish(input));
    if (!outcome.ok) throw outcomeError(outcome);
    deliver(outcome);
    return outcome;
  }

  return { authorize, publish, publishRequest, commit, deliver };
}

/** `POST /v1/notifications`, `POST /v1/notifications/batch`, `DELETE /v1/notifications/:id`. */
export function registerPublish(router: Router, deps: PublishDeps): void {
  const { store, now } = deps;
  const { authorize, publish, commit, deliver } = createPublishing(deps);

  router.add('POST', '/v1/notifications', async (ctx) => {
    const publisher = await authorize(ctx);
    idempotencyKey(ctx); // a bad key is refused before the body is read
    return { status: 202, body: await publish(ctx, publisher, await readJson(ctx.req, deps.config.maxBodyBytes)) };
  });

  router.add('POST', '/v1/notifications/batch', async (ctx) => {
    const publisher = await authorize(ctx);
    const key = idempotencyKey(ctx);
    const { notifications } = parseUnknown(publishBatchRequest, await readJson(ctx.req, deps.config.maxBodyBytes));
    const at = now();
    const inputs = notifications.map((item, index): PublishInput => {
      const where = `notifications[${index}]: `;
      const request = parsePublish(item, where);
      checkTopics(publisher, request, where);
      const input: PublishInput = { id: notificationId(), request, publisher: publisher.tokenId, now: at };
      if (key !== undefined) input.idempotency = { key: `${key}#${index}`, hash: requestHash(request) };
      return input;
    });
    const outcomes = await commit(store.publishBatch(inputs));
    const failure = outcomes.find((o) => !o.ok);
    if (failure) throw outcomeError(failure, `notifications[${failure.index ?? 0}]: `);
    const ok = outcomes.filter((o): o is Fanout => o.ok);
    ok.forEach(deliver);
    return { status: 202, body: { notifications: ok.map(accepted) } };
  });

  router.add('DELETE', '/v1/notifications/:id', async (ctx) => {
    const publisher = await deps.guard(ctx, 'app', 'admin');
    const id = ctx.params.id ?? '';
    const removed = await store.retract(id, publisher.kind === 'admin' ? undefined : publisher.tokenId);
    if (!removed) throw new HeraldError('not_found', `no notification ${id} published by this token`);
    deps.broker.publish([...removed].map(([user, seqs]) => userFrame(user, { type: 'deleted', seqs })));
    return { status: 204 };
  });
}
