/**
 * Live messages that cross in the broker (two nodes committing seqs n and n+1 and publishing them in the other
 * order) reach the device in seq order; one the broker dropped leaves a gap after a short wait.
 */
import { afterEach, expect, it } from 'vitest';
import { userMessages, type BrokerFactory, type UserMessage } from '../../server/src/broker/broker.js';
import { createMemoryBroker } from '../../server/src/broker/memory.js';
import { TestClient, deviceFor, publish, startServer, type TestServer } from '../helpers.js';

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
});

/** The in-process broker, except that a message with a seq in `late` waits for the next publish, and one in `lost` is dropped. */
function crossingBroker(late: Set<number>, lost: Set<number>): BrokerFactory {
  return (handlers) => {
    const inner = createMemoryBroker(handlers);
    let waiting: UserMessage[] = [];
    return {
      ...inner,
      publish(messages) {
        const now = messages.filter((m) => !late.has(m.seq) && !lost.has(m.seq));
        inner.publish([...now, ...waiting]);
        waiting = messages.filter((m) => late.has(m.seq));
      },
      publishNotification(message) {
        this.publish(userMessages(message));
      },
    };
  };
}

const seqs = (client: TestClient) => client.frames.flatMap((f) => (f.type === 'notification' ? [f.seq] : []));

it('sends live notifications in seq order when the broker delivers them crossed, and passes a gap on after the wait', async () => {
  t = await startServer({}, { broker: crossingBroker(new Set([2, 4]), new Set([6])) });
  const { token } = await deviceFor(t, 'alice');
  const device = await TestClient.open(t.wsUrl, token);
  device.send({ type: 'hello', v: 1, since: 0 });
  await device.next('synced');

  // The broker hands over 1, 3, 2, 5, 4, 7: seq 6 never comes.
  for (let i = 1; i <= 7; i++) expect((await publish(t, { to: { users: ['alice'] }, title: `n${i}` })).status).toBe(202);
  await device.until((frames) => frames.some((f) => f.type === 'notification' && f.seq === 7));
  expect(seqs(device)).toEqual([1, 2, 3, 4, 5, 7]);
  // The device notices the gap and reads 6 from the store.
  device.send({ type: 'sync', since: 5 });
  await device.next('synced');
  expect(seqs(device)).toEqual([1, 2, 3, 4, 5, 7, 6, 7]);
  await device.close();
});
