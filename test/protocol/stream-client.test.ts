import { describe, expect, it } from 'vitest';
import { StreamClient, type ServerFrame, type StreamClientOptions } from '@herald/protocol';
import { note, synced, welcome } from '../frames.js';

/** One input to the client: a socket event, a server frame, or a listing of the inbox. */
type Step = 'open' | { close: number } | { listed: number } | { raw: string } | ServerFrame;

const heartbeat = (head: number): ServerFrame => ({ type: 'heartbeat', head });

/** Feeds the steps to a client and returns what it did, one short string per action. */
function run(steps: Step[], options: Partial<StreamClientOptions> = {}): { actions: string[]; client: StreamClient } {
  const actions: string[] = [];
  const client = new StreamClient(
    { cursor: undefined, initialReplay: true, heartbeatMs: 1_000, deadLinkGraceMs: 500, ...options },
    {
      send: (frame) => actions.push(`send ${JSON.stringify(frame)}`),
      armDeadTimer: (ms) => actions.push(`arm ${ms}`),
      notification: (item, { replayed, initial }) => actions.push(`deliver ${item.seq} ${item.id}${replayed ? ' replayed' : ''}${initial ? ' initial' : ''}`),
      cursor: (seq) => actions.push(`cursor ${seq}`),
      welcome: ({ head }) => actions.push(`welcome ${head}`),
      synced: ({ head }) => actions.push(`synced ${head}`),
      read: (change) => actions.push(`read ${JSON.stringify(change)}`),
      deleted: (seqs) => actions.push(`deleted ${seqs.join(',')}`),
      error: ({ code }) => actions.push(`error ${code}`),
      unreadable: (error) => actions.push(`unreadable ${(error as Error).message}`),
    },
  );
  for (const step of steps) {
    if (step === 'open') client.opened();
    else if ('raw' in step) client.message(step.raw);
    else if ('close' in step) actions.push(`retry ${client.closed(step.close)}`);
    else if ('listed' in step) client.listed(step.listed);
    else client.message(JSON.stringify(step));
  }
  return { actions, client };
}

/** The actions without the dead-link timer and the bookkeeping events, for tables about order and dedupe. */
const essential = (actions: string[]) => actions.filter((action) => /^(send|deliver|retry)/.test(action));

