/**
 * The tray icon: its picture says the connection state (or do-not-disturb), its title or badge the unread
 * count, and its menu holds the app's few commands. `trayView` and `doNotDisturbUntil` are plain functions;
 * `createTray` is the Electron glue, with Electron's classes passed in.
 */
import type { Menu, MenuItemConstructorOptions, NativeImage, Tray } from 'electron';
import type { ConnectionState } from '@herald/protocol';

export type TrayIcon = 'connected' | 'reconnecting' | 'offline' | 'dnd';

export interface TrayInput {
  connection: ConnectionState;
  unread: number;
  /** Do not disturb until this time (epoch ms), or null. */
  doNotDisturbUntil: number | null;
  now: number;
}

export interface TrayView {
  icon: TrayIcon;
  tooltip: string;
  /** Text beside the icon on macOS: the unread count, or empty. */
  title: string;
  doNotDisturb: boolean;
}

const stateText: Record<ConnectionState, string> = {
  connecting: 'connecting…',
  connected: 'connected',
  reconnecting: 'reconnecting…',
  offline: 'offline',
  'signed-out': 'signed out',
};

export function trayView({ connection, unread, doNotDisturbUntil, now }: TrayInput): TrayView {
  const doNotDisturb = doNotDisturbUntil !== null && doNotDisturbUntil > now;
  const icon: TrayIcon = doNotDisturb ? 'dnd' : connection === 'connected' ? 'connected' : connection === 'offline' || connection === 'signed-out' ? 'offline' : 'reconnecting';
  const parts = [`Herald: ${stateText[connection]}`];
  if (unread > 0) parts.push(`${unread} unread`);
  if (doNotDisturb) parts.push(`do not disturb until ${new Date(doNotDisturbUntil).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`);
  return { icon, tooltip: parts.join(' · '), title: unread > 0 ? String(Math.min(unread, 999)) + (unread > 999 ? '+' : '') : '', doNotDisturb };
}

/** Hour of the morning "until tomorrow" ends at, local time. */
export const tomorrowMorningHour = 8;

/** When a do-not-disturb choice ends: in one hour, or tomorrow at 08:00 local time. */
export function doNotDisturbUntil(choice: '1h' | 'tomorrow', now: Date): number {
  if (choice === '1h') return now.getTime() + 60 * 60 * 1000;
  const end = new Date(now);
  end.setDate(end.getDate() + 1);
  end.setHours(tomorrowMorningHour, 0, 0, 0);
  return end.getTime();
}

export interface TrayActions {
  openHistory(): void;
  doNotDisturb(choice: '1h' | 'tomorrow' | 'off'): void;
  openSettings(): void;
  signOut(): void;
  quit(): void;
}

export function trayMenu(view: TrayView, actions: TrayActions): MenuItemConstructorOptions[] {
  return [
    { label: 'Open history', click: () => actions.openHistory() },
    {
      label: 'Do not disturb',
      submenu: [
        { label: 'For 1 hour', click: () => actions.doNotDisturb('1h') },
        { label: 'Until tomorrow', click: () => actions.doNotDisturb('tomorrow') },
        { label: 'Off', enabled: view.doNotDisturb, click: () => actions.doNotDisturb('off') },
      ],
    },
    { label: 'Settings…', click: () => actions.openSettings() },
    { type: 'separator' },
    { label: 'Sign out', click: () => actions.signOut() },
    { label: 'Quit Herald', role: 'quit', click: () => actions.quit() },
  ];
}

/**
 * A red dot on transparency, `size`×`size` BGRA pixels (the layout of `nativeImage.createFromBitmap`): the
 * unread mark Windows shows over the taskbar button, where there is no badge count.
 */
export function unreadDot(size = 16): Buffer {
  const pixels = Buffer.alloc(size * size * 4);
  const centre = (size - 1) / 2;
  const radius = size / 2 - 0.5;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // Coverage of the pixel by the disc, smoothed over one pixel at the edge.
      const alpha = Math.max(0, Math.min(1, radius + 0.5 - Math.hypot(x - centre, y - centre)));
      pixels.set([0x30, 0x30, 0xdc, Math.round(alpha * 255)], (y * size + x) * 4);
    }
  }
  return pixels;
}

export interface TrayKit {
  Tray: new (image: NativeImage) => Tray;
  Menu: Pick<typeof Menu, 'buildFromTemplate'>;
  /** The picture for an icon name (template images on macOS). */
  image: (icon: TrayIcon) => NativeImage;
  /** Sets the count on the dock or launcher badge where the platform has one; returns false where it has none. */
  setBadgeCount: (count: number) => boolean;
  /** Windows: marks the taskbar button while anything is unread (see `unreadDot`). */
  setOverlay?: (unread: number) => void;
  platform: NodeJS.Platform;
}

export function createTray(kit: TrayKit, actions: TrayActions, initial: TrayView) {
  const tray = new kit.Tray(kit.image(initial.icon));
  tray.on('click', () => actions.openHistory());
  function update(view: TrayView): void {
    tray.setImage(kit.image(view.icon));
    tray.setToolTip(view.tooltip);
    if (kit.platform === 'darwin') tray.setTitle(view.title);
    const unread = view.title === '' ? 0 : Number.parseInt(view.title, 10);
    kit.setBadgeCount(unread);
    kit.setOverlay?.(unread);
    tray.setContextMenu(kit.Menu.buildFromTemplate(trayMenu(view, actions)));
  }
  update(initial);
  return { update, destroy: () => tray.destroy() };
}
