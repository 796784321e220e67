/**
 * Peer for the side-by-side benchmark (issue 5): the seed article's Ratchet broadcast server, ported to Node
 * with `ws`. Started by the runner like every bench child (see ../child.ts), with `'{"compression":false}'`
 * as its argument.
 *
 * The server keeps a plain Set of connected clients and a Map from user to that user's clients. A publish is
 * one JSON.stringify and then `client.send(text)` for each recipient. Unlike Herald it has no auth (the user
 * is whatever `?user=` says), no persistence, read state or resume (a client that is offline misses the
 * notification), no write coalescing and no bound on a slow client's send buffer. It also sends no pings
 * (Ratchet has none), so a dead client is noticed only when TCP gives up on a write to it.
 *
 * It is a fair peer because it does the least work any server must do for this workload. It parses the same
 * publish body and writes the same frame, once per publish, to the same sockets, over the HTTP and WebSocket
 * stack Herald uses (node:http and `ws`). The gap to Herald is what Herald's guarantees cost.
 */
import type { ErrorBody, ErrorCode, ServerFrameOf } from '@herald/protocol';
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { serveParent, tellParent } from '../child.js';

const options = z
  .object({
    /** Offer permessage-deflate and compress every frame. Default false. */
    compression: z.boolean().default(false),
  })
  .parse(JSON.parse(process.argv[2] ?? '{}'));

/** Largest publish body, bytes: Herald's `maxBodyBytes`. */
const maxBodyBytes = 1024 * 1024;

/** Herald's publish body, as much of it as the frame carries. Other fields are accepted and ignored. */
const publishRequest = z.object({
  to: z.union([z.object({ users: z.array(z.string().min(1)).min(1) }), z.object({ all: z.literal(true) })]),
  title: z.string(),
  body: z.string().default(''),
  priority: z.int().min(1).max(5).default(3),
  tags: z.array(z.string()).default([]),
});
type PublishRequest = z.infer<typeof publishRequest>;

/** The only client frame the server answers. Everything else is ignored. */
const pingFrame = z.object({ type: z.literal('ping') });

const synced = JSON.stringify({ type: 'synced', head: 0 });
const pong = JSON.stringify({ type: 'pong' });

const clients = new Set<WebSocket>();
const clientsByUser = new Map<string, Set<WebSocket>>();
/** The last seq sent to each user (targeted sends), and to everyone (`all` sends). */
const userSeqs = new Map<string, number>();
let broadcastSeq = 0;

/** Sends one notification; returns its id and how many sockets it was written to. */
function publish(request: PublishRequest): { id: string; recipients: number } {
  const id = randomUUID();
  const { title, body, priority, tags } = request;
  const frame: ServerFrameOf<'notification'> = {
    type: 'notification',
    seq: 0,
    read: false,
    id,
    title,
    body,
    priority,
    tags,
    url: null,
    icon: null,
    actions: [],
    createdAt: new Date().toISOString(),
  };
  if ('all' in request.to) {
    broadcastSeq++;
    return { id, recipients: send(clients, JSON.stringify({ ...frame, seq: broadcastSeq })) };
  }
  let recipients = 0;
  for (const user of request.to.users) {
    const seq = (userSeqs.get(user) ?? 0) + 1;
    userSeqs.set(user, seq);
    const own = clientsByUser.get(user);
    if (own) recipients += send(own, JSON.stringify({ ...frame, seq }));
  }
  return { id, recipients };
}

function send(to: Set<WebSocket>, text: string): number {
  for (const client of to) client.send(text);
  return to.size;
}

function isPing(data: Buffer): boolean {
  try {
    return pingFrame.safeParse(JSON.parse(data.toString('utf8'))).success;
  } catch {
    return false;
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  reply(res, status, { error: { code, message } } satisfies ErrorBody);
}

const http = createServer((req, res) => {
  if (req.method !== 'POST' || req.url?.split('?', 1)[0] !== '/v1/notifications') {
    fail(res, 404, 'not_found', 'no such endpoint');
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= maxBodyBytes) chunks.push(chunk);
  });
  req.on('end', () => {
    if (size > maxBodyBytes) {
      fail(res, 413, 'payload_too_large', `body over ${maxBodyBytes} bytes`);
      return;
    }
    let data: unknown;
    try {
      data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      fail(res, 400, 'invalid_json', 'body is not valid JSON');
      return;
    }
    const request = publishRequest.safeParse(data);
    if (request.success) reply(res, 202, publish(request.data));
    else fail(res, 400, 'invalid_request', request.error.issues[0]?.message ?? 'invalid');
  });
});

const wss = new WebSocketServer({
  server: http,
  path: '/v1/stream',
  perMessageDeflate: options.compression ? { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true } : false,
  clientTracking: false,
  maxPayload: 64 * 1024,
});

wss.on('connection', (ws, req) => {
  const user = new URL(req.url ?? '/', 'http://peer').searchParams.get('user');
  let own: Set<WebSocket> | undefined;
  if (user !== null && user !== '') {
    own = clientsByUser.get(user);
    if (!own) clientsByUser.set(user, (own = new Set()));
    own.add(ws);
  }
  clients.add(ws);
  ws.send(synced);
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary && isPing(data)) ws.send(pong);
  });
  // `ws` closes the socket itself after a bad frame or one over maxPayload; unheard, the error would end the process.
  ws.on('error', () => undefined);
  ws.on('close', () => {
    clients.delete(ws);
    if (!own || user === null) return;
    own.delete(ws);
    if (own.size === 0) clientsByUser.delete(user);
  });
});

serveParent(
  () =>
    new Promise<void>((resolve) => {
      for (const client of clients) client.terminate();
      http.closeAllConnections();
      http.close(() => {
        resolve();
      });
    }),
  (message) => {
    if (message.type !== 'gc') return;
    // Two passes: the first may only schedule finalizers whose memory the second frees.
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    tellParent({ type: 'memory', ...process.memoryUsage() });
  },
);

http.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  const { port } = http.address() as AddressInfo;
  tellParent({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
