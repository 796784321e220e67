import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ParseError } from '@herald/protocol';
import { HeraldError } from './errors.js';
import { redactUrl } from './logger.js';

export interface Context {
  req: IncomingMessage;
  url: URL;
  params: Record<string, string>;
  /** Client address (X-Forwarded-For's first hop when trustProxy is on). */
  ip: string;
  /** A token the route took from somewhere other than `Authorization: Bearer` (ntfy's Basic auth); the guard prefers it. */
  token?: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  /** Sent as-is instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
}

export type Handler = (ctx: Context) => Promise<Reply> | Reply;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

function compile(method: string, path: string, handler: Handler): Route {
  const keys: string[] = [];
  const source = path.replace(/:([a-zA-Z]+)/g, (_, key: string) => {
    keys.push(key);
    return '([^/]+)';
  });
  return { method, pattern: new RegExp(`^${source}$`), keys, handler };
}

function paramsOf(route: Route, found: RegExpExecArray): Record<string, string> {
  const params: Record<string, string> = {};
  route.keys.forEach((key, i) => (params[key] = decodeSegment(found[i + 1] ?? '')));
  return params;
}

/** Method + path routing with `:param` segments; 404 and 405 come back as contract errors. */
export class Router {
  readonly #routes: Route[] = [];
  readonly #fallbacks: Route[] = [];

  add(method: string, path: string, handler: Handler): this {
    this.#routes.push(compile(method, path, handler));
    return this;
  }

  /**
   * A catch-all route, tried only when no route added with `add` has this path, and only for its own method.
   * So it never shadows a route, never turns another path's 404 into a 405, and `POST /healthz` stays a 405.
   */
  fallback(method: string, path: string, handler: Handler): this {
    this.#fallbacks.push(compile(method, path, handler));
    return this;
  }

  match(method: string, pathname: string): { handler: Handler; params: Record<string, string> } {
    const allowed: string[] = [];
    for (const route of this.#routes) {
      const found = route.pattern.exec(pathname);
      if (!found) continue;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) {
        allowed.push(route.method);
        continue;
      }
      return { handler: route.handler, params: paramsOf(route, found) };
    }
    if (allowed.length > 0) throw new HeraldError('method_not_allowed', `use ${allowed.join(' or ')}`, { allow: allowed.join(', ') });
    for (const route of this.#fallbacks) {
      const found = route.method === method ? route.pattern.exec(pathname) : null;
      if (found) return { handler: route.handler, params: paramsOf(route, found) };
    }
    throw new HeraldError('not_found', `no such endpoint: ${pathname}`);
  }
}

/** A percent-decoded path segment; a malformed escape stays raw, for the handler's own validation to refuse. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The request target as a URL. Only origin-form targets (`/path?query`) are accepted: `//host/path` would
 * otherwise parse as another host's path and slip past a proxy's path rules.
 */
export function requestTarget(req: IncomingMessage): URL {
  const target = req.url ?? '/';
  if (!target.startsWith('/') || target.startsWith('//')) throw new HeraldError('not_found', 'no such endpoint');
  try {
    return new URL(target, 'http://herald');
  } catch {
    throw new HeraldError('not_found', 'no such endpoint');
  }
}

export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    // The last hop is the one the trusted proxy appended; earlier ones are whatever the client sent.
    const forwarded = req.headers['x-forwarded-for'];
    const last = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded)?.split(',').at(-1)?.trim();
    if (last) return last;
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/**
 * Reads a body of at most `maxBytes` (more is `payload_too_large`); `multipart/*` is `unsupported_media_type`,
 * with `expected` naming what to send instead.
 */
export async function readBody(req: IncomingMessage, maxBytes: number, expected: string): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw new HeraldError('payload_too_large', `request body is over ${maxBytes} bytes`);
  const type = req.headers['content-type'] ?? '';
  if (/^multipart\//i.test(type)) throw new HeraldError('unsupported_media_type', `send ${expected}`);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      // Past the limit: answer now, keep draining (and dropping) the rest so the connection stays usable.
      else if (size - chunk.length <= maxBytes) reject(new HeraldError('payload_too_large', `request body is over ${maxBytes} bytes`));
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Reads a JSON body of at most `maxBytes`; bad JSON is `invalid_json`, too much is `payload_too_large`. */
export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const text = (await readBody(req, maxBytes, 'a JSON body')).toString('utf8');
  if (text.trim() === '') throw new HeraldError('invalid_json', 'request body is empty; send JSON');
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    throw new HeraldError('invalid_json', 'request body is not valid JSON');
  }
  // No store can keep U+0000 in text (PostgreSQL refuses it), so it is refused here for every endpoint. The
  // cheap test on the raw text comes first; only a body that may hold one is walked.
  if ((text.includes('\\u0000') || text.includes('\u0000')) && holdsNul(value)) {
    throw new HeraldError('invalid_json', 'strings in the body must not contain U+0000 (NUL)');
  }
  return value;
}


/** Whether any string, or object key, in a parsed JSON value contains U+0000. A loop, not recursion: JSON nests deeper than the stack. */
function holdsNul(root: unknown): boolean {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      if (value.includes('\u0000')) return true;
    } else if (Array.isArray(value)) {
      for (const item of value as unknown[]) pending.push(item);
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        if (key.includes('\u0000')) return true;
        pending.push(item);
      }
    }
  }
  return false;
}

/** The one boundary where errors become HTTP responses. */
export function errorReply(error: unknown, logger: Logger, req: IncomingMessage): Reply {
  if (error instanceof HeraldError) return { status: error.status, body: error.toBody(), headers: error.headers };
  if (error instanceof ParseError) return { status: 400, body: { error: { code: 'invalid_request', message: error.message } } };
  logger.error({ err: error, method: req.method, url: redactUrl(req.url ?? '') }, 'request failed');
  return { status: 500, body: { error: { code: 'internal', message: 'internal error' } } };
}

export function send(res: ServerResponse, reply: Reply): void {
  const headers: Record<string, string> = { 'cache-control': 'no-store', ...reply.headers };
  let payload = reply.text;
  if (payload === undefined && reply.body !== undefined) {
    payload = JSON.stringify(reply.body);
    headers['content-type'] = 'application/json; charset=utf-8';
  }
  // A known length spares the chunked encoding on every reply.
  headers['content-length'] = String(payload === undefined ? 0 : Buffer.byteLength(payload));
  res.writeHead(reply.status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}
