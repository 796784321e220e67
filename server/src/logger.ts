import { pino, type Logger } from 'pino';

/** Query parameters whose values are secrets and never reach a log line. */
const secretParams = /([?&](?:token|access_token)=)[^&#]*/gi;

/** Replaces secret query values in a URL (or path) with `[redacted]`. */
export function redactUrl(url: string): string {
  return url.replace(secretParams, '$1[redacted]');
}

/** JSON logs to stdout; authorization headers and token fields are redacted wherever they appear. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'herald' },
    redact: {
      paths: ['token', '*.token', 'password', '*.password', 'req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
      censor: '[redacted]',
    },
  });
}
