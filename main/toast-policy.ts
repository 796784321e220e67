/**
 * The toast policy: for each incoming notification, which native toast to show, if any.
 *
 * Pure: no Electron, no I/O and no timers. The caller passes the time, the settings and where the item came
 * from, and gets back a {@link ToastDecision}. The only timer is the caller's: a `collapse` decision into a
 * burst carries `flushAt`, and at that time the caller calls {@link ToastPolicy.flush} for the summary.
 *
 * Order of the rules, for each item:
 * 1. each id at most once (`duplicate`);
 * 2. already read on another device (`read`), or expired (`expired`);
 * 3. below the minimum priority (`below-min-priority`);
 * 4. do not disturb (`do-not-disturb`), then quiet hours (`quiet-hours`); {@link ToastPolicyOptions.breakthroughPriority} and above break through both;
 * 5. replayed items are held until {@link ToastPolicy.endReplay}, which shows one "N while you were away" toast;
 * 6. live items beyond {@link ToastPolicyOptions.burstLimit} per {@link ToastPolicyOptions.burstWindowMs} are collapsed into one "N new notifications" toast;
 * 7. an item whose `key` matches an earlier toast replaces that toast (`replace`) instead of adding one.
 *
 * Every item, whatever its fate, counts as seen: a notification suppressed during quiet hours is not toasted
 * when it comes again in a later replay.
 */
import { assertNever, type Notification } from '@herald/protocol';

export type Priority = 1 | 2 | 3 | 4 | 5;
export type Urgency = 'low' | 'normal' | 'critical';

/**
 * A daily quiet period in local wall-clock time, `HH:MM` (24 h). `start` is inclusive and `end` exclusive.
 * A `start` after `end` spans midnight (`22:00`–`07:00`); equal times mean an empty period.
 */
export interface QuietHours {
  start: string;
  end: string;
}

/**
 * Sound per priority: a sound name ({@link systemSound} for the OS default; other names are macOS sound
 * files, as Electron's `Notification.sound`), or `null` for a silent toast.
 */
export type SoundTable = Record<Priority, string | null>;

/** The name in a {@link SoundTable} that means "the OS default sound". */
export const systemSound = 'default';

/** The settings the policy reads. `Settings` from main/settings.ts is a superset of it. */
export interface ToastSettings {
  /** Lowest priority that is toasted, 1–5. */
  minPriority: number;
  quietHours: QuietHours | null;
  /** Do not disturb until this time, epoch ms; `null` when off. */
  doNotDisturbUntil: number | null;
  sounds: SoundTable;
}

/** What a click on a toast opens. */
export type ToastTarget =
  /** The item: its `url` (http(s) only, else `null`) in the default browser, or the history window at `seq`. */
  | { kind: 'item'; seq: number; id: string; url: string | null }
  /** The history window (summaries). */
  | { kind: 'history' };

/** A native toast, ready for Electron's `Notification` constructor. */
export interface Toast {
  title: string;
  body: string;
  icon: string | null;
  urgency: Urgency;
  silent: boolean;
  /** A named sound; `undefined` for the OS default (or none, when `silent`). */
  sound: string | undefined;
  /** The item's replacement key, so the caller can find this toast again for a later `replace`. */
  key: string | null;
  target: ToastTarget;
}

export type SuppressReason = 'duplicate' | 'read' | 'expired' | 'below-min-priority' | 'do-not-disturb' | 'quiet-hours';

/** A decision that puts a toast on screen. */
export type ShownDecision =
  | { kind: 'show'; toast: Toast }
  /** Show `toast` and close the earlier toast whose key is `replaces`. */
  | { kind: 'replace'; toast: Toast; replaces: string }
  /** One toast standing for `count` collapsed items. */
  | { kind: 'summary'; cause: 'burst' | 'replay'; count: number; text: string; toast: Toast };

