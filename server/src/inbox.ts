import { z } from 'zod';
import { Limits, parseUnknown, topicName } from '@herald/protocol';
import type { Broker } from './broker/broker.js';
import type { Config } from './config.js';
import { HeraldError } from './errors.js';
import { toWire, userFrame } from './fanout.js';
import type { Guard } from './guard.js';
import { readJson, type Router } from './http.js';
import type { Store } from './store/store.js';

const seqParam = z.coerce.number().int().min(1);

const inboxQuery = z.object({
  before: seqParam.optional(),
  limit: z.coerce.number().int().min(1).max(Limits.pageMax).default(50),
  unread: z.enum(['0', '1', 'true', 'false']).optional(),
  topic: topicName.optional(),
  minPriority: z.coerce.number().int().min(1).max(5).optional(),
  q: z.string().min(1).max(256).optional(),
});

const readRequest = z.union([
  z.object({ seqs: z.array(z.int().min(1)).min(1).max(Limits.readSeqsMax) }).strict(),
  z.object({ upTo: z.int().min(0) }).strict(),
]);

export interface InboxDeps {
  config: Config;
  store: Store;
  broker: Broker;
  guard: Guard;
  now: () => number;
}

function parseTopic(raw: string | undefined): string {
  const topic = topicName.safeParse(raw);
  if (!topic.success) throw new HeraldError('invalid_topic', 'topics are 1–64 letters, digits, ".", "_" or "-"');
  return topic.data;
}

/** A device's own endpoints: `/v1/me`, topic subscriptions and the inbox. */
export function registerInbox(router: Router, deps: InboxDeps): void {
  const { store, guard, broker, now } = deps;

  router.add('GET', '/v1/me', async (ctx) => {
    const { user } = await guard(ctx, 'device');
    return { status: 200, body: { user, topics: await store.topics(user.id) } };
  });

  router.add('PUT', '/v1/me/topics/:topic', async (ctx) => {
    const { user } = await guard(ctx, 'device');
    await store.subscribe(user.id, parseTopic(ctx.params.topic));
    return { status: 200, body: { topics: await store.topics(user.id) } };
  });

  router.add('DELETE', '/v1/me/topics/:topic', async (ctx) => {
    const { user } = await guard(ctx, 'device');
    const topic = parseTopic(ctx.params.topic);
    if (!(await store.unsubscribe(user.id, topic))) throw new HeraldError('not_found', `not subscribed to ${topic}`);
    return { status: 200, body: { topics: await store.topics(user.id) } };
  });

  router.add('GET', '/v1/inbox', async (ctx) => {
    const { user } = await guard(ctx, 'device');
    const parsed = inboxQuery.safeParse(Object.fromEntries(ctx.url.searchParams));
    if (!parsed.success) {
      const field = parsed.error.issues[0]?.path[0];
      const code = field === 'topic' ? 'invalid_topic' : field === 'before' ? 'invalid_cursor' : 'invalid_request';
      throw new HeraldError(code, `${String(field)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    }
    const { before, limit, unread, topic, minPriority, q } = parsed.data;
    const page = await store.inbox(
      user.id,
      { limit, unreadOnly: unread === '1' || unread === 'true', ...(before === undefined ? {} : { before }), ...(topic === undefined ? {} : { topic }), ...(minPriority === undefined ? {} : { minPriority }), ...(q === undefined ? {} : { q }) },
      now(),
    );
    return { status: 200, body: { items: page.items.map(toWire), head: page.head, unread: page.unread } };
  });

  router.add('POST', '/v1/inbox/read', async (ctx) => {
    const { user } = await guard(ctx, 'device');
    const target = parseUnknown(readRequest, await readJson(ctx.req, deps.config.maxBodyBytes));
    const { unread, changed } = await store.markRead(user.id, target, now());
    if (changed) broker.publish([userFrame(user.id, { type: 'read', ...target, unread })]);
    return { status: 200, body: { unread } };
  });

  router.add('DELETE', '/v1/inbox/:seq', async (ctx) => {
    const { user } = await guard(ctx, 'device');
    const seq = seqParam.safeParse(ctx.params.seq);
    if (!seq.success) throw new HeraldError('invalid_cursor', 'seq must be a positive integer');
    if (!(await store.deleteItem(user.id, seq.data))) throw new HeraldError('not_found', `no item ${seq.data} in this inbox`);
    broker.publish([userFrame(user.id, { type: 'deleted', seqs: [seq.data] })]);
    return { status: 204 };
  });
}
