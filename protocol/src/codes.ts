/**
 * WebSocket close codes of contract v1.
 * 4000–4499: reconnect with backoff. 4500–4999: do not reconnect until the user acts.
 */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  invalidPayload: 1007,
  messageTooBig: 1009,
  /** The server cannot serve the session right now (its store is unreachable): reconnect with backoff. IANA "Try Again Later". */
  tryAgainLater: 1013,
  serverRestarting: 4000,
  slowConsumer: 4001,
  tooManyConnections: 4002,
  badRequest: 4500,
  unauthorized: 4501,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** True when a client should reconnect (with backoff) after this close code. */
export function shouldReconnect(code: number): boolean {
  return code < 4500 || code > 4999;
}

/**
 * Stable error codes and the HTTP status each one maps to.
 * Clients branch on `code`; `message` is for people and may change.
 */
export const ErrorCodes = {
  invalid_json: 400,
  invalid_request: 400,
  invalid_title: 400,
  invalid_body: 400,
  invalid_priority: 400,
  invalid_tags: 400,
  invalid_actions: 400,
  invalid_url: 400,
  invalid_target: 400,
  invalid_topic: 400,
  invalid_ttl: 400,
  invalid_deliver_at: 400,
  invalid_key: 400,
  invalid_cursor: 400,
  unknown_user: 400,
  unauthorized: 401,
  forbidden: 403,
  topic_not_allowed: 403,
  origin_not_allowed: 403,
  not_found: 404,
  method_not_allowed: 405,
  user_exists: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  /** The store (PostgreSQL) cannot be reached; nothing was written. Comes with Retry-After; on the stream, before close 1013. */
  store_unavailable: 503,
  /** A `/v1/stream` upgrade refused by the server's admission control (too many handshakes at once). Comes with Retry-After; reconnect with backoff. */
  overloaded: 503,
  // WebSocket-only codes, sent in `error` frames.
  invalid_frame: 400,
  not_authenticated: 401,
  auth_timeout: 401,
  invalid_state: 400,
  too_many_connections: 429,
  slow_consumer: 503,
} as const satisfies Record<string, number>;
export type ErrorCode = keyof typeof ErrorCodes;

/** The JSON body of every HTTP error and the payload of every `error` frame. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}
