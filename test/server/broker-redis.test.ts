import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { userMessages, type ControlEvent, type NotificationMessage, type UserMessage } from '../../server/src/broker/broker.js';
import { createRedisBroker, keySlot, type RedisBroker, type RedisBrokerOptions } from '../../server/src/broker/redis.js';
import { freePort, RedisProcess } from '../redis-process.js';

/** A broker with recording handlers: one "node". */
class Node {
  readonly messages: UserMessage[] = [];
  readonly controls: ControlEvent[] = [];
  readonly broker: RedisBroker;
  #waiters: (() => void)[] = [];

  constructor(options: RedisBrokerOptions) {
    this.broker = createRedisBroker(options)({
      message: (message) => {
        this.messages.push(message);
        this.#wake();
      },
      control: (event) => {
        this.controls.push(event);
        this.#wake();
      },
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }

  /** Resolves once the predicate holds, re-checked on every delivery. */
  async until(predicate: () => boolean): Promise<void> {
    while (!predicate()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Resolves once the broker answers its ping: both connections are up. */
  async ready(): Promise<void> {
    while (!(await this.broker.ping()));
  }
}

const frame = (user: number, seq: number) => JSON.stringify({ type: 'notification', user, seq });

let redis: RedisProcess;
let admin: Redis;
const nodes: Node[] = [];
const open = (options: Partial<RedisBrokerOptions> = {}) => {
  const node = new Node({ url: redis.url, prefix: `t${randomUUID().slice(0, 8)}:`, ...options });
  nodes.push(node);
  return node;
};
/** Two nodes sharing one prefix: one deployment. */
const twoNodes = (options: Partial<RedisBrokerOptions> = {}) => {
  const prefix = `t${randomUUID().slice(0, 8)}:`;
  return [open({ prefix, ...options }), open({ prefix, ...options }), prefix] as const;
};
const numsub = async (client: Redis, channel: string) => Number((await client.pubsub('NUMSUB', channel))[1]);

beforeAll(async () => {
  redis = new RedisProcess(await freePort());
  await redis.start();
  admin = new Redis(redis.url);
});

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((node) => node.broker.close()));
});

afterAll(async () => {
  admin.disconnect();
  await redis.dispose();
});

describe('Redis broker', () => {
  it('delivers a message only to the node subscribed to its user, in per-user order', async () => {
    const [a, b] = twoNodes();
    await Promise.all([a.broker.subscribe(1), b.broker.subscribe(2)]);
    const published: UserMessage[] = [];
    for (let seq = 1; seq <= 200; seq++) published.push({ user: 1 + (seq % 3), seq, frame: frame(1 + (seq % 3), seq) });
    a.broker.publish(published);
    const last = (user: number) => published.filter((m) => m.user === user).at(-1)?.seq;
    await Promise.all([a.until(() => a.messages.at(-1)?.seq === last(1)), b.until(() => b.messages.at(-1)?.seq === last(2))]);
    // Everything for user 3 was published before these last messages on one connection: had it been delivered, it would be here.
    expect(a.messages).toEqual(published.filter((m) => m.user === 1));
    expect(b.messages).toEqual(published.filter((m) => m.user === 2));
    expect(a.broker.stats()).toMatchObject({ published: 200, received: a.messages.length, dropped: 0 });
    expect(b.broker.stats()).toMatchObject({ published: 0, received: b.messages.length, dropped: 0 });
  });

  it('stops delivering after unsubscribe, at Redis too', async () => {
    const [a, b, prefix] = twoNodes();
    await Promise.all([b.broker.subscribe(5), b.broker.subscribe(6)]);
    b.broker.unsubscribe(5);
    // The UNSUBSCRIBE goes out before this SUBSCRIBE on the same connection, so Redis applied it by the time this resolves.
    await b.broker.subscribe(7);
    expect((await admin.pubsub('CHANNELS', `${prefix}user:*`)).sort()).toEqual([`${prefix}user:6`, `${prefix}user:7`]);
    a.broker.publish([
      { user: 5, seq: 1, frame: frame(5, 1) },
      { user: 6, seq: 1, frame: frame(6, 1) },
    ]);
    await b.until(() => b.messages.length > 0);
    expect(b.messages.map((m) => m.user)).toEqual([6]);
    expect(b.broker.stats().dropped).toBe(0);
  });

  it('delivers control events to every node', async () => {
    const [a, b] = twoNodes();
    await Promise.all([a.ready(), b.ready()]);
    // The control SUBSCRIBE was issued at construction; a user subscribe after it confirms it on each node.
    await Promise.all([a.broker.subscribe(1), b.broker.subscribe(2)]);
    b.broker.publishControl({ type: 'revoke', tokenId: 'tok-1' });
    await Promise.all([a.until(() => a.controls.length === 1), b.until(() => b.controls.length === 1)]);
    expect(a.controls).toEqual([{ type: 'revoke', tokenId: 'tok-1' }]);
    expect(b.controls).toEqual([{ type: 'revoke', tokenId: 'tok-1' }]);
  });

  it('sends a notification to many users as one message, and each node delivers its own users, in order with per-user messages', async () => {
    const [a, b] = twoNodes();
    const users = Array.from({ length: 100 }, (_, i) => i + 1);
    await Promise.all(users.map((user) => (user <= 50 ? a : b).broker.subscribe(user)));
    const notification: NotificationMessage = {
      shared: ',"id":"n1","title":"Deploy","body":"done"}',
      deliveries: users.map((user) => ({ user, seq: user + 1, topic: user % 2 === 0 ? 'deploys' : null })),
    };
    const before = users.map((user) => ({ user, seq: user, frame: frame(user, user) }));
    await admin.config('RESETSTAT');
    a.broker.publish(before);
    a.broker.publishNotification(notification);
    a.broker.publish([{ user: 100, seq: 102, frame: frame(100, 102) }]);
    await Promise.all([a.until(() => a.messages.length === 100), b.until(() => b.messages.at(-1)?.seq === 102)]);
    const expected = userMessages(notification);
    expect(a.messages).toEqual([...before.slice(0, 50), ...expected.slice(0, 50)]);
    expect(b.messages).toEqual([...before.slice(50), ...expected.slice(50), { user: 100, seq: 102, frame: frame(100, 102) }]);
    expect(JSON.parse(b.messages[51]?.frame ?? '')).toEqual({ type: 'notification', seq: 53, read: false, topic: 'deploys', id: 'n1', title: 'Deploy', body: 'done' });
    // 100 + 1 per-user messages and one for the notification's 100 recipients.
    expect(await admin.info('commandstats')).toMatch(/cmdstat_publish:calls=102,/);
    expect(a.broker.stats()).toMatchObject({ published: 201, received: 100, dropped: 0 });
    expect(b.broker.stats()).toMatchObject({ published: 0, received: 101, dropped: 0 });
  });

  it('sends a notification to fewer than fanoutMin users on their own channels', async () => {
    const [a, b] = twoNodes({ fanoutMin: 4 });
    await Promise.all([b.broker.subscribe(1), b.broker.subscribe(2), b.broker.subscribe(3)]);
    await admin.config('RESETSTAT');
    const notification: NotificationMessage = { shared: ',"id":"n2","title":"t"}', deliveries: [1, 2, 3].map((user) => ({ user, seq: 1, topic: null })) };
    a.broker.publishNotification(notification);
    await b.until(() => b.messages.length === 3);
    expect(b.messages).toEqual(userMessages(notification));
    expect(await admin.info('commandstats')).toMatch(/cmdstat_publish:calls=3,/);
  });

  it('batches 1,000 subscribes made in one turn into one SUBSCRIBE', async () => {
    const [a, b, prefix] = twoNodes();
    // Each node's first SUBSCRIBE (its shared channels) is confirmed before the count starts.
    await Promise.all([a.broker.subscribe(100_001), b.broker.subscribe(100_000)]);
    await admin.config('RESETSTAT');
    const users = Array.from({ length: 1000 }, (_, i) => i + 1);
    await Promise.all(users.map((user) => b.broker.subscribe(user)));
    const stats = await admin.info('commandstats');
    expect(stats).toMatch(/cmdstat_subscribe:calls=1,/);
    // All 1,000 are live: one message to each of them arrives.
    a.broker.publish(users.map((user) => ({ user, seq: 1, frame: frame(user, 1) })));
    await b.until(() => b.messages.length === 1000);
    expect(b.messages.map((m) => m.user)).toEqual(users);

    await admin.config('RESETSTAT');
    for (const user of users) b.broker.unsubscribe(user);
    await b.broker.subscribe(200_000);
    const after = await admin.info('commandstats');
    expect(after).toMatch(/cmdstat_unsubscribe:calls=1,/);
    expect((await admin.pubsub('CHANNELS', `${prefix}user:*`)).sort()).toEqual([`${prefix}user:100000`, `${prefix}user:100001`, `${prefix}user:200000`]);
  });

  it('a subscribe and unsubscribe of one user in the same turn cancel out', async () => {
    const [, b] = twoNodes();
    await b.broker.subscribe(1);
    await admin.config('RESETSTAT');
    const pending = b.broker.subscribe(9);
    b.broker.unsubscribe(9);
    await pending;
    await b.broker.subscribe(10);
    expect(await admin.info('commandstats')).not.toMatch(/cmdstat_unsubscribe/);
  });

  it('ignores garbage on its channels and keeps delivering', async () => {
    const [, b, prefix] = twoNodes();
    await b.broker.subscribe(1);
    const user1 = `${prefix}user:1`;
    const garbage = ['', 'abc', '1:2', ':1:0:{}', 'x:1:0:{}', '2:1:0:{}', '1:-1:0:{}', '1:1.5:0:{}', '1:1:0:not json', '1:1:0:', '99999999999999999999:1:0:{}', '1:1:{}', '1:1::{}', '1:1:-5:{}', '1:1:x:{}'];
    for (const payload of garbage) await admin.publish(user1, payload);
    const badControl = ['{', '{"type":"nope"}', '{"type":"revoke"}', 'null', ''];
    for (const payload of badControl) await admin.publish(`${prefix}control`, payload);
    const good = { sentAt: 1, shared: ',"id":"x"}', users: [1], seqs: [3] };
    const badFanout = [
      '',
      'null',
      '[]',
      JSON.stringify({ ...good, sentAt: -1 }),
      JSON.stringify({ ...good, shared: '{"id":"x"}' }),
      JSON.stringify({ ...good, shared: ',"id":"x"' }),
      JSON.stringify({ ...good, users: [1, 2] }),
      JSON.stringify({ ...good, users: [0] }),
      JSON.stringify({ ...good, seqs: ['3'] }),
      JSON.stringify({ ...good, seqs: [1.5] }),
      JSON.stringify({ ...good, topics: [] }),
      JSON.stringify({ ...good, topics: [7] }),
      JSON.stringify({ ...good, users: 'all' }),
    ];
    for (const payload of badFanout) await admin.publish(`${prefix}fanout`, payload);
    await admin.publish(user1, Buffer.from([0xff, 0xfe, 0x00]));
    await admin.publish(user1, `1:7:${Date.now()}:${frame(1, 7)}`);
    await b.until(() => b.messages.length === 1);
    expect(b.messages).toEqual([{ user: 1, seq: 7, frame: frame(1, 7) }]);
    expect(b.controls).toEqual([]);
    expect(b.broker.stats()).toMatchObject({ received: 1, dropped: garbage.length + badControl.length + badFanout.length + 1 });
  });

  it('reports health with ping and rejects subscribes after close', async () => {
    const node = open();
    await node.ready();
    expect(await node.broker.ping()).toBe(true);
    await node.broker.close();
    expect(await node.broker.ping()).toBe(false);
    await expect(node.broker.subscribe(1)).rejects.toThrow('broker closed');
  });
});

describe('Redis broker across a Redis restart', () => {
  let own: RedisProcess;
  beforeAll(async () => {
    own = new RedisProcess(await freePort());
    await own.start();
  });
  afterAll(async () => {
    await own.dispose();
  });

  it('resubscribes by itself and delivery resumes', async () => {
    let resubscribedA!: () => void;
    let resubscribedB!: () => void;
    const resubscribed = Promise.all([new Promise<void>((resolve) => (resubscribedA = resolve)), new Promise<void>((resolve) => (resubscribedB = resolve))]);
    const prefix = `r${randomUUID().slice(0, 8)}:`;
    const errors: Error[] = [];
    const a = new Node({ url: own.url, prefix, pingTimeoutMs: 30_000, onError: (e) => errors.push(e), onResubscribe: () => resubscribedA() });
    const b = new Node({ url: own.url, prefix, pingTimeoutMs: 30_000, onError: (e) => errors.push(e), onResubscribe: () => resubscribedB() });
    nodes.push(a, b);
    await Promise.all([b.broker.subscribe(1), b.broker.subscribe(2)]);
    a.broker.publish([{ user: 1, seq: 1, frame: frame(1, 1) }]);
    await b.until(() => b.messages.length === 1);

    await own.kill();
    // Published while Redis is down: may be dropped (counted), never thrown.
    a.broker.publish([{ user: 2, seq: 1, frame: frame(2, 1) }]);
    expect(await b.broker.ping()).toBe(false);
    await own.start();

    await resubscribed;
    expect(a.broker.stats().resubscribes).toBe(1);
    expect(b.broker.stats().resubscribes).toBe(1);
    const check = new Redis(own.url);
    try {
      expect(await numsub(check, `${prefix}user:1`)).toBe(1);
      expect(await numsub(check, `${prefix}user:2`)).toBe(1);
      expect(await numsub(check, `${prefix}control`)).toBe(2);
    } finally {
      check.disconnect();
    }
    await a.ready();
    const before = b.messages.length;
    a.broker.publish([
      { user: 1, seq: 2, frame: frame(1, 2) },
      { user: 2, seq: 2, frame: frame(2, 2) },
    ]);
    await b.until(() => b.messages.at(-1)?.seq === 2 && b.messages.at(-1)?.user === 2);
    expect(b.messages.slice(before).map((m) => [m.user, m.seq])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    // New subscriptions work on the new connection as well.
    await b.broker.subscribe(3);
    a.broker.publishControl({ type: 'revoke', tokenId: 'after-restart' });
    await b.until(() => b.controls.length === 1);
    expect(errors.length).toBeGreaterThan(0); // the outage was seen, and reported rather than thrown
  });
});

describe('Redis broker, sharded Pub/Sub on a single-node cluster', () => {
  let cluster: RedisProcess;
  beforeAll(async () => {
    const port = await freePort();
    cluster = new RedisProcess(port, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1']);
    await cluster.start();
    const client = new Redis(cluster.url);
    try {
      await client.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
      await cluster.log('Cluster state changed: ok');
    } finally {
      client.disconnect();
    }
  });
  afterAll(async () => {
    await cluster.dispose();
  });

  it('computes cluster hash slots as Redis does', async () => {
    const client = new Redis(cluster.url);
    try {
      for (const key of ['herald:user:1', 'herald:user:42', 'herald:control', '{user}:x', 'a{b}c', 'x{}y']) {
        expect(keySlot(key)).toBe(await client.cluster('KEYSLOT', key));
      }
    } finally {
      client.disconnect();
    }
  });

  it('delivers per user in order, and control events to every node', async () => {
    const prefix = `s${randomUUID().slice(0, 8)}:`;
    const a = new Node({ url: cluster.url, prefix, sharded: true });
    const b = new Node({ url: cluster.url, prefix, sharded: true });
    nodes.push(a, b);
    await Promise.all([a.broker.subscribe(1), ...Array.from({ length: 50 }, (_, i) => b.broker.subscribe(i + 2))]);
    const published: UserMessage[] = [];
    for (let seq = 1; seq <= 100; seq++) published.push({ user: 1 + (seq % 3), seq, frame: frame(1 + (seq % 3), seq) });
    a.broker.publish(published);
    const expectedA = published.filter((m) => m.user === 1);
    const expectedB = published.filter((m) => m.user === 2 || m.user === 3);
    await Promise.all([a.until(() => a.messages.length === expectedA.length), b.until(() => b.messages.length === expectedB.length)]);
    expect(a.messages).toEqual(expectedA);
    expect(b.messages).toEqual(expectedB);

    b.broker.unsubscribe(2);
    await b.broker.subscribe(99);
    a.broker.publish([
      { user: 2, seq: 500, frame: frame(2, 500) },
      { user: 3, seq: 500, frame: frame(3, 500) },
    ]);
    await b.until(() => b.messages.at(-1)?.seq === 500);
    // One shard, one connection: had user 2's message been delivered, it would have come first.
    expect(b.messages.filter((m) => m.seq === 500).map((m) => m.user)).toEqual([3]);

    a.broker.publishControl({ type: 'revoke', tokenId: 'sharded' });
    await Promise.all([a.until(() => a.controls.length === 1), b.until(() => b.controls.length === 1)]);
    const shard = new Cluster([{ host: '127.0.0.1', port: cluster.port }]);
    try {
      expect(await shard.call('PUBSUB', 'SHARDNUMSUB', `${prefix}control`)).toEqual([`${prefix}control`, 2]);
    } finally {
      shard.disconnect();
    }
    expect(await a.broker.ping()).toBe(true);
  });
});
