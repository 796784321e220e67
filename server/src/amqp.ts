/**
 * RabbitMQ ingest: an optional consumer that publishes every message of one queue as if it were the body of
 * `POST /v1/notifications`.
 *
 * - A message is acked only after the store committed it, so a crash or a dropped connection hands it back
 *   to RabbitMQ. Its `idempotency-key` header, else its `messageId`, is the idempotency key, so that redelivery is
 *   stored once.
 * - An invalid message is copied to `<queue>.dead` with the reason in `x-herald-error-code` and
 *   `x-herald-error`, and acked once RabbitMQ confirmed the copy. RabbitMQ's own dead-lettering keeps the original
 *   headers only, hence the copy.
 * - A store that is down is waited for, with backoff: the message stays unacked (prefetch stops the flow) and
 *   is never dead-lettered.
 * - A lost connection is reopened with full-jitter backoff; whatever was unacked is redelivered.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { connect, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from 'amqplib';
import type { Logger } from 'pino';
import { backoffDelay, type PublishRequest } from '@herald/protocol';
import type { Config } from './config.js';
import { HeraldError } from './errors.js';
import { parsePublish, type Publishing } from './publish.js';

export interface AmqpConsumerDeps {
  /** `config.amqpUrl`, once known to be set. */
  url: string;
  config: Config;
  publishing: Publishing;
  logger: Logger;
}

export interface AmqpConsumer {
  /** True while a channel is open and consuming. */
  consuming(): boolean;
  /** Stops consuming, waits for the messages in flight to be stored and acked, then closes the connection. */
  close(): Promise<void>;
}

/** The `publisher` of notifications that came through RabbitMQ: only an admin token may retract them. */
export const amqpPublisher = 'amqp';

/** Headers of a dead-lettered copy: the stable error code (`invalid_json`, `invalid_title`, `unknown_user`, …) and its message. */
export const deadLetterHeaders = { code: 'x-herald-error-code', message: 'x-herald-error' } as const;

/** The connection name RabbitMQ shows for this consumer (`rabbitmqctl list_connections client_properties`). */
export function amqpConnectionName(queue: string): string {
  return `herald-${queue}`;
}

/** Host and port only: the URL's user and password never reach a log line. */
function brokerHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unparsable amqpUrl)';
  }
}

/** Invalid input, as `HeraldError`s with the codes HTTP publishing would answer. */
function readRequest(message: ConsumeMessage): { request: PublishRequest; key: string | undefined } {
  let data: unknown;
  try {
    data = JSON.parse(message.content.toString('utf8'));
  } catch {
    throw new HeraldError('invalid_json', 'message body is not valid JSON');
  }
  return { request: parsePublish(data), key: idempotencyKey(message) };
}

/** An `idempotency-key` header (any case), else `messageId`; the limits of HTTP's `Idempotency-Key`. */
function idempotencyKey(message: ConsumeMessage): string | undefined {
  const { messageId, headers = {} } = message.properties as { messageId?: unknown; headers?: Record<string, unknown> };
  const header = Object.entries(headers).find(([name]) => name.toLowerCase() === 'idempotency-key')?.[1];
  const raw = header ?? messageId;
  if (raw === undefined || raw === null) return undefined;
  const key = Buffer.isBuffer(raw) ? raw.toString('utf8') : typeof raw === 'string' || typeof raw === 'number' ? String(raw) : undefined;
  if (key === undefined || key.length === 0 || key.length > 255) throw new HeraldError('invalid_request', 'the idempotency key (idempotency-key header or messageId) must be 1 to 255 characters');
  return key;
}

/** Refusals by the caller's fault (4xx) are dead-lettered; anything else may pass, so it is retried. */
function isPermanent(error: unknown): error is HeraldError {
  return error instanceof HeraldError && error.status < 500;
}

