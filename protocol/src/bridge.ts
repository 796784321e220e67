/**
 * The history window's API: `window.herald` in the desktop app (preload → IPC → main), and the web bridge
 * (HTTP + WebSocket) in the web inbox. The renderer talks to this interface only, so both share every
 * component. The IPC channels below carry it between preload and main; main parses every argument with
 * these schemas before acting on it.
 */
import { z } from 'zod';
import { Limits } from './limits.js';
import type { Notification } from './notification.js';
import { topicName } from './notification.js';

/** One page of the inbox, with the filters of `GET /v1/inbox`. */
export const inboxQuery = z
  .object({
    /** Items with a seq below this one (paging back). */
    before: z.int().min(1).optional(),
    limit: z.int().min(1).max(Limits.pageMax).optional(),
    unread: z.boolean().optional(),
    topic: topicName.optional(),
    /** Lowest priority to list, 1–5. */
    minPriority: z.int().min(1).max(5).optional(),
    /** Server-side text search in title and body. */
    q: z.string().min(1).max(256).optional(),
  })
  .strict();
export type InboxQuery = z.infer<typeof inboxQuery>;

export interface InboxPage {
  items: Notification[];
  head: number;
  unread: number;
}

export const readTarget = z.union([z.object({ seqs: z.array(z.int().min(1)).min(1).max(Limits.readSeqsMax) }).strict(), z.object({ upTo: z.int().min(0) }).strict()]);
export type ReadTarget = z.infer<typeof readTarget>;

/**
 * The connection as the user sees it.
 * - `connecting`: the first attempt, or signing in.
 * - `connected`: live.
 * - `reconnecting`: lost, retrying with backoff.
 * - `offline`: the OS reports no network; retrying when it comes back.
 * - `signed-out`: the server refused the token (close 4500+); only signing in again helps.
 */
export const connectionStates = ['connecting', 'connected', 'reconnecting', 'offline', 'signed-out'] as const;
export type ConnectionState = (typeof connectionStates)[number];

export interface BridgeState {
  connection: ConnectionState;
  /** The signed-in user, once known. */
  user?: string;
  unread: number;
  /** Do not disturb until this time (epoch ms), when on. Desktop only. */
  doNotDisturbUntil?: number;
}

const soundName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/, 'a sound name: 1–64 letters, digits, " ", ".", "_" or "-"')
  .nullable();

/** Settings the history window may read and change (desktop only; the web inbox has none). */
export const settingsPatch = z
  .object({
    minPriority: z.int().min(1).max(5),
    quietHours: z.union([z.null(), z.object({ start: z.string().regex(/^\d\d:\d\d$/), end: z.string().regex(/^\d\d:\d\d$/) }).strict()]),
    /** Sound name per priority 1–5 (`default` for the system's), or null for silent. */
    sounds: z
      .object(Object.fromEntries([1, 2, 3, 4, 5].map((p) => [p, soundName])) as Record<'1' | '2' | '3' | '4' | '5', typeof soundName>)
      .strict(),
    launchAtLogin: z.boolean(),
    startHidden: z.boolean(),
  })
  .partial()
  .strict();
export type SettingsPatch = z.infer<typeof settingsPatch>;
export type SettingsView = Required<SettingsPatch>;

/** Stops a subscription. (A function, not an AbortSignal: an AbortSignal cannot cross Electron's context bridge.) */
export type Unsubscribe = () => void;

/**
 * Signing in: a user name and password (`POST /v1/login`), or a device token pasted from an admin. The
 * desktop app asks for the server's address; the web inbox signs in to the server that served it.
 */
export const signInRequest = z.union([
  z.object({ server: z.string().min(1).max(2048).optional(), name: z.string().min(1).max(256), password: z.string().min(1).max(1024) }).strict(),
  z.object({ server: z.string().min(1).max(2048).optional(), token: z.string().min(1).max(1024) }).strict(),
]);
export type SignInRequest = z.infer<typeof signInRequest>;
/** `code` is stable (`invalid_url`, `unreachable`, `not_herald`, `unauthorized`, `rate_limited`, …); `message` is for people. */
export type SignInResult = { ok: true; user: string; server: string } | { ok: false; code: string; message: string };

/** What `window.herald` exposes: tasks, never channels. */
export interface HeraldBridge {
  /** `desktop` in the Electron window, `web` in the browser. */
  readonly kind: 'desktop' | 'web';
  listInbox(query: InboxQuery): Promise<InboxPage>;
  markRead(target: ReadTarget): Promise<{ unread: number }>;
  markAllRead(): Promise<{ unread: number }>;
  /** Live notifications, as they arrive (replays included, each seq once). */
  onNotification(callback: (item: Notification) => void): Unsubscribe;
  /** Read state changed on any device of this user. */
  onRead(callback: (change: { seqs?: number[]; upTo?: number; unread: number }) => void): Unsubscribe;
  /** Items removed (retracted or deleted). */
  onDeleted(callback: (seqs: number[]) => void): Unsubscribe;
  onState(callback: (state: BridgeState) => void): Unsubscribe;
  /** Main asks the window to show one item (its toast was clicked). Desktop only; the web bridge never calls it. */
  onFocusItem(callback: (seq: number) => void): Unsubscribe;
  /** Main asks the window to show its settings (the tray's Settings…). Desktop only. */
  onOpenSettings(callback: () => void): Unsubscribe;
  /** The page has subscribed to the events above: events held back until now may flow. */
  ready(): Promise<void>;
  /** Opens an item: its http(s) URL in the default browser, or nothing more than the selection here. */
  openItem(seq: number): Promise<void>;
  signIn(request: SignInRequest): Promise<SignInResult>;
  /** Forgets this device's token (the keychain entry on desktop) and shows the sign-in form. */
  signOut(): Promise<void>;
  getSettings(): Promise<SettingsView | null>;
  setSettings(patch: SettingsPatch): Promise<SettingsView | null>;
}

/** Invoke channels between preload and main, and the schema main parses each argument with. */
export const ipcInvoke = {
  'inbox:list': inboxQuery,
  'inbox:markRead': readTarget,
  'inbox:markAllRead': z.undefined(),
  'inbox:open': z.int().min(1),
  'account:signIn': signInRequest,
  'account:signOut': z.undefined(),
  'settings:get': z.undefined(),
  'settings:set': settingsPatch,
  'window:ready': z.undefined(),
} as const;
export type IpcInvokeChannel = keyof typeof ipcInvoke;
export type IpcArgument<C extends IpcInvokeChannel> = z.infer<(typeof ipcInvoke)[C]>;

/** What each invoke channel resolves to. */
export interface IpcResults {
  'inbox:list': InboxPage;
  'inbox:markRead': { unread: number };
  'inbox:markAllRead': { unread: number };
  'inbox:open': undefined;
  'account:signIn': SignInResult;
  'account:signOut': undefined;
  'settings:get': SettingsView | null;
  'settings:set': SettingsView | null;
  'window:ready': undefined;
}

/** Events main sends to the window, queued until it has said `window:ready`. */
export interface IpcEvents {
  'event:notification': Notification;
  'event:read': { seqs?: number[]; upTo?: number; unread: number };
  'event:deleted': number[];
  'event:state': BridgeState;
  /** Main asks the window to show one item (a toast was clicked). */
  'event:focusItem': number;
  'event:openSettings': null;
}
export type IpcEventChannel = keyof IpcEvents;
