import { describe, expect, it } from 'vitest';
import type { Notification } from '@herald/protocol';
import {
  inQuietHours,
  parseClock,
  systemSound,
  ToastPolicy,
  toastPolicyDefaults,
  urgencyFor,
  type Priority,
  type ToastDecision,
  type ToastSettings,
  type ToastSource,
} from '../../main/toast-policy.js';

const baseSettings: ToastSettings = {
  minPriority: 1,
  quietHours: null,
  doNotDisturbUntil: null,
  sounds: { 1: null, 2: null, 3: systemSound, 4: 'Glass', 5: 'Sosumi' },
};

/** 2025-03-10 at hh:mm in the process's local time zone, as the default `minuteOfDay` reads it. */
function at(hh: number, mm: number, ms = 0): number {
  return new Date(2025, 2, 10, hh, mm, 0, ms).getTime();
}
const noon = at(12, 0);

function times(count: number, value: string): string[] {
  return Array.from({ length: count }, () => value);
}

let nextSeq = 1;
function item(overrides: Partial<Notification> = {}): Notification {
  const seq = overrides.seq ?? nextSeq++;
  return {
    seq,
    id: `id-${seq}`,
    title: `title ${seq}`,
    body: `body ${seq}`,
    priority: 3,
    tags: [],
    url: null,
    icon: null,
    actions: [],
    createdAt: new Date(noon).toISOString(),
    read: false,
    ...overrides,
  };
}

function live(policy: ToastPolicy, notification: Notification, now = noon, settings: Partial<ToastSettings> = {}): ToastDecision {
  return policy.decide(notification, { source: 'live', now, settings: { ...baseSettings, ...settings } });
}

function replayed(policy: ToastPolicy, notification: Notification, now = noon, settings: Partial<ToastSettings> = {}): ToastDecision {
  return policy.decide(notification, { source: 'replay', now, settings: { ...baseSettings, ...settings } });
}

function kindOf(decision: ToastDecision | undefined): string {
  if (decision === undefined) return 'none';
  switch (decision.kind) {
    case 'show':
    case 'replace':
      return decision.kind;
    case 'summary':
      return `summary:${decision.cause}:${decision.count}`;
    case 'collapse':
      return `collapse:${decision.into}`;
    case 'suppress':
      return `suppress:${decision.reason}`;
  }
}

describe('toast: what a shown toast carries', () => {
  it.each<[Priority, 'low' | 'normal' | 'critical', boolean, string | undefined]>([
    [1, 'low', true, undefined],
    [2, 'low', true, undefined],
    [3, 'normal', false, undefined], // systemSound: the OS default, no named sound
    [4, 'normal', false, 'Glass'],
    [5, 'critical', false, 'Sosumi'],
  ])('priority %i → urgency %s, silent %s, sound %s', (priority, urgency, silent, sound) => {
    const decision = live(new ToastPolicy(), item({ priority }));
    expect(decision.kind).toBe('show');
    if (decision.kind !== 'show') return;
    expect(decision.toast).toMatchObject({ urgency, silent, sound });
    expect(urgencyFor(priority)).toBe(urgency);
  });

  it('carries title, body, icon, key and the click target of the item', () => {
    const notification = item({ title: 'Deploy done', body: 'main → prod', icon: 'https://x.test/i.png', url: 'https://x.test/run/7', key: 'deploy' });
    const decision = live(new ToastPolicy(), notification);
    expect(decision).toEqual({
      kind: 'show',
      toast: {
        title: 'Deploy done',
        body: 'main → prod',
        icon: 'https://x.test/i.png',
        urgency: 'normal',
        silent: false,
        sound: undefined,
        key: 'deploy',
        target: { kind: 'item', seq: notification.seq, id: notification.id, url: 'https://x.test/run/7' },
      },
    });
  });

  it.each([
    ['https://example.test/a?b=1', 'https://example.test/a?b=1'],
    ['HTTP://example.test/', 'HTTP://example.test/'],
    ['javascript:alert(1)', null],
    ['file:///etc/passwd', null],
    ['https://', null],
    [null, null],
  ])('click url %s → %s (http(s) only; otherwise the history window opens)', (url, expected) => {
    const decision = live(new ToastPolicy(), item({ url }));
    expect(decision.kind === 'show' && decision.toast.target).toEqual(expect.objectContaining({ kind: 'item', url: expected }));
  });
});

