import { EventEmitter } from 'node:events';
import type { NotificationConstructorOptions, Notification as NativeToast } from 'electron';
import { describe, expect, it } from 'vitest';
import type { Notification } from '@herald/protocol';
import { ToastPolicy, type ToastSettings } from '../../main/toast-policy.js';
import { createToaster } from '../../main/toasts.js';

const settings: ToastSettings = { minPriority: 1, quietHours: null, doNotDisturbUntil: null, sounds: { 1: null, 2: null, 3: 'default', 4: 'default', 5: 'default' } };

function item(seq: number, extra: Partial<Notification> = {}): Notification {
  return { seq, id: `id-${seq}`, title: `n${seq}`, body: '', priority: 3, tags: [], url: null, icon: null, actions: [], createdAt: new Date(0).toISOString(), read: false, ...extra };
}

/** Electron's Notification, recording what the toaster does with it. */
function harness() {
  const shown: (NotificationConstructorOptions & { closed: boolean; click: () => void })[] = [];
  let onShow: (() => void) | undefined;
  class FakeToast extends EventEmitter {
    record: NotificationConstructorOptions & { closed: boolean; click: () => void };
    constructor(options: NotificationConstructorOptions) {
      super();
      this.record = { ...options, closed: false, click: () => this.emit('click') };
    }
    show() {
      shown.push(this.record);
      onShow?.();
    }
    close() {
      this.record.closed = true;
    }
  }
  const opened: string[] = [];
  const history: (number | undefined)[] = [];
  let clock = 1_000_000;
  const toaster = createToaster(
    { Notification: FakeToast as unknown as new (o: NotificationConstructorOptions) => NativeToast, openExternal: (url) => Promise.resolve(void opened.push(url)), openHistory: (seq) => history.push(seq) },
    new ToastPolicy(),
    () => settings,
    () => clock,
  );
  const nextShow = () => new Promise<void>((resolve) => (onShow = resolve));
  return { toaster, shown, opened, history, nextShow, advance: (ms: number) => (clock += ms) };
}

describe('the toaster', () => {
  it('shows a live item once, and a click opens its http(s) link or the history window at it', () => {
    const { toaster, shown, opened, history, advance } = harness();
    toaster.handle(item(1, { url: 'https://ci.example/4812', priority: 5 }), 'live');
    toaster.handle(item(1, { url: 'https://ci.example/4812', priority: 5 }), 'live');
    advance(2_000);
    toaster.handle(item(2, { url: 'javascript:alert(1)' }), 'live');
    expect(shown.map((t) => [t.title, t.urgency])).toEqual([
      ['n1', 'critical'],
      ['n2', 'normal'],
    ]);
    shown[0]?.click();
    shown[1]?.click();
    expect(opened).toEqual(['https://ci.example/4812']);
    expect(history).toEqual([2]);
  });

  it('replaces the toast of an earlier item with the same key', () => {
    const { toaster, shown, advance } = harness();
    toaster.handle(item(1, { key: 'build-7', title: 'build 7 running' }), 'live');
    advance(2_000);
    toaster.handle(item(2, { key: 'build-7', title: 'build 7 passed' }), 'live');
    expect(shown.map((t) => [t.title, t.closed])).toEqual([
      ['build 7 running', true],
      ['build 7 passed', false],
    ]);
  });

  it('collapses a replay into one "while you were away" toast', () => {
    const { toaster, shown } = harness();
    for (let seq = 1; seq <= 40; seq++) toaster.handle(item(seq), 'replay');
    expect(shown).toEqual([]);
    toaster.endReplay();
    expect(shown).toHaveLength(1);
    expect(`${shown[0]?.title ?? ''} ${shown[0]?.body ?? ''}`).toMatch(/40/);
    shown[0]?.click();
  });

  it('collapses a burst and shows its summary when the flush time comes', async () => {
    const { toaster, shown, nextShow, advance } = harness();
    for (let seq = 1; seq <= 12; seq++) toaster.handle(item(seq), 'live');
    const burstShown = shown.length;
    expect(burstShown).toBeLessThan(12);
    const summary = nextShow();
    advance(5_000);
    // The flush timer fires on the next turn now that its time has passed; wait for the toast it shows.
    toaster.handle(item(13, { read: true }), 'live');
    await summary;
    expect(shown).toHaveLength(burstShown + 1);
    expect(`${shown.at(-1)?.title ?? ''} ${shown.at(-1)?.body ?? ''}`).toMatch(new RegExp(String(12 - burstShown)));
    toaster.close();
  });
});
