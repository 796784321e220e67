/**
 * Native toasts: the policy's decisions turned into Electron `Notification`s. A click opens the item's
 * http(s) link in the default browser, or the history window at the item; a `replace` closes the toast
 * it replaces. Electron's class comes in through `ToastKit`.
 */
import type { NotificationConstructorOptions, Notification as NativeToast } from 'electron';
import { assertNever, type Notification } from '@herald/protocol';
import type { ShownDecision, ToastPolicy, ToastSettings, ToastSource, ToastTarget } from './toast-policy.js';

export interface ToastKit {
  Notification: new (options: NotificationConstructorOptions) => NativeToast;
  openExternal: (url: string) => Promise<void>;
  /** Shows the history window, at the item when there is one. */
  openHistory: (seq?: number) => void;
  /** The app's icon for toasts (a path); item icons are remote URLs, which native toasts cannot show. */
  icon?: string;
}

/** Toasts kept so a later `replace` can close them; the policy remembers as many keys. */
const maxKeyedToasts = 256;

export function createToaster(kit: ToastKit, policy: ToastPolicy, settings: () => ToastSettings, now: () => number = Date.now) {
  const keyed = new Map<string, NativeToast>();
  let flushTimer: NodeJS.Timeout | undefined;

  function click(target: ToastTarget): void {
    if (target.kind === 'history') kit.openHistory();
    else if (target.url !== null) void kit.openExternal(target.url);
    else kit.openHistory(target.seq);
  }

  function show(decision: ShownDecision): void {
    const { toast } = decision;
    if (decision.kind === 'replace') {
      keyed.get(decision.replaces)?.close();
      keyed.delete(decision.replaces);
    }
    const native = new kit.Notification({
      title: toast.title,
      body: toast.body,
      urgency: toast.urgency,
      silent: toast.silent,
      ...(toast.sound === undefined ? {} : { sound: toast.sound }),
      ...(kit.icon === undefined ? {} : { icon: kit.icon }),
      timeoutType: toast.urgency === 'critical' ? 'never' : 'default',
    });
    native.on('click', () => click(toast.target));
    native.show();
    if (toast.key === null) return;
    keyed.delete(toast.key);
    keyed.set(toast.key, native);
    if (keyed.size > maxKeyedToasts) keyed.delete(keyed.keys().next().value ?? '');
  }

  function scheduleFlush(at: number): void {
    if (flushTimer !== undefined) return;
    flushTimer = setTimeout(
      () => {
        flushTimer = undefined;
        const summary = policy.flush(settings());
        if (summary) show(summary);
      },
      Math.max(0, at - now()),
    );
  }

  return {
    /** One notification from the connection, replayed or live. */
    handle(item: Notification, source: ToastSource): void {
      const decision = policy.decide(item, { now: now(), settings: settings(), source });
      switch (decision.kind) {
        case 'show':
        case 'replace':
        case 'summary':
          show(decision);
          return;
        case 'collapse':
          if (decision.into === 'burst') scheduleFlush(decision.flushAt);
          return;
        case 'suppress':
          return;
        default:
          assertNever(decision);
      }
    },
    /** The replay after a (re)connect is over: one "N while you were away" toast at most. */
    endReplay(): void {
      const summary = policy.endReplay(settings());
      if (summary) show(summary);
    },
    close(): void {
      clearTimeout(flushTimer);
      flushTimer = undefined;
    },
  };
}
