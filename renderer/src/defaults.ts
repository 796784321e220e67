/** Every timing and size of the history window, with its unit and why. */
export const defaults = {
  /** Items per inbox page, as the server's default. */
  pageSize: 50,
  /** Milliseconds after the last keystroke before a search goes to the server. */
  searchDebounceMs: 250,
  /** Full-jitter backoff: the first retry waits up to this many milliseconds, doubling per failed attempt. */
  backoffBaseMs: 500,
  /** Longest wait between reconnect attempts, ms. */
  backoffCapMs: 30_000,
  /** A link is dead after the server's heartbeat interval plus this many milliseconds of silence. */
  deadLinkGraceMs: 10_000,
  /** Heartbeat interval assumed until the server's `welcome` states its own, ms: the server's default. */
  heartbeatMs: 25_000,
  /** Milliseconds a new socket has to open and be welcomed before it counts as failed. */
  welcomeTimeoutMs: 10_000,
  /** Recent items kept in the browser for the offline view. */
  offlineCacheMax: 200,
  /** Milliseconds the offline cache waits to coalesce changes into one storage write. */
  offlineCacheWriteDelayMs: 300,
} as const;
