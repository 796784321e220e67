/**
 * Every default of the server, with its unit and the reason for its value.
 * config.ts validates overrides against these; nothing else hard-codes a limit.
 */
export const defaults = {
  /** TCP port. 8080: unprivileged and conventional for self-hosted services. */
  port: 8080,
  /** Bind address. Loopback, so a first start is not exposed before a token exists. */
  host: '127.0.0.1',
  /** Data directory (SQLite file, admin.token). Relative to the working directory. */
  data: './herald-data',
  /**
   * Pending TCP connections the kernel queues before the server accepts them (capped by net.core.somaxconn).
   * Node's 511 overflows when thousands of devices reconnect at once after a restart.
   */
  listenBacklog: 4096,

  /** Largest WebSocket frame a client may send, bytes. Client frames are tiny; 16 KiB leaves room for a JWT. */
  maxPayload: 16 * 1024,
  /** Largest HTTP request body, bytes. A batch of 100 maximal notifications fits. */
  maxBodyBytes: 1024 * 1024,
  /** Queued bytes per socket before it is closed as a slow consumer (4001), bytes. */
  maxBufferedBytes: 1024 * 1024,
  /** Milliseconds between idle `heartbeat` frames. Below common 60 s proxy idle timeouts. */
  heartbeatMs: 25_000,
  /**
   * Milliseconds between protocol pings; a peer that missed the previous pong is terminated. An idle device's
   * ping leaves with its heartbeat when it would fall due before the next one (stream.ts), so it comes every
   * 25-30 s at these defaults, at no write of its own.
   */
  pingIntervalMs: 30_000,
  /**
   * Milliseconds between the event-loop delay samples behind the `herald_nodejs_eventloop_lag_*` metrics.
   * prom-client's default, 10 ms, woke an idle server 100 times a second.
   */
  eventLoopSampleMs: 100,
  /** Milliseconds an unauthenticated socket has to send `hello` (contract: 5 s). */
  helloTimeoutMs: 5_000,
  /** Milliseconds a header-authenticated socket waits for `hello` before going live-only (contract: 2 s). */
  liveOnlyAfterMs: 2_000,
  /** Notifications read from the store per replay page. */
  replayPageSize: 500,
  /** Live frames buffered per socket during a replay before it re-reads from the store instead. */
  replayLiveBufferMax: 10_000,
  /**
   * Milliseconds a live notification that arrived ahead of a missing seq waits for it. Across nodes or workers,
   * seqs commit in order but their broker messages may cross; a short wait sends them in order. A seq that does
   * not come (the broker dropped it) leaves a gap the device fills with `sync`. 200 ms: on a saturated 2-core
   * box the bench saw messages cross by more than 50 ms; a real drop (rare: a broker outage) only delays the
   * frames after it by this much.
   */
  reorderWindowMs: 200,
  /** Live notifications held per socket while waiting for a missing seq; past it they are sent at once. */
  reorderHoldMax: 1_000,
  /** Connections per user (4002 beyond). */
  maxConnectionsPerUser: 32,
  /** Sockets closed per event-loop turn on shutdown, so a restart does not stampede. */
  shutdownCloseBatch: 500,
  /**
   * Milliseconds a shutdown waits for devices to answer the 4000 close before cutting the rest. Each device has its
   * close frame by then, or sees the cut as a drop: either way it reconnects. Every millisecond here is one the
   * restart keeps the port closed (5 s, the old wait, was most of a 15,000-device restart).
   */
  shutdownCloseGraceMs: 1_000,

  /** Inbox rows older than this are removed, days. */
  retentionDays: 30,
  /** Inbox rows kept per user, newest first. */
  retentionPerUser: 10_000,
  /** Milliseconds between retention sweeps. */
  sweepIntervalMs: 60_000,
  /** Milliseconds between checks for due scheduled (`deliverAt`) notifications. */
  scheduleIntervalMs: 1_000,

  /**
   * Server-wide admission of WebSocket upgrades, all addresses together (503 `overloaded` beyond it). A handshake
   * costs about 0.5 ms of CPU on the embedded default (JWT or token check, a store read, the replay), so 2,000/s
   * is about one core; a burst of 1,000 and at most 500 handshakes in flight keep the event-loop lag of a
   * reconnect storm to a few hundred ms on a 2-core machine. Units: handshakes per second, handshakes, handshakes
   * in flight (upgrade → `synced` or close). The storm bench (bench/storm.ts) measured about 1 ms of server CPU per
   * returning device over all threads, its replay and one publish included. `perSecond: 0` or `maxPending: 0`
   * turns that part off.
   */
  admission: { perSecond: 2_000, burst: 1_000, maxPending: 500 },
  /** Seconds a client refused for too many handshakes in flight is asked to wait (Retry-After). */
  admissionRetryAfter: 1,
  /** Verified JWTs remembered, so a reconnect skips the signature check; about 0.5 KB each. */
  jwtCacheMax: 20_000,
  /** Milliseconds a verified JWT is remembered at most (it is also checked against its own `exp` on every use). */
  jwtCacheTtlMs: 10 * 60 * 1000,
  /**
   * Publish targets' user ids a PostgreSQL store remembers by name (count), oldest forgotten first. Names and ids never
   * change, so this only saves the look-up's round trip in every group commit; 100,000 of them are a few MB.
   */
  userIdCacheMax: 100_000,
  /** Per-IP WebSocket connects: sustained per second, and burst. */
  connectRate: { perSecond: 50, burst: 200 },
  /** Per-IP failed authentications: sustained per second, and burst. Slows token guessing. */
  authFailureRate: { perSecond: 1, burst: 20 },
  /** Per-IP login attempts: sustained per second, and burst. */
  loginRate: { perSecond: 1, burst: 10 },
  /** Per-token publishes (app and admin tokens): sustained per second, and burst. */
  publishRate: { perSecond: 2_000, burst: 10_000 },

  /** Publishes committed in one group-commit transaction at most: amortizes one fsync over many publishes while keeping a commit short. */
  groupCommitMax: 512,
  /** Milliseconds a SQLite statement waits for another connection's lock (a CLI or backup tool on the same file) before failing. */
  sqliteBusyTimeoutMs: 5_000,
  /** Milliseconds an `Idempotency-Key` is remembered. */
  idempotencyWindowMs: 24 * 60 * 60 * 1000,
  /**
   * A publish's SQLite inbox rows go to the small table of new rows (`inbox_recent`) from this many recipients, once
   * users average `inboxRecentHistory` seqs (checked every `inboxHistoryCheckMs`). Before that, users' newest rows
   * share pages anyway, and moving them later would cost more than it saves.
   */
  inboxRecentFanOut: 64,
  inboxRecentHistory: 64,
  inboxHistoryCheckMs: 1_000,
  /**
   * SQLite inbox rows kept in `inbox_recent` before they settle, per user and at least: enough that a user's rows
   * settle several at a time, few enough that a broadcast touches few of its pages.
   */
  inboxRecentPerUser: 16,
  inboxRecentMin: 65_536,
  /** Rows settled in one transaction at least (count), more when more were written since the last: a few ms of the writer. */
  inboxSettleSlice: 4_096,
  /** WAL pages (4 KiB) at which an in-thread store checkpoints as it commits: a hot page is copied back once per checkpoint. */
  walAutocheckpointPages: 4_000,
  /** WAL pages at which the threaded store's writer checkpoints by itself: only if the checkpointer falls far behind (256 MiB). */
  writerCheckpointPages: 65_536,
  /** Milliseconds between PASSIVE checkpoints on the threaded store's checkpointer thread. */
  checkpointIntervalMs: 1_000,

  /** `max-age` of the web inbox's hashed assets, seconds. A year: a new build gives them new names. */
  webAssetMaxAge: 365 * 24 * 60 * 60,

  /** PostgreSQL connections per node (count). Group commit needs few; replays and inbox reads take the rest. */
  postgresPoolMax: 10,
  /** Group-commit transactions one PostgreSQL store runs at once (count). 1 keeps seqs in call order within a node. */
  postgresCommitConcurrency: 1,
  /**
   * Milliseconds to open a PostgreSQL connection, or to wait for a free one of the pool, before the call fails with
   * 503 `store_unavailable`. A refused connection fails at once; this bounds an unreachable host or a saturated pool.
   */
  postgresConnectTimeoutMs: 2_000,
  /** Milliseconds a store ping waits for PostgreSQL before reporting it unhealthy (`/readyz`). */
  postgresPingTimeoutMs: 1_000,
  /** `Retry-After` of a 503 `store_unavailable`, seconds. A restarting PostgreSQL is back within seconds. */
  storeRetryAfter: 1,
  /** Prefix of Redis channel names, so several deployments can share one Redis. */
  redisPrefix: 'herald:',
  /** Channels named in one Redis SUBSCRIBE/UNSUBSCRIBE (count): a few hundred KB per command at most. */
  redisChannelsPerCommand: 10_000,
  /** Milliseconds a broker ping waits for Redis before reporting it unhealthy (`/readyz`). */
  redisPingTimeoutMs: 1_000,
  /**
   * Recipients from which a notification crosses Redis as one message to every node instead of one per user (count).
   * Below it, per-user channels reach only the nodes concerned; above it, one message beats many.
   */
  redisFanoutMin: 64,

  /** Queue the RabbitMQ consumer reads when `amqpUrl` is set. Dotted, like RabbitMQ's own names. */
  amqpQueue: 'herald.notifications',
  /**
   * Unacknowledged RabbitMQ messages in flight at once (count). Enough to fill a group commit; a message is
   * acked only once stored, so this also bounds what a crash hands back for redelivery.
   */
  amqpPrefetch: 64,

  /** Lifetime of device tokens created without `expiresIn`, seconds; 0 means no expiry. */
  deviceTokenTtl: 0,
} as const;