describe('toast: minimum priority', () => {
  it.each([
    [1, 1, 'show'],
    [3, 2, 'suppress:below-min-priority'],
    [3, 3, 'show'],
    [4, 3, 'suppress:below-min-priority'],
    [5, 4, 'suppress:below-min-priority'],
    [5, 5, 'show'],
  ])('min %i, priority %i → %s', (minPriority, priority, expected) => {
    expect(kindOf(live(new ToastPolicy(), item({ priority }), noon, { minPriority }))).toBe(expected);
  });
});

describe('toast: quiet hours and do not disturb', () => {
  const overnight = { start: '22:00', end: '07:00' };
  const office = { start: '09:00', end: '17:30' };
  it.each([
    ['overnight', overnight, at(23, 30), 3, 'suppress:quiet-hours'],
    ['overnight', overnight, at(22, 0), 3, 'suppress:quiet-hours'], // start is inclusive
    ['overnight', overnight, at(0, 0), 3, 'suppress:quiet-hours'],
    ['overnight', overnight, at(6, 59), 4, 'suppress:quiet-hours'],
    ['overnight', overnight, at(7, 0), 3, 'show'], // end is exclusive
    ['overnight', overnight, at(12, 0), 3, 'show'],
    ['overnight', overnight, at(21, 59), 3, 'show'],
    ['overnight', overnight, at(23, 30), 5, 'show'], // priority 5 breaks through
    ['same-day', office, at(9, 0), 3, 'suppress:quiet-hours'],
    ['same-day', office, at(17, 29), 2, 'suppress:quiet-hours'],
    ['same-day', office, at(17, 30), 3, 'show'],
    ['same-day', office, at(8, 59), 3, 'show'],
    ['same-day', office, at(12, 0), 5, 'show'],
    ['empty (start = end)', { start: '08:00', end: '08:00' }, at(8, 0), 3, 'show'],
    ['malformed', { start: '25:00', end: '07:00' }, at(1, 0), 3, 'show'],
    ['off', null, at(23, 30), 3, 'show'],
  ])('%s %o at %i, priority %i → %s', (_name, quietHours, now, priority, expected) => {
    expect(kindOf(live(new ToastPolicy(), item({ priority }), now, { quietHours }))).toBe(expected);
  });

  it.each([
    ['off', null, 3, 'show'],
    ['on', noon + 60_000, 3, 'suppress:do-not-disturb'],
    ['on', noon + 60_000, 4, 'suppress:do-not-disturb'],
    ['on', noon + 60_000, 5, 'show'],
    ['ended', noon, 3, 'show'], // until is exclusive
    ['ended long ago', noon - 3_600_000, 3, 'show'],
  ])('do not disturb %s (until %s), priority %i → %s', (_name, doNotDisturbUntil, priority, expected) => {
    expect(kindOf(live(new ToastPolicy(), item({ priority }), noon, { doNotDisturbUntil }))).toBe(expected);
  });

  it('reports do not disturb before quiet hours when both apply', () => {
    const decision = live(new ToastPolicy(), item(), at(23, 0), { doNotDisturbUntil: at(23, 30), quietHours: overnight });
    expect(kindOf(decision)).toBe('suppress:do-not-disturb');
  });

  it('moves the breakthrough priority with breakthroughPriority', () => {
    const policy = new ToastPolicy({ breakthroughPriority: 4 });
    expect(kindOf(live(policy, item({ priority: 4 }), at(23, 0), { quietHours: overnight }))).toBe('show');
    expect(kindOf(live(policy, item({ priority: 3 }), at(23, 0), { quietHours: overnight }))).toBe('suppress:quiet-hours');
  });

  it('reads the local minute through the injected minuteOfDay', () => {
    const utc = new ToastPolicy({ minuteOfDay: (now) => new Date(now).getUTCHours() * 60 + new Date(now).getUTCMinutes() });
    const lateUtc = Date.UTC(2025, 2, 10, 23, 0);
    expect(kindOf(live(utc, item(), lateUtc, { quietHours: overnight }))).toBe('suppress:quiet-hours');
    expect(kindOf(live(utc, item(), Date.UTC(2025, 2, 10, 12, 0), { quietHours: overnight }))).toBe('show');
  });

  it.each([
    ['00:00', 0],
    ['07:05', 425],
    ['23:59', 1439],
    ['24:00', undefined],
    ['12:60', undefined],
    ['7:00', undefined],
    ['07:00 ', undefined],
    ['', undefined],
  ])('parseClock(%j) → %s', (text, minutes) => {
    expect(parseClock(text)).toBe(minutes);
  });

  it.each([
    [{ start: '22:00', end: '07:00' }, 0, true],
    [{ start: '22:00', end: '07:00' }, 420, false],
    [{ start: '00:00', end: '23:59' }, 1439, false],
    [{ start: '23:59', end: '00:00' }, 1439, true],
    [null, 600, false],
  ])('inQuietHours(%o, %i) → %s', (quietHours, minute, expected) => {
    expect(inQuietHours(quietHours, minute)).toBe(expected);
  });
});

