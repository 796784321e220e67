/** What main answers to each of the history window's tasks. `registerIpc` puts the sender check in front. */
import type { EventQueue, IpcHandlers } from './ipc.js';
import type { Session } from './session.js';
import type { SettingsStore } from './settings.js';
import { isExternalLink } from './windows.js';

export interface HandlerDeps {
  session: Session;
  settings: SettingsStore;
  events: Pick<EventQueue, 'ready' | 'send'>;
  /** `shell.openExternal`. */
  openExternal: (url: string) => Promise<void>;
  /** `app.setLoginItemSettings`. */
  setLaunchAtLogin: (open: boolean) => void;
}

export function createIpcHandlers({ session, settings, events, openExternal, setLaunchAtLogin }: HandlerDeps): IpcHandlers {
  return {
    'inbox:list': (query) => session.listInbox(query),
    'inbox:markRead': (target) => session.markRead(target),
    'inbox:markAllRead': () => session.markAllRead(),
    'inbox:open': async (seq) => {
      const url = session.item(seq)?.url;
      if (url && isExternalLink(url)) await openExternal(url);
      return undefined;
    },
    'account:signIn': (request) => session.signIn(request),
    'account:signOut': async () => {
      await session.signOut();
      return undefined;
    },
    'settings:get': () => settings.view(),
    'settings:set': (patch) => {
      const before = settings.get().launchAtLogin;
      settings.update(patch);
      if (settings.get().launchAtLogin !== before) setLaunchAtLogin(settings.get().launchAtLogin);
      session.refresh();
      return settings.view();
    },
    'window:ready': () => {
      events.ready();
      events.send('event:state', session.state());
      return undefined;
    },
  };
}
