/**
 * The one factory every window goes through, so no window can be made without the hardening below.
 * Electron's classes come in through `WindowKit`, which keeps this file testable under plain Node.
 */
import type { BrowserWindow, BrowserWindowConstructorOptions, Session, WebContents } from 'electron';

/** Web preferences every window gets, whatever the caller asks for. */
export const hardenedWebPreferences = {
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  nodeIntegrationInWorker: false,
  nodeIntegrationInSubFrames: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  experimentalFeatures: false,
  webviewTag: false,
  navigateOnDragDrop: false,
  spellcheck: false,
} as const satisfies BrowserWindowConstructorOptions['webPreferences'];

/** The only permission a window may be granted: showing notifications. */
export const allowedPermissions: readonly string[] = ['notifications'];

export interface WindowKit {
  BrowserWindow: new (options: BrowserWindowConstructorOptions) => BrowserWindow;
  /** Opens http(s) links in the default browser (`shell.openExternal`). */
  openExternal: (url: string) => Promise<void>;
}

export interface WindowOptions {
  /** Absolute path of the preload script (the CommonJS build). */
  preload: string;
  /** `file:` URL of the page; the only URL the window may show. */
  page: string;
  width?: number;
  height?: number;
  title?: string;
  /** Created hidden; the caller shows it once the page is ready. Default true. */
  hidden?: boolean;
}

/** True for the links the app hands to the default browser: http and https, nothing else. */
export function isExternalLink(url: string): boolean {
  try {
    const { protocol } = new URL(url);
    return protocol === 'https:' || protocol === 'http:';
  } catch {
    return false;
  }
}

/** Options for `new BrowserWindow`: the caller's size and title, and always the hardened preferences. */
export function windowOptions(options: WindowOptions): BrowserWindowConstructorOptions {
  return {
    width: options.width ?? 960,
    height: options.height ?? 720,
    minWidth: 420,
    minHeight: 360,
    title: options.title ?? 'Herald',
    show: !(options.hidden ?? true),
    autoHideMenuBar: true,
    webPreferences: { ...hardenedWebPreferences, preload: options.preload },
  };
}

/**
 * Applies the navigation rules to a window's contents: it stays on its page, `window.open` is refused, and
 * http(s) links go to the default browser instead. Anything else (file:, javascript:, custom schemes) goes nowhere.
 */
export function lockNavigation(contents: WebContents, page: string, openExternal: (url: string) => Promise<void>): void {
  const handOff = (url: string) => {
    if (isExternalLink(url)) void openExternal(url);
  };
  contents.on('will-navigate', (event, url) => {
    if (url === page) return;
    event.preventDefault();
    handOff(url);
  });
  contents.on('will-redirect', (event) => {
    event.preventDefault();
  });
  contents.on('will-attach-webview', (event) => {
    event.preventDefault();
  });
  contents.setWindowOpenHandler(({ url }) => {
    handOff(url);
    return { action: 'deny' };
  });
}

/** Grants `notifications` and refuses every other permission, both when asked and when checked. */
export function restrictPermissions(session: Session): void {
  session.setPermissionRequestHandler((_contents, permission, callback) => {
    callback(allowedPermissions.includes(permission));
  });
  session.setPermissionCheckHandler((_contents, permission) => allowedPermissions.includes(permission));
}

/** Makes a hardened window showing `options.page`. */
export function createWindow(kit: WindowKit, options: WindowOptions): BrowserWindow {
  const window = new kit.BrowserWindow(windowOptions(options));
  restrictPermissions(window.webContents.session);
  lockNavigation(window.webContents, options.page, kit.openExternal);
  void window.loadURL(options.page);
  return window;
}
