/**
 * What both peers share: their options, Herald's publish body as far as the frame carries it, the frame, the
 * per-user and broadcast seqs, and the `POST /v1/notifications` route. Only the sending differs between them.
 */
import type { ErrorBody, ErrorCode, ServerFrameOf } from '@herald/protocol';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { tellParent } from '../child.js';

/** A peer's argument, `'{"compression":false}'`. */
export const peerOptions = z
  .object({
    /** Offer permessage-deflate and compress every frame. Default false. */
    compression: z.boolean().default(false),
  })
  .parse(JSON.parse(process.argv[2] ?? '{}'));

/** permessage-deflate on every message, no context kept on either side, as Herald's `threshold: 0`; or off. */
export const deflate = peerOptions.compression ? { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true } : false;

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

type Frame = ServerFrameOf<'notification'>;

/** How a peer sends one frame: to everyone, or to one user's sockets; each returns the sockets written to. */
export interface Sender {
  all(frame: Frame): number;
  user(user: string, frame: Frame): number;
}

/** The last seq sent to each user (targeted sends), and to everyone (`all` sends). */
const userSeqs = new Map<string, number>();
let broadcastSeq = 0;

function publish(request: z.infer<typeof publishRequest>, send: Sender): { id: string; recipients: number } {
  const id = randomUUID();
  const { title, body, priority, tags } = request;
  const frame: Frame = { type: 'notification', seq: 0, read: false, id, title, body, priority, tags, url: null, icon: null, actions: [], createdAt: new Date().toISOString() };
  if ('all' in request.to) return { id, recipients: send.all({ ...frame, seq: ++broadcastSeq }) };
  let recipients = 0;
  for (const user of request.to.users) {
    const seq = (userSeqs.get(user) ?? 0) + 1;
    userSeqs.set(user, seq);
    recipients += send.user(user, { ...frame, seq });
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

/** The request listener: `POST /v1/notifications` with Herald's body and error codes, 404 for anything else. */
export function publishRoute(send: Sender): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
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
      if (request.success) reply(res, 202, publish(request.data, send));
      else fail(res, 400, 'invalid_request', request.error.issues[0]?.message ?? 'invalid');
    });
  };
}

/** Listens on a free loopback port and tells the runner where. */
export function listen(http: Server): void {
  http.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    const { port } = http.address() as AddressInfo;
    tellParent({ type: 'ready', url: `http://127.0.0.1:${port}` });
  });
}
