import { topicName } from '@herald/protocol';
import { HeraldError } from './errors.js';
import { readBody, type Context, type Router } from './http.js';
import { createPublishing, type PublishDeps } from './publish.js';

/**
 * ntfy's priority names and numbers (https://docs.ntfy.sh/publish/#message-priority). Herald's scale is the same
 * one: 1 to 5, 3 by default, 5 the most urgent, so each maps to itself.
 */
const priorities: Readonly<Record<string, number>> = {
  '1': 1,
  min: 1,
  '2': 2,
  low: 2,
  '3': 3,
  default: 3,
  '4': 4,
  high: 4,
  '5': 5,
  urgent: 5,
  max: 5,
};

/** The message ntfy stores when a publish has no body and no `Message`: scripts use such publishes as triggers. */
export const triggeredBody = 'triggered';

/** Each field's names, in ntfy's order: tried as headers first, then as query parameters (ntfy's `readParam`). */
const params = {
  title: ['x-title', 'title', 'ti', 't'],
  message: ['x-message', 'message', 'm'],
  priority: ['x-priority', 'priority', 'prio', 'p'],
  tags: ['x-tags', 'tags', 'tag', 'ta'],
  click: ['x-click', 'click'],
  icon: ['x-icon', 'icon'],
} as const;

/** `v1`, `v2`, …: kept for Herald's own API versions, so a later `/v2` never collides with a topic. */
const reservedTopic = /^v\d+$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Node reads header bytes as Latin-1; curl sends UTF-8 as is, so decode the bytes again when they are valid UTF-8. */
function headerText(value: string): string {
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    return value;
  }
}

function readParam(ctx: Context, names: readonly string[]): string | undefined {
  for (const name of names) {
    const header = ctx.req.headers[name];
    const value = Array.isArray(header) ? header[0] : header;
    if (value !== undefined && value !== '') return headerText(value);
  }
  for (const name of names) {
    const value = ctx.url.searchParams.get(name);
    if (value !== null && value !== '') return value;
  }
  return undefined;
}

function parsePriority(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const priority = priorities[raw.trim().toLowerCase()];
  if (priority === undefined) throw new HeraldError('invalid_priority', 'Priority must be 1 to 5, or min, low, default, high, urgent or max');
  return priority;
}

/** ntfy sends the token as the Basic password (`curl -u :TOKEN`); the user name, if any, is ignored. */
function basicPassword(ctx: Context): string | undefined {
  const match = /^Basic\s+(\S+)\s*$/i.exec(ctx.req.headers.authorization ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon === -1 ? '' : decoded.slice(colon + 1);
  return password === '' ? undefined : password;
}

/**
 * ntfy-style quick publish, an addition to contract v1: `POST /<topic>` with the message as a plain-text body and
 * `Title`, `Priority`, `Tags`, `Click`, `Icon` headers (or ntfy's aliases, or query parameters). It goes through
 * the same path as `POST /v1/notifications` with `to: {topics: [topic]}`, so limits, error codes, topic-limited
 * app tokens, `Idempotency-Key` and the publish rate limit are the same. A fallback route: it never shadows
 * another route.
 */
export function registerNtfy(router: Router, deps: PublishDeps): void {
  const { authorize, publish } = createPublishing(deps);

  router.fallback('POST', '/:topic', async (ctx) => {
    const topic = topicName.safeParse(ctx.params.topic);
    if (!topic.success) throw new HeraldError('invalid_topic', 'topics are 1–64 letters, digits, ".", "_" or "-"; other paths are not Herald endpoints');
    if (reservedTopic.test(topic.data)) throw new HeraldError('invalid_topic', `${topic.data} is reserved for Herald's API; publish to it with POST /v1/notifications`);
    const password = basicPassword(ctx);
    const publisher = await authorize(password === undefined ? ctx : { ...ctx, token: password });
    const bytes = await readBody(ctx.req, deps.config.maxBodyBytes, 'the message as plain text');
    let text: string;
    try {
      text = utf8.decode(bytes).trim();
    } catch {
      throw new HeraldError('invalid_body', 'body: the message must be UTF-8 text');
    }
    const priority = parsePriority(readParam(ctx, params.priority));
    const tags = readParam(ctx, params.tags)
      ?.split(',')
      .map((tag) => tag.trim())
      .filter((tag) => tag !== '');
    const url = readParam(ctx, params.click);
    const icon = readParam(ctx, params.icon);
    const request = {
      to: { topics: [topic.data] },
      // ntfy's apps show the topic where a notification has no title.
      title: readParam(ctx, params.title) ?? topic.data,
      body: text || readParam(ctx, params.message) || triggeredBody,
      ...(priority === undefined ? {} : { priority }),
      ...(tags === undefined || tags.length === 0 ? {} : { tags }),
      ...(url === undefined ? {} : { url }),
      ...(icon === undefined ? {} : { icon }),
    };
    return { status: 202, body: await publish(ctx, publisher, request) };
  });
}
