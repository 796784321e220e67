import { z } from 'zod';
import { notification } from './notification.js';

const seq = z.int().min(0);
const readTarget = {
  seqs: z.array(z.int().min(1)).min(1).max(1000).optional(),
  upTo: seq.optional(),
};
const oneReadTarget = (frame: { seqs?: number[] | undefined; upTo?: number | undefined }) =>
  (frame.seqs === undefined) !== (frame.upTo === undefined);

/** Frames a client sends on `/v1/stream`. */
export const clientFrame = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), v: z.literal(1), token: z.string().min(1).optional(), since: seq.optional() }),
  z.object({ type: z.literal('sync'), since: seq }),
  z.object({ type: z.literal('ack'), seq: seq }),
  z
    .object({ type: z.literal('read'), ...readTarget })
    .refine(oneReadTarget, 'give exactly one of seqs or upTo'),
  z.object({ type: z.literal('ping'), t: z.number().optional() }),
]);
export type ClientFrame = z.infer<typeof clientFrame>;

const userRef = z.object({ id: z.int(), name: z.string() });

/** Frames the server sends on `/v1/stream`. */
export const serverFrame = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('welcome'),
    v: z.literal(1),
    user: userRef,
    head: seq,
    /** Milliseconds between idle heartbeats. */
    heartbeat: z.int().min(1),
  }),
  notification.extend({ type: z.literal('notification') }),
  z.object({
    type: z.literal('synced'),
    head: seq,
    replayed: z.int().min(0),
    gap: z.boolean(),
    /**
     * Set on the `synced` of a session the server started live-only, because a header-authenticated client sent no
     * `hello` within 2 s. It answers no `hello`: a client whose `hello` is still on its way waits for that one's.
     */
    liveOnly: z.literal(true).optional(),
  }),
  z.object({
    type: z.literal('read'),
    seqs: z.array(z.int()).optional(),
    upTo: seq.optional(),
    unread: z.int().min(0),
  }),
  z.object({ type: z.literal('deleted'), seqs: z.array(z.int()) }),
  z.object({ type: z.literal('pong'), t: z.number().optional() }),
  z.object({ type: z.literal('heartbeat'), head: seq }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }),
]);
export type ServerFrame = z.infer<typeof serverFrame>;
export type ServerFrameOf<T extends ServerFrame['type']> = Extract<ServerFrame, { type: T }>;
