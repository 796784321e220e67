// The behaviour every Store must share, run once per backend (store-sqlite.test.ts, store-postgres.test.ts).
import type { PublishRequest } from '@herald/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Fanout, PublishInput, PublishOutcome, Store, TokenRecord } from '../../server/src/store/store.js';

/** One backend's database, fresh for each test. */
export interface StoreBackend {
  /** Opens a store on this database: the same data each time, as a restart would see it. */
  open(options?: { groupCommitMax?: number }): Promise<Store>;
  /** Answers a `SELECT count(*) …` about the stored rows through a connection of its own. */
  count(sql: string): Promise<number>;
  /** Removes the database. */
  destroy(): Promise<void>;
}

const hour = 3600 * 1000;
const day = 24 * hour;
const keepAll = { maxAgeMs: 365 * day, maxPerUser: 1_000_000 };

/** Runs the shared Store behaviour against stores from `createBackend`, one fresh database per test. */
export function describeStore(name: string, createBackend: () => Promise<StoreBackend>): void {
  describe(name, () => {
    let backend: StoreBackend;
    let store: Store;
    let nextId = 0;

    beforeEach(async () => {
      backend = await createBackend();
      store = await backend.open();
      nextId = 0;
    });

    afterEach(async () => {
      await store.close();
      await backend.destroy();
    });

    /** Closes the store and opens the same database again, as a restart would. */
    async function reopen(options: { groupCommitMax?: number } = {}): Promise<void> {
      await store.close();
      store = await backend.open(options);
    }

    function count(sql: string): Promise<number> {
      return backend.count(sql);
    }

    function request(to: PublishRequest['to'], extra: Partial<PublishRequest> = {}): PublishRequest {
      return { to, title: 'Build finished', ...extra };
    }

    function input(req: PublishRequest, extra: Partial<PublishInput> = {}): PublishInput {
      nextId += 1;
      return { id: `n${nextId}`, request: req, publisher: 'app-1', now: 1_000, ...extra };
    }

    function ok(outcome: PublishOutcome | undefined): Fanout {
      if (outcome?.ok !== true) throw new Error(`expected a successful publish, got ${JSON.stringify(outcome)}`);
      return outcome;
    }

    async function users(...names: string[]): Promise<number[]> {
      const ids: number[] = [];
      for (const name of names) {
        const user = await store.createUser(name, null, 1);
        if (user === undefined) throw new Error(`user ${name} exists`);
        ids.push(user.id);
      }
      return ids;
    }

    async function seqs(user: number, now = 1_000): Promise<number[]> {
      const page = await store.inbox(user, { limit: 200 }, now);
      return page.items.map((item) => item.seq);
    }

    it('ping is false once closed', async () => {
      await store.close();
      expect(await store.ping()).toBe(false);
    });

    describe('users', () => {
      it('creates a user once; a second create with the same name returns undefined', async () => {
        const created = await store.createUser('alice', 'scrypt$hash', 42);
        expect(created).toEqual({ id: expect.any(Number) as number, name: 'alice', passwordHash: 'scrypt$hash', createdAt: 42 });
        expect(await store.createUser('alice', null, 43)).toBeUndefined();
        expect(await store.userByName('alice')).toEqual(created);
        expect(await store.userById(created?.id ?? -1)).toEqual(created);
        expect(await store.userByName('bob')).toBeUndefined();
        expect(await store.userById(999)).toBeUndefined();
      });

      it('ensureUser creates on first use and returns the same user after, even when racing', async () => {
        const [a, b, c] = await Promise.all([store.ensureUser('sub-1', 5), store.ensureUser('sub-1', 6), store.ensureUser('sub-1', 7)]);
        expect(a).toEqual({ id: a.id, name: 'sub-1', passwordHash: null, createdAt: 5 });
        expect(b).toEqual(a);
        expect(c).toEqual(a);
        expect(await count("SELECT count(*) FROM users WHERE name = 'sub-1'")).toBe(1);
      });

      it('signs in many users at once (a mass reconnect): one row per name, the first call’s time, look-ups unaffected', async () => {
        const old = await store.ensureUser('old', 1);
        const names = [...Array.from({ length: 60 }, (_, i) => `n${i % 30}`), 'old'];
        const [made, looked] = await Promise.all([
          Promise.all(names.map((name, i) => store.ensureUser(name, 100 + i))),
          Promise.all(['old', 'nobody'].map((name) => store.userByName(name))),
        ]);
        expect(looked).toEqual([old, undefined]);
        expect(made.at(-1)).toEqual(old);
        for (let i = 0; i < 30; i += 1) {
          expect(made[i]).toEqual({ id: made[i]?.id, name: `n${i}`, passwordHash: null, createdAt: 100 + i });
          expect(made[i + 30]).toEqual(made[i]);
        }
        expect(new Set(made.map((user) => user.id)).size).toBe(31);
        expect(await count('SELECT count(*) FROM users')).toBe(31);
      });
    });

    describe('tokens', () => {
      const device = (id: string, userId: number): TokenRecord => ({
        id,
        kind: 'device',
        hash: `hash-${id}`,
        userId,
        name: null,
        label: 'laptop',
        topics: null,
        createdAt: 10,
        expiresAt: 99_999,
      });

      it('stores, finds by hash, lists and revokes tokens', async () => {
        const [alice = 0] = await users('alice');
        const app: TokenRecord = { id: 't-app', kind: 'app', hash: 'hash-app', userId: null, name: 'ci', label: null, topics: ['builds', 'deploys'], createdAt: 20, expiresAt: null };
        await store.insertToken(device('t-dev', alice));
        await store.insertToken(app);
        expect(await store.tokenByHash('hash-app')).toEqual(app);
        expect(await store.tokenByHash('hash-t-dev')).toEqual(device('t-dev', alice));
        expect(await store.tokenByHash('nope')).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual(['t-dev', 't-app']);
        expect(await store.revokeToken('t-app')).toEqual(app);
        expect(await store.revokeToken('t-app')).toBeUndefined();
        expect((await store.listTokens()).map((t) => t.id)).toEqual(['t-dev']);
      });

      it('hasAdminToken is true once any admin token exists', async () => {
        expect(await store.hasAdminToken()).toBe(false);
        await store.insertToken({ id: 'adm', kind: 'admin', hash: 'h', userId: null, name: null, label: null, topics: null, createdAt: 1, expiresAt: null });
        expect(await store.hasAdminToken()).toBe(true);
      });
    });

    describe('subscriptions', () => {
      it('subscribes idempotently, lists sorted topics and unsubscribes', async () => {
        const [alice = 0] = await users('alice');
        await store.subscribe(alice, 'deploys');
        await store.subscribe(alice, 'builds');
        await store.subscribe(alice, 'builds');
        expect(await store.topics(alice)).toEqual(['builds', 'deploys']);
        expect(await store.unsubscribe(alice, 'builds')).toBe(true);
        expect(await store.unsubscribe(alice, 'builds')).toBe(false);
        expect(await store.topics(alice)).toEqual(['deploys']);
      });
    });

    describe('publish', () => {
      it('fans out to named users and topic subscribers, each once, direct address first', async () => {
        const [a = 0, b = 0, c = 0, d = 0, e = 0] = await users('a', 'b', 'c', 'd', 'e');
        for (const user of [b, c, d]) await store.subscribe(user, 'builds');
        await store.subscribe(d, 'deploys');
        await store.subscribe(e, 'other');
        const outcome = ok(await store.publish(input(request({ users: ['a', 'b', 'a'], topics: ['builds', 'deploys'] }))));
        expect(outcome.recipients).toBe(4);
        expect(outcome.duplicate).toBe(false);
        expect(outcome.scheduledFor).toBeUndefined();
        expect(outcome.deliveries).toEqual([
          { user: a, seq: 1, topic: null },
          { user: b, seq: 1, topic: null },
          { user: c, seq: 1, topic: 'builds' },
          { user: d, seq: 1, topic: 'builds' },
        ]);
        expect(await store.head(e)).toBe(0);
        const page = await store.inbox(c, { limit: 10 }, 1_000);
        expect(page.items).toEqual([{ seq: 1, read: false, topic: 'builds', notification: outcome.notification }]);
        expect(await count('SELECT count(*) FROM notifications')).toBe(1);
        expect(await count('SELECT count(*) FROM inbox')).toBe(4);
      });

      it('assigns contiguous seqs per user', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        const mixed = [['a'], ['a', 'b'], ['b'], ['a'], ['a', 'b']];
        for (const to of mixed) await store.publish(input(request({ users: to })));
        expect(await seqs(a)).toEqual([4, 3, 2, 1]);
        expect(await seqs(b)).toEqual([3, 2, 1]);
        expect(await store.head(a)).toBe(4);
        expect(await store.heads([a, b, 999])).toEqual(
          new Map([
            [a, 4],
            [b, 3],
          ]),
        );
        expect(await store.heads([])).toEqual(new Map());
      });

      it('all: true reaches every user with topic null, even subscribers of a named topic', async () => {
        const [a = 0, b = 0, c = 0] = await users('a', 'b', 'c');
        await store.subscribe(c, 'builds');
        const outcome = ok(await store.publish(input(request({ all: true, topics: ['builds'], users: ['b'] }))));
        expect(outcome.recipients).toBe(3);
        // In no particular order: the SQLite store writes an `all` publish set-based.
        expect(outcome.deliveries).toHaveLength(3);
        expect(outcome.deliveries).toEqual(
          expect.arrayContaining([
            { user: a, seq: 1, topic: null },
            { user: b, seq: 1, topic: null },
            { user: c, seq: 1, topic: null },
          ]),
        );
      });

      it('keeps each user’s seqs in publish order when broadcasts, keyed broadcasts and targeted publishes share a group', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        const titles = ['to a', 'all 1', 'to b', 'all keyed', 'all 2', 'all keyed again'];
        const requests = [
          request({ users: ['a'] }, { title: titles[0] }),
          request({ all: true }, { title: titles[1] }),
          request({ users: ['b'] }, { title: titles[2] }),
          request({ all: true }, { title: titles[3], key: 'status' }),
          request({ all: true }, { title: titles[4] }),
          request({ all: true }, { title: titles[5], key: 'status' }),
        ];
        // Concurrent single publishes share one group commit; the batch is one atomic publish of the same six.
        const single = (await Promise.all(requests.map((r) => store.publish(input(r))))).map(ok);
        expect(single.map((outcome) => outcome.recipients)).toEqual([1, 2, 1, 2, 2, 2]);
        const batch = (await store.publishBatch(requests.map((r) => input(r)))).map(ok);
        for (const [user, name] of [
          [a, 'a'],
          [b, 'b'],
        ] as const) {
          const mine = (outcomes: Fanout[]) => outcomes.flatMap((o) => o.deliveries.filter((d) => d.user === user).map((d) => [o.notification.title, d.seq]));
          const got = [...mine(single), ...mine(batch)];
          expect(got.map(([, seq]) => seq)).toEqual(Array.from({ length: got.length }, (_, i) => i + 1));
          const expected = titles.filter((title) => title !== (name === 'a' ? 'to b' : 'to a'));
          expect(got.map(([title]) => title)).toEqual([...expected, ...expected]);
          // Each keyed broadcast replaced the one before it: only the batch's last one is left.
          const unkeyed = expected.filter((title) => !title.startsWith('all keyed'));
          const page = await store.replay(user, 0, 100, 1_000);
          expect(page.items.map((item) => item.notification.title)).toEqual([...unkeyed, ...unkeyed, 'all keyed again']);
        }
      });

      it('answers a scheduled broadcast with the users of now, and releases it to the users of then', async () => {
        await users('a', 'b');
        const at = Date.parse('2030-01-01T00:00:00Z');
        const scheduled = ok(await store.publish(input(request({ all: true }, { deliverAt: new Date(at).toISOString() }), { now: at - 1 })));
        expect(scheduled).toMatchObject({ recipients: 2, scheduledFor: at, deliveries: [] });
        const [c = 0] = await users('c');
        const [released] = await store.releaseDue(at);
        expect(released?.recipients).toBe(3);
        expect(released?.deliveries.map((d) => d.user).sort((x, y) => x - y)).toContain(c);
      });

      it('fails with unknown_user listing each missing name once, writing nothing', async () => {
        const [a = 0] = await users('a');
        const outcome = await store.publish(input(request({ users: ['a', 'ghost', 'ghost', 'nobody'] })));
        expect(outcome).toEqual({ ok: false, code: 'unknown_user', users: ['ghost', 'nobody'] });
        expect(await store.head(a)).toBe(0);
        expect(await count('SELECT count(*) FROM notifications')).toBe(0);
        expect(await store.retract('n1', undefined)).toBeUndefined();
      });

      it('accepts a topic nobody subscribes to with zero recipients', async () => {
        const outcome = ok(await store.publish(input(request({ topics: ['quiet'] }))));
        expect(outcome.recipients).toBe(0);
        expect(outcome.deliveries).toEqual([]);
        expect(await store.retract(outcome.id, 'app-1')).toEqual(new Map());
      });

      it('stores every field once and applies defaults', async () => {
        const [a = 0] = await users('a');
        const full = ok(
          await store.publish(
            input(
              request(
                { users: ['a'] },
                {
                  title: 'Deploy',
                  body: 'v1.2 is live',
                  priority: 5,
                  tags: ['prod', 'rocket'],
                  url: 'https://example.com/deploys/12',
                  icon: 'https://example.com/icon.png',
                  actions: [{ label: 'Open', url: 'https://example.com/x' }],
                  key: 'deploy-prod',
                  ttl: 60,
                },
              ),
              { now: 5_000, publisher: 'app-9' },
            ),
          ),
        );
        expect(full.notification).toEqual({
          id: 'n1',
          title: 'Deploy',
          body: 'v1.2 is live',
          priority: 5,
          tags: ['prod', 'rocket'],
          url: 'https://example.com/deploys/12',
          icon: 'https://example.com/icon.png',
          actions: [{ label: 'Open', url: 'https://example.com/x' }],
          key: 'deploy-prod',
          createdAt: 5_000,
          expiresAt: 65_000,
          publisher: 'app-9',
        });
        const bare = ok(await store.publish(input(request({ users: ['a'] }), { now: 6_000 })));
        expect(bare.notification).toEqual({
          id: 'n2',
          title: 'Build finished',
          body: '',
          priority: 3,
          tags: [],
          url: null,
          icon: null,
          actions: [],
          key: null,
          createdAt: 6_000,
          expiresAt: null,
          publisher: 'app-1',
        });
        await reopen();
        const page = await store.inbox(a, { limit: 10 }, 6_000);
        expect(page.items.map((item) => item.notification)).toEqual([bare.notification, full.notification]);
      });

      it('a key replaces that user’s earlier row with the same key, without a gap', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        const first = ok(await store.publish(input(request({ users: ['a', 'b'] }, { key: 'build-42', title: 'running' }))));
        await store.publish(input(request({ users: ['a'] }, { key: 'other' })));
        const second = ok(await store.publish(input(request({ users: ['a'] }, { key: 'build-42', title: 'passed' }))));
        expect(second.deliveries).toEqual([{ user: a, seq: 3, topic: null }]);
        const page = await store.inbox(a, { limit: 10 }, 1_000);
        expect(page.items.map((item) => [item.seq, item.notification.title])).toEqual([
          [3, 'passed'],
          [2, 'Build finished'],
        ]);
        expect(await seqs(b)).toEqual([1]);
        expect(await store.replay(a, 0, 10, 1_000)).toMatchObject({ head: 3, gap: false });
        // b still holds the first one, so its body stays; once b's copy goes too, the body goes.
        expect(await count(`SELECT count(*) FROM notifications WHERE id = '${first.id}'`)).toBe(1);
        await store.publish(input(request({ users: ['b'] }, { key: 'build-42' })));
        expect(await count(`SELECT count(*) FROM notifications WHERE id = '${first.id}'`)).toBe(0);
        expect(await store.retract(first.id, undefined)).toBeUndefined();
      });

      it('key replacement applies within one group commit', async () => {
        const [a = 0] = await users('a');
        const results = await Promise.all([1, 2, 3].map((i) => store.publish(input(request({ users: ['a'] }, { key: 'k', title: `v${i}` })))));
        expect(results.map((r) => ok(r).deliveries[0]?.seq)).toEqual([1, 2, 3]);
        const page = await store.inbox(a, { limit: 10 }, 1_000);
        expect(page.items.map((item) => [item.seq, item.notification.title])).toEqual([[3, 'v3']]);
        expect(await count('SELECT count(*) FROM notifications')).toBe(1);
      });

      it('group-commits many concurrent publishes; each resolves and all survive a reopen', async () => {
        await reopen({ groupCommitMax: 64 });
        const ids = await users('a', 'b', 'c');
        const pending: Promise<PublishOutcome>[] = [];
        for (let i = 0; i < 1000; i += 1) pending.push(store.publish(input(request({ users: [['a', 'b', 'c'][i % 3] ?? 'a'] }, { title: `#${i}` }))));
        const outcomes = (await Promise.all(pending)).map(ok);
        expect(new Set(outcomes.map((o) => o.id)).size).toBe(1000);
        await reopen();
        expect(await count('SELECT count(*) FROM inbox')).toBe(1000);
        for (const [index, user] of ids.entries()) {
          const expected = index === 0 ? 334 : 333;
          expect(await store.head(user)).toBe(expected);
          const replay = await store.replay(user, 0, 1000, 1_000);
          expect(replay.items.map((item) => item.seq)).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
          // Seqs follow call order.
          expect(replay.items.map((item) => item.notification.title)).toEqual(
            Array.from({ length: expected }, (_, i) => `#${i * 3 + index}`),
          );
        }
      });

      it('close commits queued publishes first; a publish after close is rejected', async () => {
        const [a = 0] = await users('a');
        const pending = store.publish(input(request({ users: ['a'] })));
        await store.close();
        expect(ok(await pending).deliveries).toEqual([{ user: a, seq: 1, topic: null }]);
        await expect(store.publish(input(request({ users: ['a'] })))).rejects.toThrow('the store is closed');
        store = await backend.open();
        expect(await store.head(a)).toBe(1);
      });

      it('a publish that breaks the shared transaction fails alone', async () => {
        const [a = 0] = await users('a');
        const results = await Promise.allSettled([
          store.publish(input(request({ users: ['a'] }), { id: 'same' })),
          store.publish(input(request({ users: ['a'] }), { id: 'same' })),
          store.publish(input(request({ users: ['a'] }), { id: 'other' })),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect(await seqs(a)).toEqual([2, 1]);
      });
    });

    describe('ttl and retention', () => {
      it('hides expired rows from inbox, unread and replay before the sweep, and reports a gap', async () => {
        const [a = 0] = await users('a');
        await store.publish(input(request({ users: ['a'] }), { now: 1_000 }));
        const short = ok(await store.publish(input(request({ users: ['a'] }, { ttl: 10 }), { now: 1_000 })));
        await store.publish(input(request({ users: ['a'] }), { now: 1_000 }));
        expect(short.notification.expiresAt).toBe(11_000);

        expect(await store.inbox(a, { limit: 10 }, 10_999)).toMatchObject({ head: 3, unread: 3 });
        const later = await store.inbox(a, { limit: 10 }, 11_000);
        expect(later.items.map((item) => item.seq)).toEqual([3, 1]);
        expect(later.unread).toBe(2);

        const replay = await store.replay(a, 0, 10, 11_000);
        expect(replay.items.map((item) => item.seq)).toEqual([1, 3]);
        expect(replay).toMatchObject({ head: 3, gap: true });
        expect(await store.replay(a, 2, 10, 11_000)).toMatchObject({ gap: false });
        expect(await store.replay(a, 0, 10, 10_999)).toMatchObject({ gap: false });
        // Page size 1 from 0: the page ends at 1, before the expired seq 2, so this page has no gap.
        expect(await store.replay(a, 0, 1, 11_000)).toMatchObject({ gap: false });
        expect(await store.replay(a, 1, 1, 11_000)).toMatchObject({ gap: true });

        expect(await store.sweep(11_000, keepAll)).toBe(1);
        expect(await count('SELECT count(*) FROM inbox')).toBe(2);
        expect(await count(`SELECT count(*) FROM notifications WHERE id = '${short.id}'`)).toBe(0);
        expect(await store.replay(a, 0, 10, 11_000)).toMatchObject({ gap: true });
        expect(await store.replay(a, 1, 10, 11_000)).toMatchObject({ gap: true });
        expect(await store.replay(a, 2, 10, 11_000)).toMatchObject({ gap: false });
        expect(await store.sweep(11_000, keepAll)).toBe(0);
      });

      it('keeps only the newest maxPerUser rows per user and reports the rest as a gap', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        for (let i = 0; i < 5; i += 1) await store.publish(input(request({ users: ['a'] })));
        await store.publish(input(request({ users: ['b'] })));
        await store.deleteItem(a, 4);
        expect(await store.sweep(1_000, { maxAgeMs: day, maxPerUser: 2 })).toBe(2);
        expect(await seqs(a)).toEqual([5, 3]);
        expect(await seqs(b)).toEqual([1]);
        expect(await store.replay(a, 0, 10, 1_000)).toMatchObject({ head: 5, gap: true });
        expect(await store.replay(a, 2, 10, 1_000)).toMatchObject({ gap: false });
        // Up to date, or ahead (a device that kept a cursor from a previous data directory): nothing to send, no gap.
        expect(await store.replay(a, 5, 10, 1_000)).toEqual({ items: [], head: 5, gap: false });
        expect(await store.replay(a, 9, 10, 1_000)).toEqual({ items: [], head: 5, gap: false });
        expect(await store.replay(b, 0, 10, 1_000)).toMatchObject({ gap: false });
        expect(ok(await store.publish(input(request({ users: ['a'] })))).deliveries).toEqual([{ user: a, seq: 6, topic: null }]);
        expect(await count('SELECT count(*) FROM notifications')).toBe(4);
      });

      it('removes rows older than maxAgeMs and reports them as a gap', async () => {
        const [a = 0] = await users('a');
        await store.publish(input(request({ users: ['a'] }), { now: 1_000 }));
        await store.publish(input(request({ users: ['a'] }), { now: 2_000 }));
        await store.publish(input(request({ users: ['a'] }), { now: 5_000 }));
        await store.publish(input(request({ topics: ['nobody'] }), { now: 1_000 }));
        expect(await store.sweep(10_000, { maxAgeMs: 7_000, maxPerUser: 100 })).toBe(2);
        expect(await seqs(a, 10_000)).toEqual([3]);
        expect(await store.replay(a, 0, 10, 10_000)).toMatchObject({ gap: true });
        expect(await store.replay(a, 2, 10, 10_000)).toMatchObject({ gap: false });
        expect(await count('SELECT count(*) FROM notifications')).toBe(1);
      });

      it('deleting by the user or retraction does not cause a gap', async () => {
        const [a = 0] = await users('a');
        for (let i = 0; i < 4; i += 1) await store.publish(input(request({ users: ['a'] })));
        expect(await store.deleteItem(a, 2)).toBe(true);
        expect(await store.deleteItem(a, 2)).toBe(false);
        expect(await store.retract('n3', undefined)).toEqual(new Map([[a, [3]]]));
        const replay = await store.replay(a, 0, 10, 1_000);
        expect(replay.items.map((item) => item.seq)).toEqual([1, 4]);
        expect(replay).toMatchObject({ head: 4, gap: false });
        expect(await count('SELECT count(*) FROM notifications')).toBe(2);
      });
    });

    describe('retract', () => {
      it('removes the notification from every inbox, checking the publisher', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        await store.publish(input(request({ users: ['b'] })));
        const outcome = ok(await store.publish(input(request({ users: ['a', 'b'] }), { publisher: 'app-1' })));
        expect(await store.retract(outcome.id, 'app-2')).toBeUndefined();
        expect(await store.retract('missing', undefined)).toBeUndefined();
        expect(await store.retract(outcome.id, 'app-1')).toEqual(
          new Map([
            [a, [1]],
            [b, [2]],
          ]),
        );
        expect(await store.retract(outcome.id, undefined)).toBeUndefined();
        expect(await seqs(a)).toEqual([]);
        expect(await seqs(b)).toEqual([1]);
        expect(await store.head(b)).toBe(2);
      });
    });

    describe('idempotency', () => {
      const same = { key: 'retry-1', hash: 'h1' };

      it('returns the original publish for the same key and hash, and refuses a different hash', async () => {
        const [a = 0] = await users('a');
        const first = ok(await store.publish(input(request({ users: ['a'] }), { idempotency: same })));
        const again = ok(await store.publish(input(request({ users: ['a'] }), { idempotency: same, now: 2_000 })));
        expect(again).toEqual({ ok: true, id: first.id, recipients: 1, duplicate: true, notification: first.notification, deliveries: [] });
        expect(await store.head(a)).toBe(1);
        expect(await store.publish(input(request({ users: ['a'] }, { title: 'other' }), { idempotency: { key: 'retry-1', hash: 'h2' } }))).toEqual({
          ok: false,
          code: 'idempotency_key_reused',
        });
        // Keys belong to one publisher.
        const otherApp = ok(await store.publish(input(request({ users: ['a'] }), { idempotency: same, publisher: 'app-2' })));
        expect(otherApp.duplicate).toBe(false);
        expect(await store.head(a)).toBe(2);
      });

      it('works when both requests share one group commit', async () => {
        const [a = 0] = await users('a');
        const firstCall = store.publish(input(request({ users: ['a'] }), { idempotency: same }));
        const secondCall = store.publish(input(request({ users: ['a'] }), { idempotency: same }));
        const reused = store.publish(input(request({ users: ['a'] }), { idempotency: { key: 'retry-1', hash: 'h9' } }));
        const [first, second, third] = await Promise.all([firstCall, secondCall, reused]);
        expect(ok(first).duplicate).toBe(false);
        expect(ok(second)).toMatchObject({ id: ok(first).id, duplicate: true, deliveries: [] });
        expect(third).toEqual({ ok: false, code: 'idempotency_key_reused' });
        expect(await store.head(a)).toBe(1);
      });

      it('still answers a retry after the original was retracted, and forgets keys after 24 h', async () => {
        const [a = 0] = await users('a');
        const first = ok(await store.publish(input(request({ users: ['a'] }, { ttl: 30 }), { idempotency: same, now: 1_000 })));
        await store.retract(first.id, 'app-1');
        const again = ok(await store.publish(input(request({ users: ['a'] }, { ttl: 30 }), { idempotency: same, now: 9_000 })));
        expect(again).toEqual({ ok: true, id: first.id, recipients: 1, duplicate: true, notification: first.notification, deliveries: [] });

        expect(await store.sweep(1_000 + day, keepAll)).toBe(0);
        expect(ok(await store.publish(input(request({ users: ['a'] }), { idempotency: same, now: 1_000 + day }))).duplicate).toBe(true);
        await store.sweep(1_001 + day, keepAll);
        const fresh = ok(await store.publish(input(request({ users: ['a'] }), { idempotency: same, now: 1_001 + day })));
        expect(fresh.duplicate).toBe(false);
        expect(fresh.deliveries).toEqual([{ user: a, seq: 2, topic: null }]);
      });
    });

    describe('publishBatch', () => {
      it('publishes every input in one transaction', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        const outcomes = await store.publishBatch([input(request({ users: ['a'] })), input(request({ users: ['a', 'b'] }))]);
        expect(outcomes.map((o) => ok(o).deliveries)).toEqual([
          [{ user: a, seq: 1, topic: null }],
          [
            { user: a, seq: 2, topic: null },
            { user: b, seq: 1, topic: null },
          ],
        ]);
        expect(await store.publishBatch([])).toEqual([]);
      });

      it('writes nothing when one input names an unknown user', async () => {
        const [a = 0] = await users('a');
        const outcomes = await store.publishBatch([
          input(request({ users: ['a'] }, { key: 'k' })),
          input(request({ users: ['a'] }), { idempotency: { key: 'i', hash: 'h' } }),
          input(request({ users: ['ghost'] })),
        ]);
        expect(outcomes).toEqual([{ ok: false, code: 'unknown_user', users: ['ghost'], index: 2 }]);
        expect(await store.head(a)).toBe(0);
        expect(await count('SELECT count(*) FROM notifications')).toBe(0);
        expect(await count('SELECT count(*) FROM idempotency')).toBe(0);
      });

      it('writes nothing when the last input of a batch fails after megabytes of writes, while a publish in the same group commits', async () => {
        const names = Array.from({ length: 40 }, (_, i) => `u${i}`);
        const ids = await users(...names);
        const body = 'x'.repeat(2_000);
        const single = store.publish(input(request({ users: ['u0'] })));
        const batch = store.publishBatch([
          ...Array.from({ length: 600 }, (_, i) => input(request({ users: [names[i % names.length] ?? 'u0'] }, { body }))),
          input(request({ users: ['ghost'] })),
        ]);
        expect(await batch).toEqual([{ ok: false, code: 'unknown_user', users: ['ghost'], index: 600 }]);
        expect(ok(await single).deliveries).toEqual([{ user: ids[0], seq: 1, topic: null }]);
        expect(await count('SELECT count(*) FROM notifications')).toBe(1);
        expect(await Promise.all(ids.map((id) => store.head(id)))).toEqual([1, ...ids.slice(1).map(() => 0)]);
      });

      it('writes nothing when an idempotency key is reused within the batch, while other publishes in the same group commit', async () => {
        const [a = 0] = await users('a');
        const batch = store.publishBatch([
          input(request({ users: ['a'] }), { idempotency: { key: 'i', hash: 'h1' } }),
          input(request({ users: ['a'] }), { idempotency: { key: 'i', hash: 'h2' } }),
        ]);
        const single = store.publish(input(request({ users: ['a'] })));
        expect(await batch).toEqual([{ ok: false, code: 'idempotency_key_reused', index: 1 }]);
        expect(ok(await single).deliveries).toEqual([{ user: a, seq: 1, topic: null }]);
        expect(await seqs(a)).toEqual([1]);
        expect(await count('SELECT count(*) FROM idempotency')).toBe(0);
      });
    });

    describe('scheduled delivery', () => {
      const at = Date.parse('2030-01-01T00:00:00Z');

      it('holds a future deliverAt, releases it across a restart and assigns seqs at release', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        await store.subscribe(b, 'ops');
        const scheduled = ok(await store.publish(input(request({ users: ['a'], topics: ['ops'] }, { deliverAt: '2030-01-01T01:00:00+01:00', ttl: 60 }), { now: at - 5_000 })));
        expect(scheduled).toMatchObject({ recipients: 2, scheduledFor: at, deliveries: [], duplicate: false });
        expect(scheduled.notification).toMatchObject({ createdAt: at, expiresAt: at + 60_000 });
        await store.publish(input(request({ users: ['a'] }), { now: at - 4_000 }));
        expect(await seqs(a, at - 1)).toEqual([1]);
        expect(await store.releaseDue(at - 1)).toEqual([]);

        await reopen();
        const released = await store.releaseDue(at);
        expect(released).toEqual([
          {
            ok: true,
            id: scheduled.id,
            recipients: 2,
            duplicate: false,
            notification: scheduled.notification,
            deliveries: [
              { user: a, seq: 2, topic: null },
              { user: b, seq: 1, topic: 'ops' },
            ],
          },
        ]);
        expect(await store.releaseDue(at + 1_000)).toEqual([]);
        const page = await store.inbox(b, { limit: 10 }, at);
        expect(page.items).toEqual([{ seq: 1, read: false, topic: 'ops', notification: scheduled.notification }]);
        expect(await store.sweep(at, keepAll)).toBe(0);
      });

      it('resolves topic subscribers at release time', async () => {
        const [a = 0] = await users('a');
        const scheduled = ok(await store.publish(input(request({ topics: ['ops'] }, { deliverAt: new Date(at).toISOString() }), { now: at - 1 })));
        expect(scheduled.recipients).toBe(0);
        await store.subscribe(a, 'ops');
        const [released] = await store.releaseDue(at);
        expect(released?.deliveries).toEqual([{ user: a, seq: 1, topic: 'ops' }]);
      });

      it('publishes at once when deliverAt is now or past, and checks users at publish time', async () => {
        const [a = 0] = await users('a');
        const now = ok(await store.publish(input(request({ users: ['a'] }, { deliverAt: new Date(at).toISOString() }), { now: at })));
        expect(now.scheduledFor).toBeUndefined();
        expect(now.deliveries).toEqual([{ user: a, seq: 1, topic: null }]);
        expect(await store.publish(input(request({ users: ['ghost'] }, { deliverAt: new Date(at + 1).toISOString() }), { now: at }))).toEqual({
          ok: false,
          code: 'unknown_user',
          users: ['ghost'],
        });
      });

      it('retracting a pending notification cancels it', async () => {
        await users('a');
        const scheduled = ok(await store.publish(input(request({ users: ['a'] }, { deliverAt: new Date(at).toISOString() }), { now: 0 })));
        expect(await store.sweep(at - 1, { maxAgeMs: 1, maxPerUser: 0 })).toBe(0);
        expect(await count('SELECT count(*) FROM notifications')).toBe(1);
        expect(await store.retract(scheduled.id, 'app-1')).toEqual(new Map());
        expect(await store.releaseDue(at)).toEqual([]);
      });

      it('an idempotent retry of a pending publish reports the schedule', async () => {
        await users('a');
        const idempotency = { key: 'later', hash: 'h' };
        const first = ok(await store.publish(input(request({ users: ['a'] }, { deliverAt: new Date(at).toISOString() }), { now: 0, idempotency })));
        const again = ok(await store.publish(input(request({ users: ['a'] }, { deliverAt: new Date(at).toISOString() }), { now: 1, idempotency })));
        expect(again).toEqual({ ...first, duplicate: true });
      });
    });

    describe('inbox', () => {
      it('pages newest first with before, limit and filters, and reports head and unread', async () => {
        const [a = 0] = await users('a');
        await store.subscribe(a, 'builds');
        const titles = ['Deploy FINISHED', '100% done', '1000 done', 'snake_case', 'snakeXcase', 'plain'];
        for (const [i, title] of titles.entries()) {
          const to = i % 2 === 0 ? { topics: ['builds'] } : { users: ['a'] };
          await store.publish(input(request(to, { title, body: i === 5 ? 'body says finished' : '' })));
        }
        await store.markRead(a, { seqs: [1, 2] }, 1_000);

        const all = await store.inbox(a, { limit: 3 }, 1_000);
        expect(all.items.map((item) => item.seq)).toEqual([6, 5, 4]);
        expect(all).toMatchObject({ head: 6, unread: 4 });
        expect((await store.inbox(a, { limit: 3, before: 4 }, 1_000)).items.map((item) => item.seq)).toEqual([3, 2, 1]);
        expect((await store.inbox(a, { limit: 10, before: 1 }, 1_000)).items).toEqual([]);
        expect((await store.inbox(a, { limit: 0 }, 1_000)).items).toEqual([]);
        expect((await store.inbox(a, { limit: 10, unreadOnly: true }, 1_000)).items.map((item) => item.seq)).toEqual([6, 5, 4, 3]);
        expect((await store.inbox(a, { limit: 10, topic: 'builds' }, 1_000)).items.map((item) => item.seq)).toEqual([5, 3, 1]);
        expect((await store.inbox(a, { limit: 10, topic: 'builds', unreadOnly: true }, 1_000)).items.map((item) => item.seq)).toEqual([5, 3]);
        const search = async (q: string): Promise<number[]> => (await store.inbox(a, { limit: 10, q }, 1_000)).items.map((item) => item.seq);
        expect(await search('finished')).toEqual([6, 1]);
        expect(await search('0%')).toEqual([2]);
        expect(await search('e_c')).toEqual([4]);
        expect(await search('\\')).toEqual([]);
        expect(await search('')).toEqual([6, 5, 4, 3, 2, 1]);
        expect((await store.inbox(a, { limit: 1, q: 'done', before: 3 }, 1_000)).items.map((item) => item.seq)).toEqual([2]);
      });

      it('answers an unknown user with an empty page', async () => {
        expect(await store.inbox(77, { limit: 10 }, 1_000)).toEqual({ items: [], head: 0, unread: 0 });
        expect(await store.replay(77, 0, 10, 1_000)).toEqual({ items: [], head: 0, gap: false });
        expect(await store.head(77)).toBe(0);
      });
    });

    describe('replay', () => {
      it('returns seqs after since in ascending pages up to limit', async () => {
        const [a = 0] = await users('a');
        for (let i = 0; i < 5; i += 1) await store.publish(input(request({ users: ['a'] })));
        const first = await store.replay(a, 1, 2, 1_000);
        expect(first.items.map((item) => item.seq)).toEqual([2, 3]);
        expect(first).toMatchObject({ head: 5, gap: false });
        expect((await store.replay(a, 3, 2, 1_000)).items.map((item) => item.seq)).toEqual([4, 5]);
        expect((await store.replay(a, 5, 2, 1_000)).items).toEqual([]);
      });
    });

    describe('markRead', () => {
      it('marks listed seqs or everything up to a seq, for that user only', async () => {
        const [a = 0, b = 0] = await users('a', 'b');
        for (let i = 0; i < 4; i += 1) await store.publish(input(request({ users: ['a', 'b'] })));
        expect(await store.markRead(a, { seqs: [2, 4, 99] }, 1_000)).toEqual({ unread: 2, changed: true });
        expect(await store.markRead(a, { seqs: [2] }, 1_000)).toEqual({ unread: 2, changed: false });
        expect(await store.markRead(a, { seqs: [] }, 1_000)).toEqual({ unread: 2, changed: false });
        expect((await store.inbox(a, { limit: 10 }, 1_000)).items.map((item) => [item.seq, item.read])).toEqual([
          [4, true],
          [3, false],
          [2, true],
          [1, false],
        ]);
        expect(await store.markRead(a, { upTo: 3 }, 1_000)).toEqual({ unread: 0, changed: true });
        expect(await store.markRead(a, { upTo: 4 }, 1_000)).toEqual({ unread: 0, changed: false });
        expect((await store.inbox(b, { limit: 10 }, 1_000)).unread).toBe(4);
      });

      it('ignores expired rows', async () => {
        const [a = 0] = await users('a');
        await store.publish(input(request({ users: ['a'] }, { ttl: 1 }), { now: 1_000 }));
        await store.publish(input(request({ users: ['a'] }), { now: 1_000 }));
        expect(await store.markRead(a, { seqs: [1] }, 2_000)).toEqual({ unread: 1, changed: false });
        expect(await store.markRead(a, { upTo: 2 }, 2_000)).toEqual({ unread: 0, changed: true });
      });
    });
  });
}
