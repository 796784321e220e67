/**
 * The server's HTTP API as the desktop app uses it: checking a server URL, signing in, and the inbox.
 * Errors carry stable codes the first-run window turns into plain sentences; no error ever holds a token.
 */
import { z } from 'zod';
import { parseUnknown, type InboxPage, type InboxQuery, type Notification, type ReadTarget } from '@herald/protocol';

export type ApiErrorCode = 'invalid_url' | 'unreachable' | 'not_herald' | 'unauthorized' | 'rate_limited' | 'server_error' | 'bad_response';

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The sentence the first-run window shows for each failure. */
export const apiErrorText: Record<ApiErrorCode, string> = {
  invalid_url: 'That is not an http:// or https:// address.',
  unreachable: 'The server did not answer. Check the address and your connection.',
  not_herald: 'Something answered at that address, but it is not a Herald server.',
  unauthorized: 'Wrong user name or password, or the token was revoked.',
  rate_limited: 'Too many attempts. Wait a minute and try again.',
  server_error: 'The server had a problem. Try again later.',
  bad_response: 'The server sent an answer this app does not understand.',
};

/** One spelling per server: origin plus path, no trailing slash (`https://Host/herald/` → `https://host/herald`). */
export function canonicalServer(url: URL): string {
  return (url.origin + url.pathname).replace(/\/+$/, '');
}

/** An http(s) server URL (https when the scheme is left out) reduced to its origin plus path, without a trailing slash; throws `invalid_url`. */
export function normalizeServerUrl(raw: string): string {
  let url: URL;
  const text = raw.trim();
  try {
    // People type host names; an address without a scheme means https.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `https://${text}`);
  } catch {
    throw new ApiError('invalid_url', apiErrorText.invalid_url);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ApiError('invalid_url', apiErrorText.invalid_url);
  if (url.username !== '' || url.password !== '') throw new ApiError('invalid_url', 'Leave the user name and password out of the address.');
  return canonicalServer(url);
}

const health = z.object({ status: z.literal('ok'), service: z.literal('herald') });
const login = z.object({ token: z.string().min(1), user: z.object({ id: z.int(), name: z.string() }) });
const unread = z.object({ unread: z.int().min(0) });
const page = z.object({ items: z.array(z.unknown()), head: z.int().min(0), unread: z.int().min(0) });

export interface ApiOptions {
  /** Normalized server URL (see `normalizeServerUrl`). */
  server: string;
  /** The device token, read from the vault when needed; null before sign-in. */
  token?: () => string | null;
  /** Milliseconds before a request is abandoned as `unreachable`. Default 10,000. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export function createApi(options: ApiOptions) {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;

  async function request(method: string, path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = {};
    const token = options.token?.() ?? null;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await doFetch(options.server + path, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
    } catch {
      throw new ApiError('unreachable', apiErrorText.unreachable);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new ApiError('not_herald', apiErrorText.not_herald, response.status);
    }
    if (response.ok) return json;
    if (response.status === 401) throw new ApiError('unauthorized', apiErrorText.unauthorized, 401);
    if (response.status === 429) throw new ApiError('rate_limited', apiErrorText.rate_limited, 429);
    if (response.status >= 500) throw new ApiError('server_error', apiErrorText.server_error, response.status);
    const error = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).safeParse(json);
    if (!error.success) throw new ApiError('not_herald', apiErrorText.not_herald, response.status);
    throw new ApiError('bad_response', error.data.error.message, response.status);
  }

  function parse<T>(schema: z.ZodType<T>, value: unknown): T {
    try {
      return parseUnknown(schema, value);
    } catch {
      throw new ApiError('bad_response', apiErrorText.bad_response);
    }
  }

  return {
    /** Resolves if `server` is a Herald server; throws `unreachable` or `not_herald` otherwise. */
    async check(): Promise<void> {
      const body = await request('GET', '/healthz').catch((error: unknown) => {
        throw error instanceof ApiError && error.code !== 'unreachable' ? new ApiError('not_herald', apiErrorText.not_herald) : error;
      });
      if (!health.safeParse(body).success) throw new ApiError('not_herald', apiErrorText.not_herald);
    },
    async login(name: string, password: string, label: string): Promise<z.infer<typeof login>> {
      return parse(login, await request('POST', '/v1/login', { name, password, label }));
    },
    async me(): Promise<{ user: { id: number; name: string } }> {
      return parse(z.object({ user: z.object({ id: z.int(), name: z.string() }) }).loose(), await request('GET', '/v1/me'));
    },
    async listInbox(query: InboxQuery): Promise<InboxPage> {
      const params = new URLSearchParams();
      if (query.before !== undefined) params.set('before', String(query.before));
      if (query.limit !== undefined) params.set('limit', String(query.limit));
      if (query.unread === true) params.set('unread', '1');
      if (query.topic !== undefined) params.set('topic', query.topic);
      if (query.minPriority !== undefined) params.set('minPriority', String(query.minPriority));
      if (query.q !== undefined) params.set('q', query.q);
      const search = params.toString();
      const body = parse(page, await request('GET', `/v1/inbox${search === '' ? '' : `?${search}`}`));
      return { ...body, items: body.items as Notification[] };
    },
    async markRead(target: ReadTarget): Promise<{ unread: number }> {
      return parse(unread, await request('POST', '/v1/inbox/read', target));
    },
  };
}
export type Api = ReturnType<typeof createApi>;