describe('toast: read and expired items', () => {
  it.each([
    [{ read: true }, 'suppress:read'],
    [{ expiresAt: new Date(noon - 1).toISOString() }, 'suppress:expired'],
    [{ expiresAt: new Date(noon).toISOString() }, 'suppress:expired'],
    [{ expiresAt: new Date(noon + 60_000).toISOString() }, 'show'],
    [{ read: true, priority: 5 }, 'suppress:read'],
  ])('%o → %s', (overrides, expected) => {
    expect(kindOf(live(new ToastPolicy(), item(overrides)))).toBe(expected);
  });
});

describe('toast: each id at most once', () => {
  it.each<[string, ToastSource, ToastSource]>([
    ['live then live', 'live', 'live'],
    ['live then replay', 'live', 'replay'],
    ['replay then live', 'replay', 'live'],
    ['replay then replay', 'replay', 'replay'],
  ])('%s: the second one is a duplicate', (_name, first, second) => {
    const policy = new ToastPolicy();
    const notification = item();
    expect(kindOf(policy.decide(notification, { source: first, now: noon, settings: baseSettings }))).not.toBe('suppress:duplicate');
    expect(kindOf(policy.decide(notification, { source: second, now: noon + 10_000, settings: baseSettings }))).toBe('suppress:duplicate');
  });

  it('counts a suppressed item as seen: it does not toast when quiet hours are over', () => {
    const policy = new ToastPolicy();
    const notification = item();
    expect(kindOf(live(policy, notification, at(23, 0), { quietHours: { start: '22:00', end: '07:00' } }))).toBe('suppress:quiet-hours');
    expect(kindOf(replayed(policy, notification, at(8, 0)))).toBe('suppress:duplicate');
    expect(policy.endReplay(baseSettings)).toBeUndefined();
  });

  it('stays bounded: forgotten ids leave a seq floor, so they are still never toasted twice', () => {
    const policy = new ToastPolicy({ maxRememberedIds: 3, burstLimit: 100 });
    const items = [1, 2, 3, 4, 5].map((seq) => item({ seq, id: `bounded-${seq}` }));
    expect(items.map((each) => kindOf(live(policy, each)))).toEqual(['show', 'show', 'show', 'show', 'show']);
    // 1 and 2 have been forgotten; the floor (2) still refuses them.
    expect(items.map((each) => kindOf(live(policy, each)))).toEqual(times(5, 'suppress:duplicate'));
    // An item older than the floor that was never seen arrives too late to toast.
    const late = item({ seq: 2, id: 'bounded-late' });
    expect(kindOf(live(policy, late))).toBe('suppress:duplicate');
    expect(kindOf(live(policy, item({ seq: 6, id: 'bounded-6' })))).toBe('show');
  });

  it('stays bounded in memory under a long stream', () => {
    const policy = new ToastPolicy({ maxRememberedIds: 10 });
    for (let seq = 1; seq <= 5000; seq++) live(policy, item({ seq, id: `long-${seq}` }), noon + seq * 1000);
    // Every one of them is refused again, recent (remembered) or old (below the floor).
    for (const seq of [1, 2500, 4990, 4991, 5000]) expect(kindOf(live(policy, item({ seq, id: `long-${seq}` }), noon + 6_000_000))).toBe('suppress:duplicate');
  });

  it('treats seqs up to seenUpTo as toasted (the cursor the app started with)', () => {
    const policy = new ToastPolicy({ seenUpTo: 100 });
    expect(kindOf(replayed(policy, item({ seq: 100 })))).toBe('suppress:duplicate');
    expect(kindOf(replayed(policy, item({ seq: 101 })))).toBe('collapse:replay');
  });

  it('reset() forgets everything, for another account whose seqs start again', () => {
    const policy = new ToastPolicy();
    const notification = item({ seq: 1, id: 'reset-1', key: 'k' });
    expect(kindOf(live(policy, notification))).toBe('show');
    policy.reset();
    expect(kindOf(live(policy, notification, noon + 5000))).toBe('show'); // not a duplicate, not a replace
    policy.reset(10);
    expect(kindOf(live(policy, item({ seq: 10, id: 'reset-10' }), noon + 10_000))).toBe('suppress:duplicate');
  });
});

