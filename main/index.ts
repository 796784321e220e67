/**
 * Herald's main process, in startup order. Each `setup…` below owns one concern; the Electron calls are
 * here and in the small factories they use, and everything else is plain TypeScript tested under Node.
 */
import { app, BrowserWindow, ipcMain, Menu, nativeImage, net, Notification, powerMonitor, shell, Tray } from 'electron';
import ElectronStore from 'electron-store';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EventEmitter } from 'node:events';
import { createIpcHandlers } from './handlers.js';
import { EventQueue, registerIpc } from './ipc.js';
import { createSession, type Session } from './session.js';
import { openSettings, type SettingsStore } from './settings.js';
import { ToastPolicy } from './toast-policy.js';
import { createToaster } from './toasts.js';
import { createTray, doNotDisturbUntil, trayView, unreadDot, type TrayIcon } from './tray.js';
import { openCursorStore } from './cursor.js';
import { createVault } from './vault.js';
import { createWindow } from './windows.js';

const appRoot = join(import.meta.dirname, '..', '..');
const page = pathToFileURL(join(appRoot, 'dist/renderer/index.html')).href;
const preload = join(appRoot, 'dist/preload/index.cjs');
/** How often the network state is checked for "the network came back", ms. Electron has no event for it. */
const onlineCheckMs = 5_000;

function setupSingleInstance(): boolean {
  if (app.requestSingleInstanceLock()) return true;
  app.quit();
  return false;
}

function setupSettings(): SettingsStore {
  const settings = openSettings({ Store: ElectronStore, cwd: app.getPath('userData') });
  for (const warning of settings.warnings) console.warn(`herald: ${warning.message}${warning.backupPath ? ` (the old file is kept as ${warning.backupPath})` : ''}`);
  return settings;
}

/** The history window: one at a time, made by the hardened factory, hidden rather than closed. */
function setupHistoryWindow(events: EventQueue) {
  let window: BrowserWindow | undefined;
  const open = (seq?: number) => {
    if (window === undefined || window.isDestroyed()) {
      const made = createWindow({ BrowserWindow, openExternal: (url) => shell.openExternal(url) }, { preload, page, title: 'Herald' });
      made.once('ready-to-show', () => made.show());
      made.webContents.on('did-start-loading', () => events.reset());
      made.on('closed', () => {
        window = undefined;
        events.reset();
      });
      window = made;
    } else {
      window.show();
      window.focus();
    }
    if (seq !== undefined) events.send('event:focusItem', seq);
  };
  const current = () => (window === undefined || window.isDestroyed() ? undefined : window);
  return { open, window: current, contents: () => current()?.webContents };
}

function setupToasts(settings: SettingsStore, openHistory: (seq?: number) => void) {
  const policy = new ToastPolicy();
  return createToaster(
    { Notification, openExternal: (url) => shell.openExternal(url), openHistory, icon: join(appRoot, 'assets/icon.png') },
    policy,
    () => settings.get(),
  );
}

function setupTray(settings: SettingsStore, session: Session, history: ReturnType<typeof setupHistoryWindow>, events: EventQueue, quit: () => void) {
  const openHistory = () => history.open();
  const dot = nativeImage.createFromBitmap(unreadDot(16), { width: 16, height: 16 });
  const setOverlay = (unread: number) => history.window()?.setOverlayIcon(unread > 0 ? dot : null, unread > 0 ? `${unread} unread` : '');
  const image = (icon: TrayIcon) => nativeImage.createFromPath(join(appRoot, 'assets/tray', process.platform === 'darwin' ? `${icon}Template.png` : `${icon}.png`));
  const view = () => trayView({ connection: session.state().connection, unread: session.state().unread, doNotDisturbUntil: settings.get().doNotDisturbUntil, now: Date.now() });
  const tray = createTray(
    { Tray, Menu, image, setBadgeCount: (count) => app.setBadgeCount(count), ...(process.platform === 'win32' ? { setOverlay } : {}), platform: process.platform },
    {
      openHistory,
      doNotDisturb: (choice) => {
        settings.setDoNotDisturbUntil(choice === 'off' ? null : doNotDisturbUntil(choice, new Date()));
        session.refresh();
      },
      openSettings: () => {
        history.open();
        events.send('event:openSettings', null);
      },
      signOut: () => void session.signOut(),
      quit,
    },
    view(),
  );
  return { update: () => tray.update(view()) };
}

function setupIpc(session: Session, settings: SettingsStore, history: ReturnType<typeof setupHistoryWindow>, events: EventQueue): void {
  const handlers = createIpcHandlers({
    session,
    settings,
    events,
    openExternal: (url) => shell.openExternal(url),
    setLaunchAtLogin: (openAtLogin) => app.setLoginItemSettings({ openAtLogin }),
  });
  registerIpc(ipcMain, handlers, { page, contents: history.contents });
}

/** Reconnect at once on OS resume and when the network comes back. */
function setupPowerEvents(session: Session): void {
  powerMonitor.on('resume', () => session.resume());
  powerMonitor.on('unlock-screen', () => session.resume());
  let online = net.isOnline();
  setInterval(() => {
    const now = net.isOnline();
    if (now === online) return;
    online = now;
    if (now) session.online();
    else session.offline();
  }, onlineCheckMs).unref();
}

/** `npm start` hands over a demo account's token in the environment once; it goes to the keychain at once. */
async function importStartAccount(session: Session): Promise<void> {
  const server = process.env.HERALD_SERVER_URL;
  const token = process.env.HERALD_DEVICE_TOKEN;
  delete process.env.HERALD_DEVICE_TOKEN;
  if (server === undefined || token === undefined) return;
  const result = await session.signIn({ server, token });
  if (!result.ok) console.warn(`herald: could not sign in to ${server}: ${result.message}`);
}

async function main(): Promise<void> {
  // A profile of its own (portable installs, end-to-end tests): settings, cursors and the single-instance lock.
  if (process.env.HERALD_USER_DATA !== undefined) app.setPath('userData', process.env.HERALD_USER_DATA);
  if (!setupSingleInstance()) return;
  await app.whenReady();
  const settings = setupSettings();
  const vault = createVault();
  const cursors = openCursorStore(join(app.getPath('userData'), 'cursors'));
  const events = new EventQueue(() => history.contents());
  const history = setupHistoryWindow(events);
  const toasts = setupToasts(settings, history.open);
  const stateChanges = new EventEmitter();
  const session = createSession({
    settings,
    vault,
    cursors,
    deviceLabel: `Herald on ${hostname()}`,
    onNotification: (item, delivery) => {
      events.send('event:notification', item);
      if (!delivery.initial) toasts.handle(item, delivery.replayed ? 'replay' : 'live');
    },
    onSynced: () => toasts.endReplay(),
    onRead: (change) => events.send('event:read', change),
    onDeleted: (seqs) => events.send('event:deleted', seqs),
    onState: (state) => {
      events.send('event:state', state);
      stateChanges.emit('change');
    },
  });
  const quit = () => {
    toasts.close();
    void session.close().finally(() => app.quit());
  };
  const tray = setupTray(settings, session, history, events, quit);
  stateChanges.on('change', () => tray.update());
  setupIpc(session, settings, history, events);
  setupPowerEvents(session);
  app.on('second-instance', () => history.open());
  // A tray app keeps running with every window closed.
  app.on('window-all-closed', () => undefined);
  app.setLoginItemSettings({ openAtLogin: settings.get().launchAtLogin });

  await importStartAccount(session);
  if (session.state().connection === 'signed-out') await session.start();
  if (session.state().connection === 'signed-out' || !settings.get().startHidden) history.open();
}

void main();