export type ToastDecision =
  | ShownDecision
  /** Held for a burst summary; call {@link ToastPolicy.flush} at `flushAt` (epoch ms). `pending`: items held so far. */
  | { kind: 'collapse'; into: 'burst'; pending: number; flushAt: number }
  /** Held for the replay summary that {@link ToastPolicy.endReplay} returns. */
  | { kind: 'collapse'; into: 'replay'; pending: number }
  | { kind: 'suppress'; reason: SuppressReason };

/** Where an item came from: the replay after (re)connecting, or the live stream. */
export type ToastSource = 'live' | 'replay';

export interface ToastContext {
  /** The current time, epoch ms. */
  now: number;
  settings: ToastSettings;
}

export interface ToastPolicyOptions {
  /** Live toasts shown individually within {@link burstWindowMs}; more are collapsed into one summary. Count, default 5. */
  burstLimit: number;
  /** The sliding window of {@link burstLimit}, and how long a burst summary waits for more items, ms. Default 1000. */
  burstWindowMs: number;
  /**
   * Ids remembered for de-duplication. Count, default 2048 (≈ 150 KiB with UUID ids).
   * When one is forgotten, its seq becomes the floor: items at or below the floor count as seen, so an id is
   * toasted at most once however long the app runs; the price is that an item arriving more than this many
   * items late is not toasted (it still reaches the history window).
   */
  maxRememberedIds: number;
  /** Replacement keys remembered for `replace`. Count, default 256; a forgotten key's next item is shown as new. */
  maxRememberedKeys: number;
  /** Seqs at or below this count as already toasted: the last seq the device held when the app started. Seq, default 0. */
  seenUpTo: number;
  /** Priority at or above which quiet hours and do not disturb are ignored, 1–5. Default 5. */
  breakthroughPriority: number;
  /** Item titles listed in a summary's body. Count, default 3. */
  summaryTitles: number;
  /** Minute of the local day (0–1439) at a time, epoch ms → minutes. Default: the process's local time zone. */
  minuteOfDay: (now: number) => number;
}

/** Every default of the toast policy; see {@link ToastPolicyOptions} for units and reasons. */
export const toastPolicyDefaults: Readonly<ToastPolicyOptions> = Object.freeze({
  burstLimit: 5,
  burstWindowMs: 1000,
  maxRememberedIds: 2048,
  maxRememberedKeys: 256,
  seenUpTo: 0,
  breakthroughPriority: 5,
  summaryTitles: 3,
  minuteOfDay: (now: number) => {
    const date = new Date(now);
    return date.getHours() * 60 + date.getMinutes();
  },
});

/** Minutes after midnight of an `HH:MM` time (00:00–23:59), or `undefined` when it is not one. */
export function parseClock(value: string): number | undefined {
  const match = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * 60 + Number(match[2]);
}

/** True when `minuteOfDay` falls in the quiet hours. Malformed or equal times mean no quiet hours. */
export function inQuietHours(quietHours: QuietHours | null, minuteOfDay: number): boolean {
  if (quietHours === null) return false;
  const start = parseClock(quietHours.start);
  const end = parseClock(quietHours.end);
  if (start === undefined || end === undefined || start === end) return false;
  return start < end ? minuteOfDay >= start && minuteOfDay < end : minuteOfDay >= start || minuteOfDay < end;
}

/** Priority 1–2 → `low`, 3–4 → `normal`, 5 → `critical`. */
export function urgencyFor(priority: Priority): Urgency {
  return priority <= 2 ? 'low' : priority <= 4 ? 'normal' : 'critical';
}

function toPriority(value: number): Priority {
  return Math.min(5, Math.max(1, Math.trunc(value) || 1)) as Priority;
}

function soundFor(priority: Priority, sounds: SoundTable): Pick<Toast, 'silent' | 'sound'> {
  const name = sounds[priority];
  if (name === null) return { silent: true, sound: undefined };
  return { silent: false, sound: name === systemSound ? undefined : name };
}

function httpUrl(url: string | null): string | null {
  return url !== null && /^https?:\/\//i.test(url) && URL.canParse(url) ? url : null;
}