describe('toast: bursts collapse into one summary', () => {
  /** Arrival offsets in ms from noon → the decision kinds, then what flush() returns. */
  it.each([
    ['5 at once: all shown', [0, 0, 0, 0, 0], ['show', 'show', 'show', 'show', 'show'], 'none'],
    ['6 at once: the 6th is held, then shown alone', [0, 1, 2, 3, 4, 5], [...times(5, 'show'), 'collapse:burst'], 'show'],
    ['8 within a second: 3 collapse into one summary', [0, 100, 200, 300, 400, 500, 600, 999], [...times(5, 'show'), ...times(3, 'collapse:burst')], 'summary:burst:3'],
    ['5 per second sustained: never collapsed', [0, 200, 400, 600, 800, 1000, 1200, 1400, 1600], times(9, 'show'), 'none'],
    ['6th a full window after the 1st: shown', [0, 1, 2, 3, 4, 1000], times(6, 'show'), 'none'],
    ['6th just inside the window: held', [0, 1, 2, 3, 4, 999], [...times(5, 'show'), 'collapse:burst'], 'show'],
  ])('%s', (_name, offsets, expected, flushed) => {
    const policy = new ToastPolicy();
    expect(offsets.map((offset) => kindOf(live(policy, item(), noon + offset)))).toEqual(expected);
    expect(kindOf(policy.flush(baseSettings))).toBe(flushed);
  });

  it('tells the caller when to flush, and keeps that time for the whole burst', () => {
    const policy = new ToastPolicy({ burstLimit: 2, burstWindowMs: 500 });
    live(policy, item(), noon);
    live(policy, item(), noon + 10);
    expect(policy.flushAt).toBeUndefined();
    expect(live(policy, item(), noon + 20)).toEqual({ kind: 'collapse', into: 'burst', pending: 1, flushAt: noon + 520 });
    expect(live(policy, item(), noon + 400)).toEqual({ kind: 'collapse', into: 'burst', pending: 2, flushAt: noon + 520 });
    expect(policy.flushAt).toBe(noon + 520);
    const summary = policy.flush(baseSettings);
    expect(summary).toMatchObject({ kind: 'summary', cause: 'burst', count: 2, text: '2 new notifications' });
    expect(policy.flushAt).toBeUndefined();
    expect(policy.flush(baseSettings)).toBeUndefined();
  });

  it('joins items to a pending summary even once the rate has dropped, so nothing overtakes it', () => {
    const policy = new ToastPolicy({ burstLimit: 1, burstWindowMs: 100 });
    expect(kindOf(live(policy, item(), noon))).toBe('show');
    expect(kindOf(live(policy, item(), noon + 1))).toBe('collapse:burst');
    // The caller's timer is late; the next item is slow but a summary is still pending.
    expect(kindOf(live(policy, item(), noon + 5000))).toBe('collapse:burst');
    expect(kindOf(policy.flush(baseSettings))).toBe('summary:burst:2');
    expect(kindOf(live(policy, item(), noon + 10_000))).toBe('show');
  });

  it('keeps collapsing a sustained flood: about one summary per window', () => {
    const policy = new ToastPolicy();
    const shown: string[] = [];
    let flushAt: number | undefined;
    for (let t = 0; t < 3000; t += 10) {
      const now = noon + t;
      if (flushAt !== undefined && now >= flushAt) {
        shown.push(kindOf(policy.flush(baseSettings)));
        flushAt = undefined;
      }
      const decision = live(policy, item(), now);
      if (decision.kind === 'collapse' && decision.into === 'burst') flushAt = decision.flushAt;
      else shown.push(kindOf(decision));
    }
    shown.push(kindOf(policy.flush(baseSettings)));
    expect(shown).toEqual([...times(5, 'show'), 'summary:burst:100', 'summary:burst:100', 'summary:burst:95']);
  });

  it('summarizes with the loudest priority it holds, and lists the first titles', () => {
    const policy = new ToastPolicy({ burstLimit: 1 });
    live(policy, item({ title: 'first' }));
    live(policy, item({ title: 'a', priority: 2 }));
    live(policy, item({ title: 'b', priority: 5 }));
    live(policy, item({ title: 'c', priority: 1 }));
    live(policy, item({ title: 'd', priority: 3 }));
    const summary = policy.flush(baseSettings);
    expect(summary).toEqual({
      kind: 'summary',
      cause: 'burst',
      count: 4,
      text: '4 new notifications',
      toast: { title: '4 new notifications', body: 'a\nb\nc\n…and 1 more', icon: null, urgency: 'critical', silent: false, sound: 'Sosumi', key: null, target: { kind: 'history' } },
    });
  });

  it('does not count filtered items toward a burst', () => {
    const policy = new ToastPolicy({ burstLimit: 2 });
    const kinds = [3, 1, 1, 1, 3].map((priority) => kindOf(live(policy, item({ priority }), noon, { minPriority: 2 })));
    expect(kinds).toEqual(['show', 'suppress:below-min-priority', 'suppress:below-min-priority', 'suppress:below-min-priority', 'show']);
  });
});

