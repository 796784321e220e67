import { EventEmitter } from 'node:events';
import type { BrowserWindow, BrowserWindowConstructorOptions } from 'electron';
import { describe, expect, it } from 'vitest';
import { createWindow, hardenedWebPreferences, isExternalLink, windowOptions } from '../../main/windows.js';

const page = 'file:///opt/Herald/resources/app.asar/dist/renderer/index.html';

type OpenHandler = (details: { url: string }) => { action: 'allow' | 'deny' };
type PermissionHandler = (contents: unknown, permission: string, callback: (granted: boolean) => void) => void;
type CheckHandler = (contents: unknown, permission: string) => boolean;

/** Records what the factory does to a window, in the shape of Electron's objects. */
function recorder() {
  const made: { options?: BrowserWindowConstructorOptions; loaded?: string; openHandler?: OpenHandler; onRequest?: PermissionHandler; onCheck?: CheckHandler } = {};
  const contents = Object.assign(new EventEmitter(), {
    setWindowOpenHandler: (handler: OpenHandler) => (made.openHandler = handler),
    session: {
      setPermissionRequestHandler: (handler: PermissionHandler) => (made.onRequest = handler),
      setPermissionCheckHandler: (handler: CheckHandler) => (made.onCheck = handler),
    },
  });
  class FakeWindow {
    webContents = contents;
    constructor(options: BrowserWindowConstructorOptions) {
      made.options = options;
    }
    loadURL(url: string) {
      made.loaded = url;
      return Promise.resolve();
    }
  }
  const opened: string[] = [];
  createWindow({ BrowserWindow: FakeWindow as unknown as new (o: BrowserWindowConstructorOptions) => BrowserWindow, openExternal: (url) => Promise.resolve(void opened.push(url)) }, { preload: '/opt/Herald/preload.cjs', page });
  /** Emits a navigation event and tells whether the window refused it. */
  const navigate = (event: string, url: string) => {
    let prevented = false;
    contents.emit(event, { preventDefault: () => (prevented = true) }, url);
    return prevented;
  };
  return { made, opened, navigate };
}

describe('the window factory', () => {
  it('always applies the hardened web preferences, whatever the caller asks', () => {
    const { made } = recorder();
    expect(made.options?.webPreferences).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, webSecurity: true, webviewTag: false, preload: '/opt/Herald/preload.cjs' });
    expect(windowOptions({ preload: 'p', page }).webPreferences).toEqual({ ...hardenedWebPreferences, preload: 'p' });
    expect(made.loaded).toBe(page);
    expect(made.options?.show).toBe(false);
  });

  it('stays on its page: navigation elsewhere is refused and only http(s) goes to the browser', () => {
    const { navigate, opened } = recorder();
    expect(navigate('will-navigate', page)).toBe(false);
    expect(navigate('will-navigate', 'https://example.com/build/42')).toBe(true);
    expect(navigate('will-navigate', 'file:///etc/passwd')).toBe(true);
    expect(navigate('will-navigate', 'javascript:alert(1)')).toBe(true);
    expect(navigate('will-redirect', 'https://example.com/')).toBe(true);
    expect(navigate('will-attach-webview', 'https://example.com/')).toBe(true);
    expect(opened).toEqual(['https://example.com/build/42']);
  });

  it('denies window.open, handing http(s) links to the browser and dropping the rest', () => {
    const { made, opened } = recorder();
    for (const url of ['https://example.com/a', 'http://intranet/b', 'smb://share/c', 'file:///tmp/x', 'herald://evil']) {
      expect(made.openHandler?.({ url })).toEqual({ action: 'deny' });
    }
    expect(opened).toEqual(['https://example.com/a', 'http://intranet/b']);
  });

  it('grants notifications and no other permission', () => {
    const { made } = recorder();
    const decide = (permission: string) => {
      let granted: boolean | undefined;
      made.onRequest?.({}, permission, (g) => (granted = g));
      return [granted, made.onCheck?.({}, permission)];
    };
    expect(decide('notifications')).toEqual([true, true]);
    for (const permission of ['media', 'geolocation', 'clipboard-read', 'openExternal', 'fullscreen', 'unknown']) expect(decide(permission)).toEqual([false, false]);
  });

  it('treats only http and https as external links', () => {
    expect(['https://a.example/', 'http://b.example/x?y=1'].map(isExternalLink)).toEqual([true, true]);
    expect(['javascript:alert(1)', 'file:///etc/passwd', 'data:text/html,hi', 'mailto:a@b', 'not a url', ''].map(isExternalLink)).toEqual([false, false, false, false, false, false]);
  });
});
