/**
 * The load generator's clients for each server the bench compares, so every server gets the identical workload
 * from the same code: Herald's own protocol (bench/device.ts), the bare `ws` peer's and Socket.IO's. The peer
 * clients speak their wire protocol by hand on a plain `ws` socket (Socket.IO's is engine.io v4 packets), so
 * a client costs the generator the same whatever server it talks to.
 */
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { Device, rawText, type DeviceOptions } from './device.js';

export const protocols = ['herald', 'ws', 'socketio'] as const;
/** Which server a client talks to: Herald, the bare `ws` peer, or the Socket.IO peer (bench/peers/). */
export type Protocol = (typeof protocols)[number];

/** What the holders and scenarios read from a connected client, whatever its protocol. */
export interface Client {
  readonly ws: WebSocket;
  /** Notification frames received. */
  notifications: number;
  /** Keep-alive traffic seen: Herald `heartbeat` frames, Socket.IO pings. */
  heartbeats: number;
  /**
   * Notification seqs that were not the previous one plus one (loss or duplicates). Herald's devices start from
   * the `synced` head; the peers send no head, so their clients start from the first seq they get. The peers
   * number a user's targeted sends and `all` sends apart, so for them the count means something only while a
   * client gets one kind.
   */
  outOfOrder: number;
  /** Unexpected closes and error frames. */
  readonly problems: string[];
  close(): void;
}

/** Bytes a client's socket has read so far, WebSocket framing included. */
export function bytesRead(client: Client): number {
  return (client.ws as unknown as { _socket?: Socket | null })._socket?.bytesRead ?? 0;
}

/** Connects one client and resolves once the server has registered it (Herald: `synced`). */
export function connectClient(protocol: Protocol, options: DeviceOptions): Promise<Client> {
  switch (protocol) {
    case 'herald':
      return Device.connect(options);
    case 'ws':
      return PeerClient.connect(`${options.url}?user=${encodeURIComponent(options.user)}`, options, wsPeerFrame);
    case 'socketio':
      return PeerClient.connect(options.url, options, socketIoPacket);
  }
}

/** What a peer client makes of one inbound text message. */
type Received = { kind: 'registered' } | { kind: 'notification'; body: string; seq: number } | { kind: 'ping'; answer?: string } | { kind: 'refused'; reason: string } | { kind: 'other' };

/** The bare `ws` peer: `{"type":"synced"}` once registered, then notification frames as Herald's. */
function wsPeerFrame(text: string): Received {
  const frame = JSON.parse(text) as { type?: unknown; body?: unknown; seq?: unknown };
  if (frame.type === 'synced') return { kind: 'registered' };
  if (frame.type === 'notification') return { kind: 'notification', body: String(frame.body), seq: Number(frame.seq) };
  return { kind: 'other' };
}

/**
 * engine.io v4 packets: `0{…}` open (answered with a Socket.IO CONNECT carrying the user), `40{…}` connected,
 * `2` ping (answered `3`), `42["notification",{…}]` an event, `44{…}` connect refused.
 */
function socketIoPacket(text: string, user: string): Received {
  if (text.startsWith('0{')) return { kind: 'ping', answer: `40${JSON.stringify({ user })}` };
  if (text.startsWith('40')) return { kind: 'registered' };
  if (text === '2') return { kind: 'ping', answer: '3' };
  if (text.startsWith('42')) {
    const [event, frame] = JSON.parse(text.slice(2)) as [unknown, { body?: unknown; seq?: unknown } | undefined];
    return event === 'notification' ? { kind: 'notification', body: String(frame?.body), seq: Number(frame?.seq) } : { kind: 'other' };
  }
  if (text.startsWith('44')) return { kind: 'refused', reason: text.slice(2) };
  return { kind: 'other' };
}

class PeerClient implements Client {
  notifications = 0;
  heartbeats = 0;
  outOfOrder = 0;
  readonly problems: string[] = [];
  #lastSeq: number | undefined;

  private constructor(readonly ws: WebSocket) {}

  static connect(url: string, options: DeviceOptions, read: (text: string, user: string) => Received): Promise<Client> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const ws = new WebSocket(url, {
      perMessageDeflate: options.perMessageDeflate ?? false,
      handshakeTimeout: timeoutMs,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
    });
    const client = new PeerClient(ws);
    return new Promise((resolve, reject) => {
      let registered = false;
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${options.user}: not registered within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.on('error', (error) => {
        clearTimeout(timer);
        if (!registered) reject(error);
        else client.problems.push(error.message);
      });
      ws.on('close', (code, reason) => {
        clearTimeout(timer);
        if (!registered) reject(new Error(`${options.user}: closed with ${code} ${reason.toString()} before registering`));
        else if (code !== 1000 && code !== 1005) client.problems.push(`closed with ${code} ${reason.toString()}`);
      });
      ws.on('message', (data) => {
        const at = performance.now();
        const received = read(rawText(data), options.user);
        switch (received.kind) {
          case 'notification':
            if (client.#lastSeq !== undefined && received.seq !== client.#lastSeq + 1) client.outOfOrder++;
            client.#lastSeq = received.seq;
            client.notifications++;
            options.onNotification?.(received.body, at);
            break;
          case 'registered':
            registered = true;
            clearTimeout(timer);
            resolve(client);
            break;
          case 'ping':
            if (registered) client.heartbeats++;
            if (received.answer !== undefined) ws.send(received.answer);
            break;
          case 'refused':
            ws.terminate();
            reject(new Error(`${options.user}: refused: ${received.reason}`));
            break;
          case 'other':
            break;
        }
      });
    });
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    else this.ws.terminate();
  }
}