describe('toast: a replay shows one "while you were away" toast', () => {
  it.each([
    [0, 'none'],
    [1, 'show'],
    [2, 'summary:replay:2'],
    [250, 'summary:replay:250'],
  ])('%i replayed → %s', (count, expected) => {
    const policy = new ToastPolicy();
    const kinds = Array.from({ length: count }, () => kindOf(replayed(policy, item())));
    expect(kinds).toEqual(times(count, 'collapse:replay'));
    expect(kindOf(policy.endReplay(baseSettings))).toBe(expected);
    expect(policy.endReplay(baseSettings)).toBeUndefined();
  });

  it('reads "N while you were away" and opens the history window', () => {
    const policy = new ToastPolicy();
    for (const title of ['one', 'two', 'three']) replayed(policy, item({ title }));
    expect(policy.endReplay(baseSettings)).toEqual({
      kind: 'summary',
      cause: 'replay',
      count: 3,
      text: '3 while you were away',
      toast: { title: '3 while you were away', body: 'one\ntwo\nthree', icon: null, urgency: 'normal', silent: false, sound: undefined, key: null, target: { kind: 'history' } },
    });
  });

  it('counts only what would have toasted: not read, not below the minimum, not already shown', () => {
    const policy = new ToastPolicy();
    const shownLive = item();
    live(policy, shownLive);
    const decisions = [shownLive, item({ read: true }), item({ priority: 1 }), item({ priority: 4 }), item({ priority: 4 })].map((each) =>
      kindOf(replayed(policy, each, noon, { minPriority: 2 })),
    );
    expect(decisions).toEqual(['suppress:duplicate', 'suppress:read', 'suppress:below-min-priority', 'collapse:replay', 'collapse:replay']);
    expect(kindOf(policy.endReplay(baseSettings))).toBe('summary:replay:2');
  });

  it('does not use up the live burst budget', () => {
    const policy = new ToastPolicy();
    for (let i = 0; i < 50; i++) replayed(policy, item());
    expect(kindOf(policy.endReplay(baseSettings))).toBe('summary:replay:50');
    const kinds = Array.from({ length: 5 }, () => kindOf(live(policy, item())));
    expect(kinds).toEqual(times(5, 'show'));
  });

  it('shows a single replayed item as itself, replacing its key', () => {
    const policy = new ToastPolicy();
    live(policy, item({ key: 'build' }));
    replayed(policy, item({ key: 'build', title: 'build passed' }));
    const decision = policy.endReplay(baseSettings);
    expect(decision).toMatchObject({ kind: 'replace', replaces: 'build', toast: { title: 'build passed', key: 'build' } });
  });
});

