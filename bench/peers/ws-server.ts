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
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { serveParent } from '../child.js';
import { deflate, listen, publishRoute } from './publishing.js';

/** The only client frame the server answers. Everything else is ignored. */
const pingFrame = z.object({ type: z.literal('ping') });

const synced = JSON.stringify({ type: 'synced', head: 0 });
const pong = JSON.stringify({ type: 'pong' });

const clients = new Set<WebSocket>();
const clientsByUser = new Map<string, Set<WebSocket>>();

/** One JSON.stringify per frame, then a plain send to each recipient. */
function send(to: Set<WebSocket> | undefined, frame: object): number {
  if (!to) return 0;
  const text = JSON.stringify(frame);
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

const http = createServer(publishRoute({ all: (frame) => send(clients, frame), user: (user, frame) => send(clientsByUser.get(user), frame) }));

const wss = new WebSocketServer({ server: http, path: '/v1/stream', perMessageDeflate: deflate, clientTracking: false, maxPayload: 64 * 1024 });

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
);

listen(http);
