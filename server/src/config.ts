import { z } from 'zod';
import { defaults } from './defaults.js';

const rate = z.object({
  /** Sustained rate, per second. */
  perSecond: z.number().positive(),
  /** Bucket size: how many may come at once. */
  burst: z.number().int().positive(),
});
export type Rate = z.infer<typeof rate>;

/**
 * The server's configuration. Every field has a default in defaults.ts; `herald.yml`, `HERALD_*` variables
 * and flags override them in that order (see config-sources.ts).
 */
export const configSchema = z
  .object({
    /** TCP port; 0 picks a free one. */
    port: z.int().min(0).max(65535).default(defaults.port),
    host: z.string().min(1).default(defaults.host),
    /** Data directory: the SQLite file and admin.token live here. */
    data: z.string().min(1).default(defaults.data),
    /** PEM file paths; both or neither. Serves HTTPS/WSS directly, for teams without a reverse proxy. */
    tlsCert: z.string().min(1).optional(),
    tlsKey: z.string().min(1).optional(),
    /** Admin token shared by several nodes. When unset, the first start writes `<data>/admin.token`. */
    adminToken: z.string().min(32, 'adminToken must be at least 32 characters').optional(),
    /** Accept `?token=` on /v1/stream (redacted from logs). Off: URLs end up in proxy logs and browser history. */
    allowQueryToken: z.boolean().default(false),
    /** Browser origins allowed to open /v1/stream. Empty: same origin only. `*`: any. */
    allowedOrigins: z.array(z.string().min(1)).default([]),
    /** JWT device auth: HS256 `secret`, or keys from `jwksUrl`. Unset: JWTs are refused. */
    jwt: z
      .object({
        secret: z.string().min(32, 'jwt.secret must be at least 32 characters').optional(),
        jwksUrl: z.url().optional(),
        issuer: z.string().optional(),
        audience: z.string().optional(),
      })
      .refine((jwt) => (jwt.secret === undefined) !== (jwt.jwksUrl === undefined), 'jwt needs exactly one of secret or jwksUrl')
      .optional(),
    /** permessage-deflate for frames of at least `threshold` bytes. Unset: off (see docs/benchmarks.md). */
    perMessageDeflate: z.object({ threshold: z.int().min(0).default(1024) }).optional(),
    /** Require the admin token on /metrics. */
    metricsAuth: z.boolean().default(false),
    /** Take the client address from X-Forwarded-For (only behind a trusted proxy). */
    trustProxy: z.boolean().default(false),
    /**
     * Worker processes serving one port (node:cluster), each on a core of its own; `auto` starts one per core.
     * They share the store, and fan out to each other through Redis when configured, else through the primary.
     */
    workers: z.union([z.int().min(1).max(1024), z.literal('auto')]).default(1),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * Where the store lives. Unset: SQLite in `data` (the embedded default). `postgres://…` or `postgresql://…`:
     * PostgreSQL, shared by every node. Holds a password: never logged.
     */
    storeUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'storeUrl must be a postgres:// or postgresql:// URL (leave it unset for SQLite)')
      .optional(),
    /** PostgreSQL schema holding Herald's tables; created when missing. */
    storeSchema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'storeSchema must be a lower-case SQL identifier').default('public'),
    /** Redis for live fan-out between nodes (`redis://…` or `rediss://…`). Unset: the in-process broker (one node). Never logged. */
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'redisUrl must be a redis:// or rediss:// URL')
      .optional(),
    /** Prefix of Herald's Redis channel names, so several deployments can share one Redis. */
    redisPrefix: z.string().min(1).max(64).default(defaults.redisPrefix),
    /**
     * RabbitMQ to read notifications from (`amqp://…` or `amqps://…`), in the body schema of `POST /v1/notifications`.
     * Unset: no consumer. Holds a password: never logged.
     */
    amqpUrl: z
      .string()
      .regex(/^amqps?:\/\//, 'amqpUrl must be an amqp:// or amqps:// URL')
      .optional(),
    /** Durable queue the consumer reads; invalid messages go to `<amqpQueue>.dead`. */
    amqpQueue: z.string().min(1).max(200, 'amqpQueue must be at most 200 characters (it gets a .dead suffix)').default(defaults.amqpQueue),
    /** Unacknowledged messages the consumer holds at once (count): how many publishes it has in flight. */
    amqpPrefetch: z.int().min(1).max(65_535).default(defaults.amqpPrefetch),
    /** SQLite `synchronous`: `full` survives power loss; `normal` survives process crashes only. */
    sqliteSynchronous: z.enum(['full', 'normal']).default('full'),
    /**
     * Directory of the built web inbox served at `/`. Unset: `dist/web` next to the bundled server, or
     * `<repo>/dist/renderer` when running from source (web.ts).
     */
    webRoot: z.string().min(1).optional(),

    maxPayload: z.int().min(1024).default(defaults.maxPayload),
    maxBodyBytes: z.int().min(1024).default(defaults.maxBodyBytes),
    maxBufferedBytes: z.int().min(1024).default(defaults.maxBufferedBytes),
    maxConnectionsPerUser: z.int().min(1).default(defaults.maxConnectionsPerUser),
    heartbeatMs: z.int().min(100).default(defaults.heartbeatMs),
    pingIntervalMs: z.int().min(100).default(defaults.pingIntervalMs),
    helloTimeoutMs: z.int().min(100).default(defaults.helloTimeoutMs),
    liveOnlyAfterMs: z.int().min(0).default(defaults.liveOnlyAfterMs),
    replayPageSize: z.int().min(1).max(10_000).default(defaults.replayPageSize),
    replayLiveBufferMax: z.int().min(1).default(defaults.replayLiveBufferMax),
    shutdownCloseBatch: z.int().min(1).default(defaults.shutdownCloseBatch),
    retentionDays: z.number().positive().default(defaults.retentionDays),
    retentionPerUser: z.int().min(1).default(defaults.retentionPerUser),
    sweepIntervalMs: z.int().min(10).default(defaults.sweepIntervalMs),
    scheduleIntervalMs: z.int().min(10).default(defaults.scheduleIntervalMs),
    deviceTokenTtl: z.int().min(0).default(defaults.deviceTokenTtl),
    /**
     * Server-wide admission control of `/v1/stream` upgrades, over all client addresses together: a token bucket
     * (`perSecond`, `burst`) and a cap on handshakes in flight (`maxPending`). Beyond them an upgrade gets
     * 503 `overloaded` with Retry-After. `false` turns it off; 0 turns off `perSecond` or `maxPending` alone.
     * Separate from `rateLimits`, which are per address and may be off while this stays on.
     */
    admission: z
      .union([
        z.literal(false),
        z.object({
          /** Sustained upgrades admitted per second, all addresses together; 0: no rate limit. Default 2,000. */
          perSecond: z.number().min(0).default(defaults.admission.perSecond),
          /** Upgrades admitted at once when the bucket is full. Default 1,000. */
          burst: z.int().min(1).default(defaults.admission.burst),
          /** Handshakes in flight (upgrade → `synced` or close) at most; 0: no cap. Default 500. */
          maxPending: z.int().min(0).default(defaults.admission.maxPending),
        }),
      ])
      .default({ ...defaults.admission }),
    /** Per-IP and per-token limits. `false` turns them all off (benchmarks, trusted networks). */
    rateLimits: z
      .union([
        z.literal(false),
        z.object({
          connect: rate.default(defaults.connectRate),
          authFailure: rate.default(defaults.authFailureRate),
          login: rate.default(defaults.loginRate),
          publish: rate.default(defaults.publishRate),
        }),
      ])
      .default({
        connect: defaults.connectRate,
        authFailure: defaults.authFailureRate,
        login: defaults.loginRate,
        publish: defaults.publishRate,
      }),
  })
  .refine((config) => (config.tlsCert === undefined) === (config.tlsKey === undefined), {
    message: 'tlsCert and tlsKey go together: give both or neither',
    path: ['tlsCert'],
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validates raw settings and fills in defaults; throws a ConfigError naming each bad option. */
export function resolveConfig(input: unknown): Config {
  const result = configSchema.safeParse(input ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join('.') || 'config'}: ${issue.message}`);
  throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
}