describe('toast: key replacement', () => {
  it.each([
    ['same key replaces', ['build', 'build'], ['show', 'replace']],
    ['different keys add', ['build', 'deploy'], ['show', 'show']],
    ['no key never replaces', [undefined, undefined], ['show', 'show']],
    ['keyed after unkeyed', [undefined, 'build'], ['show', 'show']],
    ['a key replaces each time', ['build', 'build', 'build'], ['show', 'replace', 'replace']],
  ])('%s', (_name, keys, expected) => {
    const policy = new ToastPolicy();
    expect(keys.map((key, i) => kindOf(live(policy, item(key === undefined ? {} : { key }), noon + i * 2000)))).toEqual(expected);
  });

  it('names the key it replaces', () => {
    const policy = new ToastPolicy();
    live(policy, item({ key: 'deploy' }));
    const second = item({ key: 'deploy', title: 'deployed' });
    expect(live(policy, second, noon + 5000)).toMatchObject({ kind: 'replace', replaces: 'deploy', toast: { title: 'deployed', target: { seq: second.seq } } });
  });

  it('only replaces a key that was shown, not one that was suppressed', () => {
    const policy = new ToastPolicy();
    live(policy, item({ key: 'k', priority: 1 }), noon, { minPriority: 2 });
    expect(kindOf(live(policy, item({ key: 'k' }), noon + 1000, { minPriority: 2 }))).toBe('show');
  });

  it('remembers at most maxRememberedKeys keys, the most recently shown', () => {
    const policy = new ToastPolicy({ maxRememberedKeys: 2, burstLimit: 100 });
    for (const key of ['a', 'b', 'a', 'c']) live(policy, item({ key }));
    // 'b' was the least recently shown of three, so it was forgotten.
    expect(['c', 'a', 'b'].map((key) => kindOf(live(policy, item({ key }))))).toEqual(['replace', 'replace', 'show']);
  });
});

describe('toast: options', () => {
  it('documents its defaults in one frozen object', () => {
    expect(toastPolicyDefaults).toMatchObject({ burstLimit: 5, burstWindowMs: 1000, maxRememberedIds: 2048, maxRememberedKeys: 256, seenUpTo: 0, breakthroughPriority: 5, summaryTitles: 3 });
    expect(Object.isFrozen(toastPolicyDefaults)).toBe(true);
    expect(new ToastPolicy().options.burstLimit).toBe(5);
  });

  it.each([
    [{ burstLimit: 0 }, 'burstLimit must be an integer >= 1, got 0'],
    [{ burstLimit: 2.5 }, 'burstLimit must be an integer >= 1, got 2.5'],
    [{ burstWindowMs: 0 }, 'burstWindowMs must be an integer >= 1, got 0'],
    [{ maxRememberedIds: 0 }, 'maxRememberedIds must be an integer >= 1, got 0'],
    [{ maxRememberedKeys: -1 }, 'maxRememberedKeys must be an integer >= 1, got -1'],
    [{ seenUpTo: -1 }, 'seenUpTo must be an integer >= 0, got -1'],
    [{ breakthroughPriority: 6 }, 'breakthroughPriority must be 1..5, got 6'],
    [{ summaryTitles: Number.NaN }, 'summaryTitles must be an integer >= 0, got NaN'],
  ])('refuses %o', (options, message) => {
    expect(() => new ToastPolicy(options)).toThrow(new RangeError(`toast policy: ${message}`));
  });

  it('lists no titles with summaryTitles 0', () => {
    const policy = new ToastPolicy({ summaryTitles: 0 });
    replayed(policy, item());
    replayed(policy, item());
    expect(policy.endReplay(baseSettings)).toMatchObject({ toast: { body: '' } });
  });
});
