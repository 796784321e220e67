/**
 * The history window's bridge: `window.herald`, a set of tasks. The page never sees `ipcRenderer`, a channel
 * name of its choosing, or an Electron event object; main checks the sender and parses every argument again.
 */
import { contextBridge, ipcRenderer } from 'electron';
import type { HeraldBridge, IpcArgument, IpcEventChannel, IpcEvents, IpcInvokeChannel, IpcResults, Unsubscribe } from '@herald/protocol';

function invoke<C extends IpcInvokeChannel>(channel: C, argument?: IpcArgument<C>): Promise<IpcResults[C]> {
  return ipcRenderer.invoke(channel, argument) as Promise<IpcResults[C]>;
}

function subscribe<C extends IpcEventChannel>(channel: C, callback: (payload: IpcEvents[C]) => void): Unsubscribe {
  const listener = (_event: unknown, payload: IpcEvents[C]) => {
    callback(payload);
  };
  ipcRenderer.on(channel, listener);
  return () => ipcRenderer.removeListener(channel, listener);
}

const herald: HeraldBridge = {
  kind: 'desktop',
  listInbox: (query) => invoke('inbox:list', query),
  markRead: (target) => invoke('inbox:markRead', target),
  markAllRead: () => invoke('inbox:markAllRead'),
  openItem: (seq) => invoke('inbox:open', seq),
  signIn: (request) => invoke('account:signIn', request),
  signOut: () => invoke('account:signOut'),
  getSettings: () => invoke('settings:get'),
  setSettings: (patch) => invoke('settings:set', patch),
  onNotification: (callback) => subscribe('event:notification', callback),
  onRead: (callback) => subscribe('event:read', callback),
  onDeleted: (callback) => subscribe('event:deleted', callback),
  onState: (callback) => subscribe('event:state', callback),
  onFocusItem: (callback) => subscribe('event:focusItem', callback),
  onOpenSettings: (callback) => subscribe('event:openSettings', () => callback()),
  ready: () => invoke('window:ready'),
};

contextBridge.exposeInMainWorld('herald', herald);
