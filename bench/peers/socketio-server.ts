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
import { createServer, type Server as HttpServer } from 'node:http';
import type { Socket } from 'node:net';
import { Server } from 'socket.io';
import { z } from 'zod';
import { serveParent } from '../child.js';
import { deflate, listen, publishRoute } from './publishing.js';

/** The CONNECT packet's auth payload. A socket without a user is anonymous and gets only `all` sends. */
const handshakeAuth = z.object({ user: z.string().min(1) });

// The handler must be on the server before Socket.IO attaches: engine.io then wraps it, so requests under
// /socket.io/ reach only Socket.IO. A handler added after attaching would answer those requests too.
const http: HttpServer = createServer(
  publishRoute({
    all(frame) {
      io.emit('notification', frame);
      return io.sockets.sockets.size;
    },
    user(user, frame) {
      const room = io.sockets.adapter.rooms.get(user);
      if (room === undefined) return 0;
      io.to(user).emit('notification', frame);
      return room.size;
    },
  }),
);

/** Every TCP connection, so that stopping need not wait for each client's WebSocket close handshake. */
const connections = new Set<Socket>();
http.on('connection', (socket: Socket) => {
  connections.add(socket);
  socket.once('close', () => connections.delete(socket));
});

const io: Server = new Server(http, {
  transports: ['websocket'],
  httpCompression: false,
  perMessageDeflate: deflate,
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
);

listen(http);
