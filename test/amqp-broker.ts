/** The RabbitMQ on this machine, for the RabbitMQ ingest tests: a queue of each test's own, and `rabbitmqctl`. */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { connect, type ChannelModel, type ConfirmChannel, type Options } from 'amqplib';

export const amqpUrl = 'amqp://guest:guest@127.0.0.1:5672';

const run = promisify(execFile);

export function uniqueQueue(): string {
  return `herald-test-${randomBytes(6).toString('hex')}`;
}

/** The test's own connection: a confirm channel to publish with and to inspect queues. */
export class TestBroker {
  private constructor(
    readonly connection: ChannelModel,
    readonly channel: ConfirmChannel,
  ) {}

  static async open(): Promise<TestBroker> {
    const connection = await connect(amqpUrl, { clientProperties: { connection_name: 'herald-test-publisher' } });
    return new TestBroker(connection, await connection.createConfirmChannel());
  }

  /** Declares the queue as the server does (same arguments), so messages sent before it connects are kept. */
  async declare(queue: string): Promise<void> {
    await this.channel.assertQueue(`${queue}.dead`, { durable: true });
    await this.channel.assertQueue(queue, { durable: true, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': `${queue}.dead` } });
  }

  /** Sends each message persistently and resolves once RabbitMQ confirmed all of them. */
  async send(queue: string, messages: { body: object | string; options?: Options.Publish }[]): Promise<void> {
    for (const { body, options } of messages) {
      const content = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      this.channel.sendToQueue(queue, content, { persistent: true, contentType: 'application/json', ...options });
    }
    await this.channel.waitForConfirms();
  }

  /** Ready messages (not counting unacked ones) and consumers. */
  async counts(queue: string): Promise<{ messages: number; consumers: number }> {
    const { messageCount, consumerCount } = await this.channel.checkQueue(queue);
    return { messages: messageCount, consumers: consumerCount };
  }

  /**
   * Polls until `predicate` holds for the queue's counts. RabbitMQ emits no event for them, so this is the one
   * poll of these tests; bounded by `timeoutMs`.
   */
  async waitForCounts(queue: string, predicate: (counts: { messages: number; consumers: number }) => boolean, timeoutMs = 30_000): Promise<{ messages: number; consumers: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const counts = await this.counts(queue);
      if (predicate(counts)) return counts;
      if (Date.now() > deadline) throw new Error(`queue ${queue} stayed at ${JSON.stringify(counts)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async deleteQueues(queue: string): Promise<void> {
    await this.channel.deleteQueue(queue);
    await this.channel.deleteQueue(`${queue}.dead`);
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

/** The Erlang pids of the connections whose client set `connection_name` (what `close_connection` takes). */
export async function connectionsNamed(connectionName: string): Promise<string[]> {
  // JSON output prints pids in a form close_connection does not accept; the table shows `<rabbit@host.…>`.
  const { stdout } = await run('rabbitmqctl', ['list_connections', '-q', '--no-table-headers', 'pid', 'client_properties']);
  const property = `{"connection_name","${connectionName}"}`;
  return stdout
    .split('\n')
    .filter((line) => line.includes(property))
    .map((line) => line.split('\t')[0] ?? '');
}

/** Polls `rabbitmqctl` (about 2 s a call) until a connection of that name other than `except` is open. */
export async function waitForConnection(connectionName: string, except: string[] = [], timeoutMs = 45_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = (await connectionsNamed(connectionName)).find((name) => !except.includes(name));
    if (fresh !== undefined) return fresh;
    if (Date.now() > deadline) throw new Error(`no new RabbitMQ connection named ${connectionName}`);
  }
}

/** Closes one connection from the broker's side, as an operator or a failing broker node would. */
export async function killConnection(pid: string): Promise<void> {
  await run('rabbitmqctl', ['close_connection', pid, 'killed by test']);
}

/** The value of one Prometheus sample, e.g. `herald_publishes_total{result="duplicate"}`; 0 when absent. */
export function metricValue(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}
