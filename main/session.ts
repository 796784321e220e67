/**
 * The signed-in account and everything that hangs off it: the token from the vault, the live connection,
 * toasts, the unread count, and the answers to the history window's tasks. Plain Node: Electron reaches it
 * only through the callbacks in `SessionDeps`, so tests drive it against a real server.
 */
import type { BridgeState, ConnectionState, InboxPage, InboxQuery, Notification, ReadTarget, SignInRequest, SignInResult } from '@herald/protocol';
import { ApiError, apiErrorText, createApi, normalizeServerUrl, type Api } from './api.js';
import { createConnection, type Connection, type ConnectionOptions } from './connection.js';
import type { CursorStore } from './cursor.js';
import type { SettingsStore } from './settings.js';
import type { Vault } from './vault.js';

export interface SessionDeps {
  settings: SettingsStore;
  vault: Vault;
  cursors: CursorStore;
  /** A notification arrived: `replayed` for the replay after a (re)connect, `initial` for a first-ever sync. */
  onNotification: (item: Notification, delivery: { replayed: boolean; initial: boolean }) => void;
  /** A replay is over. */
  onSynced: () => void;
  onRead: (change: { seqs?: number[]; upTo?: number; unread: number }) => void;
  onDeleted: (seqs: number[]) => void;
  onState: (state: BridgeState) => void;
  /** Label of the device tokens this app creates at sign-in, e.g. `Herald on alice-laptop`. */
  deviceLabel: string;
  /** Extra connection options (tests shorten the backoff). */
  connection?: Partial<ConnectionOptions>;
  fetch?: typeof fetch;
}

/** Items the session remembers by seq, to open a toast's or the window's item without asking the server. */
const rememberedItems = 500;

export function createSession(deps: SessionDeps) {
  let connection: Connection | undefined;
  let api: Api | undefined;
  let account: { server: string; user: string } | undefined;
  let state: ConnectionState = 'signed-out';
  let unread = 0;
  const items = new Map<number, Notification>();

  function remember(item: Notification): void {
    items.delete(item.seq);
    items.set(item.seq, item);
    if (items.size > rememberedItems) items.delete(items.keys().next().value ?? 0);
  }

  function bridgeState(): BridgeState {
    const until = deps.settings.get().doNotDisturbUntil;
    return { connection: state, unread, ...(account ? { user: account.user } : {}), ...(until === null ? {} : { doNotDisturbUntil: until }) };
  }
  const publish = () => deps.onState(bridgeState());

  async function connect(server: string, user: string, token: string): Promise<void> {
    await disconnect();
    account = { server, user };
    api = createApi({ server, token: () => token, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
    const live = createConnection({ server, token, cursor: deps.cursors.cursorFor(account), ...deps.connection });
    connection = live;
    live.on('state', (next) => {
      state = next;
      publish();
    });
    live.on('welcome', () => {
      // The unread count comes from the server; later frames keep it current.
      void api
        ?.listInbox({ limit: 1 })
        .then((page) => {
          unread = page.unread;
          publish();
        })
        .catch(() => undefined);
    });
    live.on('notification', (item, delivery) => {
      remember(item);
      if (!item.read && !delivery.initial) unread += 1;
      deps.onNotification(item, delivery);
      if (!delivery.initial) publish();
    });
    live.on('synced', () => deps.onSynced());
    live.on('read', (change) => {
      unread = change.unread;
      deps.onRead(change);
      publish();
    });
    live.on('deleted', (seqs) => {
      for (const seq of seqs) items.delete(seq);
      deps.onDeleted(seqs);
    });
    live.start();
  }

  async function disconnect(): Promise<void> {
    const closing = connection;
    connection = undefined;
    await closing?.close();
  }

  function signedIn(): Api {
    if (api === undefined) throw new ApiError('unauthorized', 'Not signed in.');
    return api;
  }

  return {
    /** Connects the active account, if it has a token in the vault; otherwise the window asks to sign in. */
    async start(): Promise<void> {
      const active = deps.settings.activeAccount();
      const token = active ? await deps.vault.read({ server: active.serverUrl, user: active.user }) : null;
      if (active === undefined || token === null) {
        state = 'signed-out';
        publish();
        return;
      }
      await connect(active.serverUrl, active.user, token);
    },

    async signIn(request: SignInRequest): Promise<SignInResult> {
      try {
        const server = normalizeServerUrl(request.server ?? '');
        const probe = createApi({ server, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
        await probe.check();
        let token: string;
        let user: string;
        if ('token' in request) {
          token = request.token.trim();
          user = (await createApi({ server, token: () => token, ...(deps.fetch ? { fetch: deps.fetch } : {}) }).me()).user.name;
        } else {
          const login = await probe.login(request.name, request.password, deps.deviceLabel);
          token = login.token;
          user = login.user.name;
        }
        await deps.vault.save({ server, user }, token);
        const existing = deps.settings.get().accounts.find((a) => a.serverUrl === server && a.user === user);
        const saved = existing ?? deps.settings.addAccount({ serverUrl: server, user });
        deps.settings.setActiveAccount(saved.id);
        await connect(server, user, token);
        return { ok: true, user, server };
      } catch (error) {
        if (error instanceof ApiError) return { ok: false, code: error.code, message: error.message };
        const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : 'failed';
        return { ok: false, code, message: error instanceof Error ? error.message : apiErrorText.server_error };
      }
    },

    /** Forgets the token (keychain and memory) and the account's cursor; the window shows the sign-in form. */
    async signOut(): Promise<void> {
      await disconnect();
      const active = deps.settings.activeAccount();
      if (active) {
        await deps.vault.remove({ server: active.serverUrl, user: active.user });
        deps.cursors.remove({ server: active.serverUrl, user: active.user });
        deps.settings.removeAccount(active.id);
      }
      account = undefined;
      api = undefined;
      unread = 0;
      items.clear();
      state = 'signed-out';
      publish();
    },

    async listInbox(query: InboxQuery): Promise<InboxPage> {
      const page = await signedIn().listInbox(query);
      for (const item of page.items) remember(item);
      if (query.before === undefined && query.q === undefined && query.topic === undefined && query.minPriority === undefined && query.unread !== true) {
        unread = page.unread;
        publish();
      }
      return page;
    },

    async markRead(target: ReadTarget): Promise<{ unread: number }> {
      const result = await signedIn().markRead(target);
      unread = result.unread;
      publish();
      return result;
    },

    async markAllRead(): Promise<{ unread: number }> {
      const head = connection?.lastSeq ?? (await signedIn().listInbox({ limit: 1 })).head;
      return this.markRead({ upTo: head });
    },

    /** The item this session knows by seq, if any (for opening its link). */
    item: (seq: number): Notification | undefined => items.get(seq),
    state: bridgeState,
    /** Re-announces the state after a change made elsewhere (do not disturb). */
    refresh: publish,
    resume: () => connection?.resume(),
    online: () => connection?.online(),
    offline: () => connection?.offline(),
    close: disconnect,
  };
}
export type Session = ReturnType<typeof createSession>;
