import { afterEach, describe, expect, it } from 'vitest';
import { notificationId } from '../../server/src/ids.js';
import { deviceFor, publish, startServer, type TestServer } from '../helpers.js';

const uuidv7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit millisecond timestamp at the front of a UUIDv7. */
function timestampOf(id: string): number {
  return parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}

// Fixed times in the past, rising from test to test: the generator keeps its last time between calls.
describe('notificationId', () => {
  it('is a UUIDv7 carrying the time it was made', () => {
    const now = 1_700_000_000_000;
    const id = notificationId(now);
    expect(id).toMatch(uuidv7);
    expect(timestampOf(id)).toBe(now);
  });

  it('sorts in the order ids were made, within one millisecond and past its 4,096 counter values', () => {
    const now = 1_700_000_100_000;
    const ids = Array.from({ length: 10_000 }, () => notificationId(now));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    expect(timestampOf(ids[0] ?? '')).toBe(now);
    expect(timestampOf(ids.at(-1) ?? '')).toBe(now + 2);
  });

  it('keeps its order when the clock steps back', () => {
    const now = 1_700_000_200_000;
    const before = notificationId(now);
    const after = notificationId(now - 60_000);
    expect(after > before).toBe(true);
    expect(after).toMatch(uuidv7);
  });
});

describe('published ids', () => {
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('are UUIDv7s in publish order', async () => {
    t = await startServer();
    await deviceFor(t, 'alice');
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const { status, body } = await publish(t, { to: { users: ['alice'] }, title: `n${i}` });
      expect(status).toBe(202);
      ids.push(body.id);
    }
    for (const id of ids) expect(id).toMatch(uuidv7);
    expect([...ids].sort()).toEqual(ids);
  });
});