/** Starts consuming `config.amqpQueue` in the background; connection failures are logged and retried, never thrown. */
export function startAmqpConsumer(deps: AmqpConsumerDeps): AmqpConsumer {
  const { url, config, publishing, logger } = deps;
  const queue = config.amqpQueue;
  const dead = `${queue}.dead`;
  const log = logger.child({ component: 'amqp', broker: brokerHost(url), queue });
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let connection: ChannelModel | undefined;
  let active: { channel: ConfirmChannel; consumerTag: string } | undefined;
  let attempt = 0;
  let timer: NodeJS.Timeout | undefined;

  function reconnectLater(error: unknown): void {
    if (stopping.signal.aborted || timer !== undefined) return;
    const wait = backoffDelay(attempt++);
    log.warn({ err: error, attempt, retryInMs: Math.round(wait) }, 'no RabbitMQ connection; reconnecting');
    timer = setTimeout(() => {
      timer = undefined;
      void open();
    }, wait);
  }

  async function open(): Promise<void> {
    let model: ChannelModel;
    try {
      model = await connect(url, { clientProperties: { connection_name: amqpConnectionName(queue) } });
    } catch (error) {
      reconnectLater(error);
      return;
    }
    if (stopping.signal.aborted) {
      await model.close().catch(() => undefined);
      return;
    }
    connection = model;
    // Without an 'error' listener an unexpected close would crash the process; 'close' follows and reconnects.
    model.on('error', (error: Error) => log.debug({ err: error }, 'RabbitMQ connection error'));
    model.on('close', (error?: Error) => {
      if (connection === model) {
        connection = undefined;
        active = undefined;
      }
      reconnectLater(error ?? new Error('connection closed'));
    });
    try {
      const channel = await model.createConfirmChannel();
      channel.on('error', (error: Error) => log.warn({ err: error }, 'RabbitMQ channel error'));
      // A channel closed by RabbitMQ alone (queue deleted, precondition failed): start over on a new connection.
      channel.on('close', () => void model.close().catch(() => undefined));
      await channel.assertQueue(dead, { durable: true });
      await channel.assertQueue(queue, { durable: true, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': dead } });
      await channel.prefetch(config.amqpPrefetch);
      const { consumerTag } = await channel.consume(queue, (message) => {
        // null: RabbitMQ cancelled the consumer (the queue was deleted); a new connection declares it again.
        if (message === null) void model.close().catch(() => undefined);
        else track(handle(channel, message));
      });
      active = { channel, consumerTag };
      attempt = 0;
      log.info({ prefetch: config.amqpPrefetch }, 'consuming notifications from RabbitMQ');
    } catch (error) {
      log.error({ err: error }, 'RabbitMQ setup failed (is the queue declared with other arguments?)');
      await model.close().catch(() => undefined);
    }
  }

  function track(work: Promise<void>): void {
    const settled = work.catch((error: unknown) => log.error({ err: error }, 'RabbitMQ message handling failed; it will be redelivered'));
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
  }

  async function handle(channel: ConfirmChannel, message: ConsumeMessage): Promise<void> {
    // Delivered after close() began: left unacked, RabbitMQ gives it to the next consumer.
    if (stopping.signal.aborted) return;
    let read: { request: PublishRequest; key: string | undefined };
    try {
      read = readRequest(message);
    } catch (error) {
      await deadLetter(channel, message, error instanceof HeraldError ? error : new HeraldError('invalid_request', String(error)));
      return;
    }
    for (let retry = 0; ; retry++) {
      try {
        await publishing.publishRequest(read.request, amqpPublisher, read.key);
        ack(channel, message);
        return;
      } catch (error) {
        if (isPermanent(error)) {
          await deadLetter(channel, message, error);
          return;
        }
        const wait = backoffDelay(retry);
        log.warn({ err: error, retryInMs: Math.round(wait) }, 'could not store a RabbitMQ message; retrying');
        try {
          await delay(wait, undefined, { signal: stopping.signal });
        } catch {
          return; // Closing: unacked, so redelivered later.
        }
      }
    }
  }

  /** A channel that closed since the delivery cannot ack it; RabbitMQ redelivers it and the idempotency key absorbs it. */
  function ack(channel: ConfirmChannel, message: ConsumeMessage): void {
    try {
      channel.ack(message);
    } catch (error) {
      log.debug({ err: error }, 'ack after the channel closed; the message will be redelivered');
    }
  }

  /** Copies the message to `<queue>.dead` with the error in its headers, waits for RabbitMQ's confirm, then acks the original. */
  async function deadLetter(channel: ConfirmChannel, message: ConsumeMessage, error: HeraldError): Promise<void> {
    const p: Partial<Record<string, unknown>> = { ...message.properties };
    const headers = { ...(p.headers as Record<string, unknown> | undefined), [deadLetterHeaders.code]: error.code, [deadLetterHeaders.message]: error.message.slice(0, 1024) };
    const options: Options.Publish = { persistent: true, headers };
    for (const name of ['contentType', 'contentEncoding', 'correlationId', 'messageId', 'timestamp', 'type', 'appId'] as const) {
      if (p[name] !== undefined) Object.assign(options, { [name]: p[name] });
    }
    try {
      await new Promise<void>((resolve, reject) => {
        channel.sendToQueue(dead, message.content, options, (err: unknown) => {
          if (err) reject(err instanceof Error ? err : new Error('RabbitMQ refused the dead-lettered copy'));
          else resolve();
        });
      });
    } catch (err) {
      log.warn({ err }, 'could not dead-letter a message; it will be redelivered');
      return;
    }
    log.info({ code: error.code, messageId: p.messageId }, 'dead-lettered an invalid RabbitMQ message');
    ack(channel, message);
  }

  void open();

  return {
    consuming: () => active !== undefined,
    async close() {
      stopping.abort();
      clearTimeout(timer);
      timer = undefined;
      const current = active;
      if (current) await current.channel.cancel(current.consumerTag).catch(() => undefined);
      await Promise.allSettled([...inFlight]);
      await connection?.close().catch(() => undefined);
      connection = undefined;
      active = undefined;
    },
  };
}
