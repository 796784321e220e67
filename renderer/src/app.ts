import type { BridgeState, HeraldBridge } from '@herald/protocol';
import { InboxView } from './inbox-view.js';
import { showLogin } from './login-view.js';

/**
 * The window: the sign-in form while the bridge is signed out, the inbox otherwise. Desktop and web alike;
 * only the bridge differs.
 */
export function mountApp(root: HTMLElement, bridge: HeraldBridge): void {
  let inbox: InboxView | undefined;
  let showingLogin = false;
  let wasSignedIn = false;
  let leaving = false;
  /** An item main asked to show before the inbox was there (a toast click opening the window). */
  let pendingFocus: number | undefined;
  /** Main asked for the settings (the tray's Settings…) before the inbox was there. */
  let pendingSettings = false;

  const onState = (state: BridgeState) => {
    if (state.connection === 'signed-out') {
      inbox?.destroy();
      inbox = undefined;
      if (showingLogin) return;
      showingLogin = true;
      pendingFocus = undefined;
      pendingSettings = false;
      const ended = wasSignedIn && !leaving;
      leaving = false;
      showLogin({
        root,
        askServer: bridge.kind === 'desktop',
        ...(ended ? { message: 'Your sign-in has ended. Sign in again.' } : {}),
        signIn: (request) => bridge.signIn(request),
      });
      return;
    }
    wasSignedIn = true;
    if (inbox) return;
    showingLogin = false;
    inbox = new InboxView({
      bridge,
      root,
      initialState: state,
      onSignOut: () => {
        leaving = true;
        void bridge.signOut();
      },
    });
    if (pendingFocus !== undefined) void inbox.focusItem(pendingFocus);
    if (pendingSettings) void inbox.openSettings();
    pendingFocus = undefined;
    pendingSettings = false;
  };

  bridge.onState(onState);
  // Subscribed before `ready()`: main flushes a toast click's item together with the first state.
  bridge.onFocusItem((seq) => {
    if (inbox) void inbox.focusItem(seq);
    else pendingFocus = seq;
  });
  bridge.onOpenSettings(() => {
    if (inbox) void inbox.openSettings();
    else pendingSettings = true;
  });
  // Subscribed: the desktop app now sends its held-back events (the state first); the web bridge opens its stream.
  void bridge.ready();
}
