/**
 * A device as the bench sees it: one real `ws` client, authenticated with an HS256 JWT in its first
 * `hello` frame, that counts notification frames and checks that each user's seqs arrive contiguous
 * (nothing lost, nothing twice).
 */
import { createHmac } from 'node:crypto';
import { WebSocket } from 'ws';

/** An HS256 JWT for user `sub`, as an existing site would mint one. */
export function signJwt(sub: string, secret: string, ttlSeconds = 3600): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ sub, iat: now, exp: now + ttlSeconds })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

export interface DeviceOptions {
  /** `ws://host:port/v1/stream`. */
  url: string;
  user: string;
  token: string;
  /** Loopback source address, to spread sockets over more than one address's ephemeral ports. */
  localAddress?: string;
  /** Offer permessage-deflate (the server decides whether to use it). Default: not offered. */
  perMessageDeflate?: boolean;
  /** Gives up when `synced` has not arrived after this long, ms. */
  timeoutMs?: number;
  /** Called for every notification frame with its parsed body and the time it arrived (performance.now()). */
  onNotification?: (body: string, at: number) => void;
}

interface FrameFields {
  type?: unknown;
  seq?: unknown;
  body?: unknown;
  code?: unknown;
  message?: unknown;
}

export class Device {
  /** Notification frames received. */
  notifications = 0;
  /** `heartbeat` frames received. */
  heartbeats = 0;
  /** Seqs that were not the previous one plus one. */
  outOfOrder = 0;
  /** `error` frames and unexpected closes. */
  readonly problems: string[] = [];
  #lastSeq = 0;

  private constructor(
    readonly ws: WebSocket,
    readonly user: string,
  ) {}

  /** Opens the socket, sends `hello` with the token, and resolves once `synced` arrives. */
  static connect(options: DeviceOptions): Promise<Device> {
    const ws = new WebSocket(options.url, {
      perMessageDeflate: options.perMessageDeflate ?? false,
      handshakeTimeout: options.timeoutMs ?? 30_000,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    const device = new Device(ws, options.user);
    const onNotification = options.onNotification;
    return new Promise((resolve, reject) => {
      let synced = false;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${options.user}: no synced within ${options.timeoutMs ?? 30_000} ms`));
      }, options.timeoutMs ?? 30_000);
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', v: 1, token: options.token })));
      ws.on('error', (error) => {
        clearTimeout(timer);
        if (!synced) reject(error);
        else device.problems.push(error.message);
      });
      ws.on('close', (code, reason) => {
        clearTimeout(timer);
        if (!synced) reject(new Error(`${options.user}: closed with ${code} ${reason.toString()} before synced`));
        else if (code !== 1000 && code !== 1005 && code !== 4000) device.problems.push(`closed with ${code} ${reason.toString()}`);
      });
      ws.on('message', (data) => {
        const at = performance.now();
        const frame = JSON.parse(rawText(data)) as FrameFields;
        if (frame.type === 'notification') {
          const seq = Number(frame.seq);
          if (seq !== device.#lastSeq + 1) device.outOfOrder++;
          device.#lastSeq = seq;
          device.notifications++;
          onNotification?.(String(frame.body), at);
        } else if (frame.type === 'synced') {
          device.#lastSeq = Number((frame as { head?: unknown }).head);
          synced = true;
          clearTimeout(timer);
          resolve(device);
        } else if (frame.type === 'heartbeat') {
          device.heartbeats++;
        } else if (frame.type === 'error') {
          device.problems.push(`error frame ${String(frame.code)}: ${String(frame.message)}`);
        }
      });
    });
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else this.ws.terminate();
  }
}

export function rawText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** Runs `connect` for indexes 0…count−1 with at most `parallel` in flight; stops at the first failure. */
export async function connectAll<T>(count: number, parallel: number, connect: (index: number) => Promise<T>, onConnected?: (done: number) => void): Promise<T[]> {
  const connected: T[] = [];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      connected[index] = await connect(index);
      onConnected?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
  return connected;
}

/** Connects `count` devices with at most `parallel` handshakes in flight; stops at the first failure. */
export function connectDevices(count: number, parallel: number, options: (index: number) => DeviceOptions, onConnected?: (done: number) => void): Promise<Device[]> {
  return connectAll(count, parallel, (index) => Device.connect(options(index)), onConnected);
}
