/**
 * Peer for the side-by-side benchmark (issue 5): a plain Socket.IO v4 server over WebSocket only. Started by
 * the runner like every bench child (see ../child.ts), with `'{"compression":false}'` as its argument.
 *
 * Each socket names its user in the CONNECT packet's auth payload (`40{"user":"u00042"}`) and joins the room
 * named after that user. A publish is `io.to(user).emit('notification', frame)` for targeted sends and
 * `io.emit('notification', frame)` for `all`; Socket.IO encodes each emit once and writes it to every socket
 * it reaches. Unlike Herald it has no auth (the user is whatever the client claims), no persistence, read
 * state or resume (connection state recovery is off, Socket.IO's default) and no write coalescing. It keeps
 * Socket.IO's default heartbeat: a ping every 25 s, and a socket that does not answer within 20 s is closed.
 *
 * It is a fair peer because this is how most Node apps add real-time notifications. Socket.IO does the same
 * serialize-once fan-out as Herald, through the same `ws` underneath. Long-polling, HTTP compression and the
 * client bundle are off, so only the WebSocket path is measured.
 */
import type { ErrorBody, ErrorCode, ServerFrameOf } from '@herald/protocol';
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Server } from 'socket.io';
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

/** The CONNECT packet's auth payload. A socket without a user is anonymous and gets only `all` sends. */
const handshakeAuth = z.object({ user: z.string().min(1) });

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
    io.emit('notification', { ...frame, seq: broadcastSeq });
    return { id, recipients: io.sockets.sockets.size };
  }
  let recipients = 0;
  for (const user of request.to.users) {
    const seq = (userSeqs.get(user) ?? 0) + 1;
    userSeqs.set(user, seq);
    const room = io.sockets.adapter.rooms.get(user);
    if (room === undefined) continue;
    io.to(user).emit('notification', { ...frame, seq });
    recipients += room.size;
  }
  return { id, recipients };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function fail(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  reply(res, status, { error: { code, message } } satisfies ErrorBody);
}

// The handler must be on the server before Socket.IO attaches: engine.io then wraps it, so requests under
// /socket.io/ reach only Socket.IO. A handler added after attaching would answer those requests too.
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

/** Every TCP connection, so that stopping need not wait for each client's WebSocket close handshake. */
const connections = new Set<Socket>();
http.on('connection', (socket: Socket) => {
  connections.add(socket);
  socket.once('close', () => connections.delete(socket));
});

const io = new Server(http, {
  transports: ['websocket'],
  httpCompression: false,
  perMessageDeflate: options.compression ? { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true } : false,
  serveClient: false,
  // Matches the ws peer's maxPayload; Socket.IO's default is 1 MB.
  maxHttpBufferSize: 64 * 1024,
});

io.on('connection', (socket) => {
  const auth = handshakeAuth.safeParse(socket.handshake.auth);
  if (auth.success) void socket.join(auth.data.user);
});

serveParent(
  () =>
    new Promise<void>((resolve) => {
      // Disconnects every socket, then closes engine.io and the http server; the callback runs once the
      // server has no connections left.
      void io.close(() => {
        resolve();
      });
      for (const socket of connections) socket.destroy();
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