describe('stream client', () => {
  it.each<[string, Step[], Partial<StreamClientOptions>, string[]]>([
    ['first connect replays the whole inbox as initial history', ['open', welcome(2), note(1), note(2), synced(2, 2), note(3)], {}, [
      'send {"type":"hello","v":1,"since":0}',
      'deliver 1 n1 replayed initial',
      'deliver 2 n2 replayed initial',
      'deliver 3 n3',
    ]],
    ['first connect without initial replay starts at the head', ['open', welcome(7), synced(7), note(8)], { initialReplay: false }, [
      'send {"type":"hello","v":1}',
      'deliver 8 n8',
    ]],
    ['a browser puts its token in hello', ['open'], { token: 'secret', cursor: 4 }, ['send {"type":"hello","v":1,"token":"secret","since":4}']],
    ['resumes from its cursor and skips seqs it holds', ['open', welcome(5), note(3), note(4), note(5), synced(5, 2)], { cursor: 3 }, [
      'send {"type":"hello","v":1,"since":3}',
      'deliver 4 n4 replayed',
      'deliver 5 n5 replayed',
    ]],
    ['a hello that reaches the server after its live-only start: holds live frames until the replay answers it', [
      'open', welcome(3), synced(3, 0, false, true), note(4), note(2), note(3), note(4), synced(4, 3), note(5),
    ], { cursor: 1 }, [
      'send {"type":"hello","v":1,"since":1}',
      'deliver 2 n2 replayed',
      'deliver 3 n3 replayed',
      'deliver 4 n4 replayed',
      'deliver 5 n5',
    ]],
    ['skips an id it already delivered under another seq', ['open', welcome(3), note(1, 'a'), note(2, 'b'), note(3, 'a'), synced(3, 3), note(4, 'b'), note(5, 'c')], {}, [
      'send {"type":"hello","v":1,"since":0}',
      'deliver 1 a replayed initial',
      'deliver 2 b replayed initial',
      'deliver 5 c',
    ]],
    ['a seq jump on a live socket asks for sync and holds frames until synced, then releases them in seq order', [
      'open', welcome(1), note(1), synced(1, 1), note(3), note(4), note(2), note(3), note(4), synced(4, 3), note(5),
    ], {}, [
      'send {"type":"hello","v":1,"since":0}',
      'deliver 1 n1 replayed initial',
      'send {"type":"sync","since":1}',
      'deliver 2 n2 replayed',
      'deliver 3 n3 replayed',
      'deliver 4 n4 replayed',
      'deliver 5 n5',
    ]],
    ['a heartbeat ahead of the cursor asks for sync; one at the cursor does not', ['open', welcome(0), synced(0), heartbeat(0), heartbeat(1), note(1), synced(1, 1)], {}, [
      'send {"type":"hello","v":1,"since":0}',
      'send {"type":"sync","since":0}',
      'deliver 1 n1 replayed',
    ]],
    ['no sync while the hello replay runs: its seqs may skip deleted items', ['open', welcome(5), note(2), heartbeat(5), note(5), synced(5, 2)], {}, [
      'send {"type":"hello","v":1,"since":0}',
      'deliver 2 n2 replayed initial',
      'deliver 5 n5 replayed initial',
    ]],
    ['a cursor from another history starts over from 0, as initial history', ['open', welcome(2), note(1), note(2), synced(2, 2, true), note(3)], { cursor: 10 }, [
      'send {"type":"hello","v":1,"since":10}',
      'deliver 1 n1 replayed initial',
      'deliver 2 n2 replayed initial',
      'deliver 3 n3',
    ]],
    ['a close drops held frames, and the next hello resumes from the cursor', ['open', welcome(1), note(1), synced(1, 1), note(3), { close: 1006 }, note(4), 'open'], {}, [
      'send {"type":"hello","v":1,"since":0}',
      'deliver 1 n1 replayed initial',
      'send {"type":"sync","since":1}',
      'retry true',
      'send {"type":"hello","v":1,"since":1}',
    ]],
    ['4000–4499 and 1006 reconnect; 4500 and above do not', [{ close: 1006 }, { close: 4000 }, { close: 4499 }, { close: 4500 }, { close: 4501 }, { close: 4999 }], {}, [
      'retry true',
      'retry true',
      'retry true',
      'retry false',
      'retry false',
      'retry false',
    ]],
  ])('%s', (_name, steps, options, expected) => {
    expect(essential(run(steps, options).actions)).toEqual(expected);
  });

  it('re-arms the dead-link timer on open and on every frame, for the heartbeat the server states', () => {
    const { actions } = run(['open', welcome(0, 200), synced(0), heartbeat(0), { raw: 'not json' }, { close: 1000 }, heartbeat(0)]);
    expect(actions.filter((action) => /^(arm|welcome|synced|unreadable|retry)/.test(action))).toEqual([
      'arm 1500',
      'arm 1500',
      'arm 700',
      'welcome 0',
      'arm 700',
      'synced 0',
      'arm 700',
      'arm 700',
      'unreadable not valid JSON',
      'retry true',
    ]);
  });

  it('moves the cursor after each hand-over, past skipped ids, and to the head at synced', () => {
    const { actions, client } = run(['open', welcome(6), note(1, 'a'), note(2, 'a'), note(4, 'b'), synced(6, 3)]);
    expect(actions.filter((action) => /^(deliver|cursor)/.test(action))).toEqual(['deliver 1 a replayed initial', 'cursor 1', 'cursor 2', 'deliver 4 b replayed initial', 'cursor 4', 'cursor 6']);
    expect(client.lastSeq).toBe(6);
  });

  it('passes read, deleted and error frames on, and reports frames it cannot read', () => {
    const { actions } = run([
      'open',
      { type: 'read', seqs: [1], unread: 2 },
      { type: 'read', upTo: 4, unread: 0 },
      { type: 'deleted', seqs: [2, 3] },
      { type: 'error', code: 'unauthorized', message: 'no' },
      { type: 'pong', t: 1 },
      { raw: '{"type":"from-the-future"}' },
    ]);
    expect(actions.filter((action) => !action.startsWith('arm') && !action.startsWith('send'))).toEqual([
      'read {"unread":2,"seqs":[1]}',
      'read {"unread":0,"upTo":4}',
      'deleted 2,3',
      'error unauthorized',
      expect.stringMatching(/^unreadable .*type/),
    ]);
  });

  it('ignores frames while no socket is open', () => {
    const { actions } = run([note(1), welcome(1), { close: 1000 }]);
    expect(actions).toEqual(['retry true']);
  });

  it('stops handing over held frames once a handler closes it, and does not move the cursor past them', () => {
    const actions: string[] = [];
    const client: StreamClient = new StreamClient(
      { cursor: 1, initialReplay: true, heartbeatMs: 1_000, deadLinkGraceMs: 0 },
      {
        send: () => undefined,
        armDeadTimer: () => undefined,
        notification: (item) => {
          actions.push(`deliver ${item.seq}`);
          if (item.seq === 2) client.closed(1000);
        },
        cursor: (seq) => actions.push(`cursor ${seq}`),
        welcome: () => undefined,
        synced: () => actions.push('synced'),
        read: () => undefined,
        deleted: () => undefined,
        error: () => undefined,
        unreadable: () => undefined,
      },
    );
    client.opened();
    for (const frame of [welcome(1), synced(1), note(3), note(2), note(3), synced(3, 2)]) client.message(JSON.stringify(frame));
    expect(actions).toEqual(['synced', 'deliver 2', 'cursor 2']);
    expect(client.lastSeq).toBe(2);
  });

  it('counts backoff attempts until a session is healthy (synced), or until told to reset', () => {
    const { client } = run([]);
    expect([client.nextAttempt(), client.nextAttempt(), client.nextAttempt()]).toEqual([0, 1, 2]);
    client.resetAttempts();
    expect(client.nextAttempt()).toBe(0);
    client.opened();
    client.message(JSON.stringify(welcome(0)));
    expect(client.nextAttempt()).toBe(1);
    client.message(JSON.stringify(synced(0)));
    expect(client.nextAttempt()).toBe(0);
  });

  describe('a listing of the inbox over HTTP (the web inbox: no initial replay)', () => {
    it.each<[string, Step[], number | undefined, string[]]>([
      ['without a cursor, the stream resumes from the listed head', [{ listed: 4 }, 'open'], undefined, ['send {"type":"hello","v":1,"since":4}']],
      ['a listing at or above where the stream started changes nothing', ['open', welcome(4), synced(4), { listed: 4 }, { listed: 9 }], 4, ['send {"type":"hello","v":1,"since":4}']],
      ['a listing older than the stream replays what came in between; delivered ids are skipped', [
        'open', welcome(5), synced(5), note(6), { listed: 3 }, note(4), note(5), note(6), synced(6, 3),
      ], 4, [
        'send {"type":"hello","v":1,"since":4}',
        'deliver 6 n6',
        'send {"type":"sync","since":3}',
        'deliver 4 n4 replayed',
        'deliver 5 n5 replayed',
      ]],
      ['a listing of the same head during a hello without since changes nothing', ['open', { listed: 5 }, welcome(5), synced(5), note(6)], undefined, [
        'send {"type":"hello","v":1}',
        'deliver 6 n6',
      ]],
      ['an older listing during a resync waits for its synced', [
        'open', welcome(5), synced(5), heartbeat(6), { listed: 3 }, note(6), synced(6, 1), note(4), note(5), note(6), synced(6, 3),
      ], 4, [
        'send {"type":"hello","v":1,"since":4}',
        'send {"type":"sync","since":5}',
        'deliver 6 n6 replayed',
        'send {"type":"sync","since":3}',
        'deliver 4 n4 replayed',
        'deliver 5 n5 replayed',
      ]],
      ['an older listing during a hello without since waits for its synced', [
        'open', { listed: 2 }, welcome(5), note(6), synced(5), note(3), note(4), note(5), note(6), synced(6, 4),
      ], undefined, [
        'send {"type":"hello","v":1}',
        'deliver 6 n6 replayed',
        'send {"type":"sync","since":2}',
        'deliver 3 n3 replayed',
        'deliver 4 n4 replayed',
        'deliver 5 n5 replayed',
      ]],
    ])('%s', (_name, steps, cursor, expected) => {
      expect(essential(run(steps, { initialReplay: false, cursor }).actions)).toEqual(expected);
    });
  });
});
