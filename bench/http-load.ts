/**
 * The publishing side of the load generator: keep-alive HTTP/1.1 connections written by hand, one request in
 * flight per connection (no pipelining), like wrk. On a 2-core box the generator shares the CPU with the server,
 * so it must be cheap: a request is one pre-built string and one write, a response one header scan.
 */
import { connect, type Socket } from 'node:net';

/** Called once per response with its status, body and arrival time (performance.now()). */
export type ResponseHandler = (status: number, body: string, at: number) => void;

const headerEnd = Buffer.from('\r\n\r\n');

export class Connection {
  #socket: Socket | undefined;
  #buffer: Buffer | undefined;
  #handler: ResponseHandler | undefined;
  #failure: Error | undefined;

  private constructor(
    readonly url: URL,
    readonly onFailure: (error: Error) => void,
  ) {}

  /** Connects to `url`'s host and port. `onFailure` is called at most once, when a request's connection breaks. */
  static async open(url: URL, onFailure: (error: Error) => void): Promise<Connection> {
    const connection = new Connection(url, onFailure);
    const socket = connection.#connect();
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve();
      });
      socket.once('error', reject);
    });
    return connection;
  }

  get busy(): boolean {
    return this.#handler !== undefined;
  }

  /**
   * Writes one complete request (see {@link postRequest}); `handler` gets its response. A connection the server
   * closed while it was idle (Node closes keep-alive connections after 5 s) is opened again first, as any
   * HTTP client would.
   */
  send(request: string, handler: ResponseHandler): void {
    if (this.#failure) throw this.#failure;
    if (this.#handler) throw new Error('one request at a time per connection');
    this.#handler = handler;
    (this.#socket ?? this.#connect()).write(request);
  }

  close(): void {
    this.#failure ??= new Error('closed');
    this.#socket?.destroy();
  }

  #connect(): Socket {
    const socket = connect({ host: this.url.hostname, port: Number(this.url.port), noDelay: true });
    this.#socket = socket;
    this.#buffer = undefined;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => this.#lost(socket, error));
    socket.on('close', () => this.#lost(socket, new Error('the server closed a connection with a request in flight')));
    return socket;
  }

  /** A socket ended: a failure with a request in flight, otherwise just a keep-alive connection that timed out. */
  #lost(socket: Socket, error: Error): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    socket.destroy();
    if (this.#handler) this.#fail(error);
  }

  #onData(chunk: Buffer): void {
    const buffer = this.#buffer ? Buffer.concat([this.#buffer, chunk]) : chunk;
    const end = buffer.indexOf(headerEnd);
    if (end < 0) {
      this.#buffer = buffer;
      return;
    }
    const head = buffer.toString('latin1', 0, end);
    const bodyStart = end + headerEnd.length;
    let body: string | undefined;
    let total: number;
    const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
    if (length !== undefined) {
      total = bodyStart + Number(length);
      if (buffer.length >= total) body = buffer.toString('utf8', bodyStart, total);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const chunked = decodeChunked(buffer, bodyStart);
      total = chunked?.end ?? Infinity;
      body = chunked?.body;
    } else {
      this.#fail(new Error(`response without a length: ${head.split('\r\n')[0] ?? ''}`));
      return;
    }
    if (body === undefined) {
      this.#buffer = buffer;
      return;
    }
    if (buffer.length > total) {
      this.#fail(new Error('bytes after a response on a connection without pipelining'));
      return;
    }
    this.#buffer = undefined;
    const handler = this.#handler;
    this.#handler = undefined;
    handler?.(Number(head.slice(9, 12)), body, performance.now());
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    this.#socket?.destroy();
    this.onFailure(error);
  }
}

const crlf = Buffer.from('\r\n');

/** The body of a chunked response starting at `from`, or undefined while it is incomplete. */
function decodeChunked(buffer: Buffer, from: number): { body: string; end: number } | undefined {
  const parts: string[] = [];
  let at = from;
  for (;;) {
    const lineEnd = buffer.indexOf(crlf, at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(buffer.toString('latin1', at, lineEnd), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    const dataStart = lineEnd + crlf.length;
    // No trailers: the last chunk is `0\r\n\r\n`.
    if (size === 0) return buffer.length >= dataStart + crlf.length ? { body: parts.join(''), end: dataStart + crlf.length } : undefined;
    if (buffer.length < dataStart + size + crlf.length) return undefined;
    parts.push(buffer.toString('utf8', dataStart, dataStart + size));
    at = dataStart + size + crlf.length;
  }
}

/** A complete `POST` request with a JSON body. */
export function postRequest(url: URL, path: string, token: string, body: string): string {
  return (
    `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${token}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** Opens `count` connections; any later failure of one of them goes to `onFailure`. */
export async function openConnections(url: URL, count: number, onFailure: (error: Error) => void): Promise<Connection[]> {
  return Promise.all(Array.from({ length: count }, () => Connection.open(url, onFailure)));
}
