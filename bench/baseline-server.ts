/**
 * A bare relay for reference: node:http plus `ws`, the same routes and frames as Herald, and nothing else.
 * No authentication check (the user is read from the `hello` JWT's payload unverified), no storage, no coalescing:
 * each accepted notification is one JSON.stringify and one `ws.send`. What Herald costs on top of this is the
 * price of durability, auth and the protocol.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { serveParent, tellParent } from './child.js';

interface Item {
  to?: { users?: string[] };
  title?: string;
  body?: string;
  priority?: number;
  tags?: string[];
}

interface Device {
  ws: WebSocket;
  user: string;
}

const devices = new Map<string, Set<Device>>();
const heads = new Map<string, number>();

/** The `sub` of the JWT in a `hello` frame, read without checking the signature. */
function userOf(hello: string): string {
  const { token } = JSON.parse(hello) as { token?: unknown };
  const payload = typeof token === 'string' ? token.split('.')[1] : undefined;
  if (payload === undefined) return 'anonymous';
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown };
  return typeof claims.sub === 'string' ? claims.sub : 'anonymous';
}

/** Relays one notification; returns its recipients. */
function relay(item: Item, now: string): { id: string; recipients: number } {
  const id = randomUUID();
  let recipients = 0;
  for (const user of item.to?.users ?? []) {
    const seq = (heads.get(user) ?? 0) + 1;
    heads.set(user, seq);
    recipients++;
    const set = devices.get(user);
    if (!set) continue;
    const frame = JSON.stringify({
      type: 'notification',
      seq,
      read: false,
      id,
      title: item.title,
      body: item.body ?? '',
      priority: item.priority ?? 3,
      tags: item.tags ?? [],
      url: null,
      icon: null,
      actions: [],
      createdAt: now,
    });
    for (const device of set) device.ws.send(frame);
  }
  return { id, recipients };
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

const http = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    try {
      const data = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Item & { notifications?: Item[] };
      const now = new Date().toISOString();
      if (req.url === '/v1/notifications') reply(res, 202, relay(data, now));
      else if (req.url === '/v1/notifications/batch') reply(res, 202, { notifications: (data.notifications ?? []).map((item) => relay(item, now)) });
      else reply(res, 404, { error: { code: 'not_found', message: 'no such endpoint' } });
    } catch {
      reply(res, 400, { error: { code: 'invalid_json', message: 'bad body' } });
    }
  });
});

const wss = new WebSocketServer({ server: http, path: '/v1/stream', perMessageDeflate: false, clientTracking: false });
wss.on('connection', (ws) => {
  let device: Device | undefined;
  ws.once('message', (data: Buffer) => {
    const user = userOf(data.toString('utf8'));
    device = { ws, user };
    let set = devices.get(user);
    if (!set) devices.set(user, (set = new Set()));
    set.add(device);
    const head = heads.get(user) ?? 0;
    ws.send(JSON.stringify({ type: 'welcome', v: 1, user: { id: 0, name: user }, head, heartbeat: 25_000 }));
    ws.send(JSON.stringify({ type: 'synced', head, replayed: 0, gap: false }));
  });
  ws.on('close', () => {
    if (device) devices.get(device.user)?.delete(device);
  });
});

serveParent(
  () =>
    new Promise<void>((resolve) => {
      for (const set of devices.values()) for (const device of set) device.ws.terminate();
      http.closeAllConnections();
      http.close(() => resolve());
    }),
);

http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  tellParent({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
