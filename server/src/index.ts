import { mkdirSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { createAdmission } from './admission.js';
import { registerAdmin } from './admin.js';
import { startAmqpConsumer } from './amqp.js';
import { AuthService, generateToken, hashToken } from './auth.js';
import type { Broker, BrokerFactory } from './broker/broker.js';
import { createMemoryBroker } from './broker/memory.js';
import { createRedisBroker } from './broker/redis.js';
import type { Config } from './config.js';
import { defaults } from './defaults.js';
import { createFanout } from './fanout.js';
import { createGuard } from './guard.js';
import { Router, clientIp, errorReply, requestTarget, send, type Context } from './http.js';
import { Hub } from './hub.js';
import { registerInbox } from './inbox.js';
import { createLogger, redactUrl } from './logger.js';
import { registerLogin } from './login.js';
import { createMetrics } from './metrics.js';
import { registerNtfy } from './ntfy.js';
import { createPublishing, registerPublish } from './publish.js';
import { RateLimiter } from './rate-limit.js';
import { startScheduler } from './scheduler.js';
import { openThreadedSqliteStore } from './store/sqlite-threaded.js';
import { openPostgresStore } from './store/postgres.js';
import type { Store } from './store/store.js';
import { createStream, refuse } from './stream.js';
import { registerWeb } from './web.js';

export { resolveConfig, type Config, type ConfigInput } from './config.js';

/** Replaceable collaborators; each defaults to the embedded choice. */
export interface ServerDeps {
  store: Store;
  broker: BrokerFactory;
  logger: Logger;
  now: () => number;
}

export interface HeraldServer {
  listen(): Promise<{ port: number; url: string }>;
  /** Graceful: stop accepting, close sockets with 4000 in batches, flush and close the store. */
  close(): Promise<void>;
  /** Path of `<data>/admin.token` when this start created it. */
  adminTokenFile: string | undefined;
  logger: Logger;
  store: Store;
}

/** Writes `<data>/admin.token` (0600) on the first start, unless an admin token is configured. */
async function bootstrapAdmin(config: Config, store: Store, now: number): Promise<string | undefined> {
  if (config.adminToken !== undefined) return undefined;
  const file = resolve(config.data, 'admin.token');
  if (existsSync(file)) {
    if (await store.tokenByHash(hashToken(readFileSync(file, 'utf8').trim()))) return undefined;
    // The file was edited or replaced: it no longer opens anything, so issue a fresh one in its place.
  } else if (await store.hasAdminToken()) return undefined;
  await store.revokeToken('tok_admin');
  const token = generateToken();
  await store.insertToken({ id: 'tok_admin', kind: 'admin', hash: hashToken(token), userId: null, name: null, label: 'bootstrap', topics: null, createdAt: now, expiresAt: null });
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return file;
}

/** The configured store: SQLite in the data directory (the embedded default), or PostgreSQL. */
function openStore(config: Config): Promise<Store> {
  return config.storeUrl === undefined
    ? openThreadedSqliteStore({ file: join(config.data, 'herald.db'), synchronous: config.sqliteSynchronous })
    : openPostgresStore({ url: config.storeUrl, schema: config.storeSchema });
}

/**
 * Migrates the store and writes `<data>/admin.token` when due, then closes the store again. The primary of
 * `--workers N` runs it once before forking, so workers starting together find both done.
 * Resolves to the admin token file when this call created it.
 */
export async function prepareData(config: Config, now = Date.now()): Promise<string | undefined> {
  mkdirSync(config.data, { recursive: true, mode: 0o700 });
  const store = await openStore(config);
  try {
    return await bootstrapAdmin(config, store, now);
  } finally {
    await store.close();
  }
}

export async function createServer(config: Config, overrides: Partial<ServerDeps> = {}): Promise<HeraldServer> {
  mkdirSync(config.data, { recursive: true, mode: 0o700 });
  const now = overrides.now ?? Date.now;
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const store = overrides.store ?? (await openStore(config));
  const metrics = createMetrics();
  const auth = new AuthService(store, config, now);
  const hub = new Hub(metrics);
  const broker: Broker = (overrides.broker ?? (config.redisUrl === undefined ? createMemoryBroker : createRedisBroker({ url: config.redisUrl, prefix: config.redisPrefix })))({
    message: (message) => hub.message(message),
    control: (event) => {
      auth.forget(event.tokenId);
      hub.control(event);
    },
    lag: (ms) => metrics.brokerLag.observe(ms / 1000),
  });
  metrics.sources.broker = () => broker.stats?.();
  metrics.sources.pool = () => store.poolStats?.();
  hub.broker = broker;
  const adminTokenFile = await bootstrapAdmin(config, store, now());

  const rates = config.rateLimits;
  const limits = rates
    ? {
        connect: new RateLimiter(rates.connect, now),
        authFailure: new RateLimiter(rates.authFailure, now),
        publish: new RateLimiter(rates.publish, now),
        login: new RateLimiter(rates.login, now),
      }
    : undefined;
  const pruner = limits && setInterval(() => Object.values(limits).forEach((l) => l.prune()), 60_000).unref();

  const guard = createGuard(auth, limits?.authFailure);
  const fanout = createFanout(broker, metrics);
  const router = new Router();
  router
    .add('GET', '/healthz', () => ({ status: 200, body: { status: 'ok', service: 'herald' } }))
    .add('GET', '/readyz', async () => {
      const [storeOk, brokerOk] = await Promise.all([store.ping().catch(() => false), broker.ping().catch(() => false)]);
      const ready = storeOk && brokerOk;
      return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'unavailable', store: storeOk, broker: brokerOk } };
    })
    .add('GET', '/metrics', async (ctx) => {
      if (config.metricsAuth) await guard(ctx, 'admin');
      return { status: 200, text: await metrics.registry.metrics(), headers: { 'content-type': metrics.registry.contentType } };
    });
  const deps = { config, store, broker, guard, metrics, now };
  registerAdmin(router, { ...deps, auth });
  registerPublish(router, { ...deps, fanout, publishLimit: limits?.publish });
  registerNtfy(router, { ...deps, fanout, publishLimit: limits?.publish });
  registerInbox(router, deps);
  registerLogin(router, { config, store, limit: limits?.login, now });
  registerWeb(router, { config });

  const stream = createStream({ config, store, broker, auth, hub, metrics, logger, limits, admission: createAdmission(config, now), now });
  const scheduler = startScheduler({ config, store, fanout, logger, now });
  await scheduler.releaseNow();
  // RabbitMQ ingest, through the same store and fan-out as POST /v1/notifications.
  const amqp = config.amqpUrl === undefined ? undefined : startAmqpConsumer({ url: config.amqpUrl, config, publishing: createPublishing({ ...deps, fanout, publishLimit: undefined }), logger });

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = requestTarget(req);
      const { handler, params } = router.match(req.method ?? 'GET', url.pathname);
      const ctx: Context = { req, url, params, ip: clientIp(req, config.trustProxy) };
      send(res, await handler(ctx));
    } catch (error) {
      const reply = errorReply(error, logger, req);
      if (reply.status >= 400) logger.debug({ method: req.method, url: redactUrl(req.url ?? ''), status: reply.status }, 'request refused');
      if (!res.headersSent) send(res, reply);
      else res.destroy();
    }
  }

  const tls = config.tlsCert !== undefined && config.tlsKey !== undefined ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) } : undefined;
  const handler = (req: IncomingMessage, res: ServerResponse) => void onRequest(req, res);
  const http = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  http.on('upgrade', (req: IncomingMessage, socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    let path: string | undefined;
    try {
      path = requestTarget(req).pathname;
    } catch {
      path = undefined;
    }
    if (path === '/v1/stream') stream.handleUpgrade(req, socket, head);
    else refuse(socket, 404, 'not_found', 'WebSocket connections go to /v1/stream');
  });
  http.on('clientError', (_error, socket) => {
    if (socket.writable) refuse(socket, 400, 'invalid_request', 'malformed HTTP request');
  });

  let closing: Promise<void> | undefined;
  return {
    adminTokenFile,
    logger,
    store,
    listen() {
      return new Promise((resolveListen, reject) => {
        http.once('error', reject);
        http.listen({ port: config.port, host: config.host, backlog: defaults.listenBacklog }, () => {
          const { port } = http.address() as AddressInfo;
          const host = config.host.includes(':') ? `[${config.host}]` : config.host;
          resolveListen({ port, url: `${tls ? 'https' : 'http'}://${host}:${port}` });
        });
      });
    },
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((done) => http.close(() => done()));
        http.closeIdleConnections();
        await stream.closeAll();
        stream.stop();
        if (pruner) clearInterval(pruner);
        await amqp?.close();
        await scheduler.stop();
        http.closeAllConnections();
        await stopped;
        await broker.close();
        await store.close();
      })();
      return closing;
    },
  };
}