/** Items held for one summary. Bounded: a count, the first item and a few titles. */
interface Pending {
  count: number;
  first: Notification;
  titles: string[];
  top: Priority;
}

/**
 * The toast policy's state for one account's stream: ids seen, keys shown, recent live arrivals and the
 * pending summaries. Memory is bounded by {@link ToastPolicyOptions.maxRememberedIds},
 * {@link ToastPolicyOptions.maxRememberedKeys} and {@link ToastPolicyOptions.burstLimit}.
 * Seqs are per user: call {@link reset} when the account changes.
 */
export class ToastPolicy {
  readonly options: Readonly<ToastPolicyOptions>;
  /** id → seq, oldest first. */
  readonly #seen = new Map<string, number>();
  #floor: number;
  /** Keys of toasts shown, least recently shown first. */
  readonly #keys = new Set<string>();
  /** Times of the latest live arrivals that passed the filters, at most `burstLimit`. */
  #arrivals: number[] = [];
  #burst: (Pending & { flushAt: number }) | undefined;
  #replay: Pending | undefined;

  /** @throws RangeError for an option out of range. */
  constructor(options: Partial<ToastPolicyOptions> = {}) {
    const resolved = { ...toastPolicyDefaults, ...options };
    const atLeast = (name: keyof ToastPolicyOptions, value: number, min: number) => {
      if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`toast policy: ${name} must be an integer >= ${min}, got ${value}`);
    };
    atLeast('burstLimit', resolved.burstLimit, 1);
    atLeast('burstWindowMs', resolved.burstWindowMs, 1);
    atLeast('maxRememberedIds', resolved.maxRememberedIds, 1);
    atLeast('maxRememberedKeys', resolved.maxRememberedKeys, 1);
    atLeast('seenUpTo', resolved.seenUpTo, 0);
    atLeast('summaryTitles', resolved.summaryTitles, 0);
    atLeast('breakthroughPriority', resolved.breakthroughPriority, 1);
    if (resolved.breakthroughPriority > 5) throw new RangeError(`toast policy: breakthroughPriority must be 1..5, got ${resolved.breakthroughPriority}`);
    this.options = Object.freeze(resolved);
    this.#floor = resolved.seenUpTo;
  }

  /** Decides what to do with one notification. Each call records the item as seen. */
  decide(item: Notification, context: ToastContext & { source: ToastSource }): ToastDecision {
    if (!this.#remember(item)) return { kind: 'suppress', reason: 'duplicate' };
    const reason = this.#filter(item, context);
    if (reason !== undefined) return { kind: 'suppress', reason };
    switch (context.source) {
      case 'replay':
        if (this.#replay === undefined) this.#replay = this.#start(item);
        else this.#add(this.#replay, item);
        return { kind: 'collapse', into: 'replay', pending: this.#replay.count };
      case 'live':
        return this.#live(item, context);
      default:
        return assertNever(context.source);
    }
  }

  /**
   * Ends a replay: one "N while you were away" summary for the N replayed items that passed the filters,
   * a normal toast when N is 1, `undefined` when N is 0.
   */
  endReplay(settings: ToastSettings): ShownDecision | undefined {
    const pending = this.#replay;
    this.#replay = undefined;
    return pending && this.#summary('replay', pending, settings);
  }

  /**
   * The pending burst summary ("N new notifications"), or a normal toast when only one item was held;
   * `undefined` when nothing is pending. Call it at the `flushAt` of the last `collapse` decision.
   */
  flush(settings: ToastSettings): ShownDecision | undefined {
    const pending = this.#burst;
    this.#burst = undefined;
    return pending && this.#summary('burst', pending, settings);
  }

  /** When the pending burst summary is due, epoch ms; `undefined` when none is pending. */
  get flushAt(): number | undefined {
    return this.#burst?.flushAt;
  }

  /** Forgets everything (another account's seqs start again), keeping `seenUpTo` as the new floor. */
  reset(seenUpTo = 0): void {
    this.#seen.clear();
    this.#floor = seenUpTo;
    this.#keys.clear();
    this.#arrivals = [];
    this.#burst = undefined;
    this.#replay = undefined;
  }

  /** Records the item; false when it was seen before. */
  #remember(item: Notification): boolean {
    if (item.seq <= this.#floor || this.#seen.has(item.id)) return false;
    this.#seen.set(item.id, item.seq);
    if (this.#seen.size > this.options.maxRememberedIds) {
      const [oldestId, oldestSeq] = this.#seen.entries().next().value as [string, number];
      this.#seen.delete(oldestId);
      this.#floor = Math.max(this.#floor, oldestSeq);
    }
    return true;
  }

  #filter(item: Notification, { now, settings }: ToastContext): SuppressReason | undefined {
    if (item.read) return 'read';
    if (item.expiresAt !== undefined && Date.parse(item.expiresAt) <= now) return 'expired';
    if (item.priority < settings.minPriority) return 'below-min-priority';
    if (item.priority >= this.options.breakthroughPriority) return undefined;
    if (settings.doNotDisturbUntil !== null && now < settings.doNotDisturbUntil) return 'do-not-disturb';
    if (inQuietHours(settings.quietHours, this.options.minuteOfDay(now))) return 'quiet-hours';
    return undefined;
  }

  #live(item: Notification, { now, settings }: ToastContext): ToastDecision {
    const { burstLimit, burstWindowMs } = this.options;
    const recent = this.#arrivals.filter((time) => time > now - burstWindowMs);
    const inBurst = this.#burst !== undefined || recent.length >= burstLimit;
    recent.push(now);
    this.#arrivals = recent.slice(-burstLimit);
    if (!inBurst) return this.#toast(item, settings);
    if (this.#burst === undefined) this.#burst = { ...this.#start(item), flushAt: now + burstWindowMs };
    else this.#add(this.#burst, item);
    return { kind: 'collapse', into: 'burst', pending: this.#burst.count, flushAt: this.#burst.flushAt };
  }

  #start(item: Notification): Pending {
    return { count: 1, first: item, titles: this.options.summaryTitles > 0 ? [item.title] : [], top: toPriority(item.priority) };
  }

  #add(pending: Pending, item: Notification): void {
    if (pending.titles.length < this.options.summaryTitles) pending.titles.push(item.title);
    pending.count++;
    pending.top = Math.max(pending.top, toPriority(item.priority)) as Priority;
  }

  #summary(cause: 'burst' | 'replay', pending: Pending, settings: ToastSettings): ShownDecision {
    if (pending.count === 1) return this.#toast(pending.first, settings);
    const { count, titles, top } = pending;
    const text = cause === 'burst' ? `${count} new notifications` : `${count} while you were away`;
    const more = count - titles.length;
    const body = titles.length === 0 ? '' : titles.join('\n') + (more > 0 ? `\n…and ${more} more` : '');
    const toast: Toast = { title: text, body, icon: null, urgency: urgencyFor(top), ...soundFor(top, settings.sounds), key: null, target: { kind: 'history' } };
    return { kind: 'summary', cause, count, text, toast };
  }

  #toast(item: Notification, settings: ToastSettings): Extract<ShownDecision, { kind: 'show' | 'replace' }> {
    const priority = toPriority(item.priority);
    const toast: Toast = {
      title: item.title,
      body: item.body,
      icon: item.icon,
      urgency: urgencyFor(priority),
      ...soundFor(priority, settings.sounds),
      key: item.key ?? null,
      target: { kind: 'item', seq: item.seq, id: item.id, url: httpUrl(item.url) },
    };
    const key = item.key;
    if (key === undefined) return { kind: 'show', toast };
    const shown = this.#keys.delete(key);
    this.#keys.add(key);
    if (this.#keys.size > this.options.maxRememberedKeys) {
      const oldest = this.#keys.values().next().value as string;
      this.#keys.delete(oldest);
    }
    return shown ? { kind: 'replace', toast, replaces: key } : { kind: 'show', toast };
  }
}
