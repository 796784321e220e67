import { pino, type Logger } from 'pino';

/** Replaces every query value in a URL (or path) with `[redacted]`: a secret may hide under any spelling of its name. */
export function redactUrl(url: string): string {
  return url.replace(/([?&][^=&#]*=)[^&#]*/g, '$1[redacted]');
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
