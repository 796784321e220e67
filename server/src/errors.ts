import { ErrorCodes, type ErrorBody, type ErrorCode } from '@herald/protocol';

/** An error with a stable code; the HTTP boundary and the stream turn it into a response or an `error` frame. */
export class HeraldError extends Error {
  override name = 'HeraldError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
    /** `cause`: the underlying error, for the logs only; never sent to the client. */
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  get status(): number {
    return ErrorCodes[this.code];
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}
