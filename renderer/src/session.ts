import { z } from 'zod';
import { userName } from '@herald/protocol';

/**
 * The web inbox's sign-in: a device token from `POST /v1/login`.
 *
 * It lives in sessionStorage: it survives a reload of this tab, ends with the tab, is never shared with other
 * tabs, is never sent by the browser on its own (unlike a cookie, so no CSRF) and never appears in a URL.
 * Script on the page could read it, but so it could read memory; the strict CSP and text-only rendering are
 * the defence against that.
 */
export const session = z.object({
  token: z.string().min(1),
  user: z.object({ id: z.int(), name: userName }),
});
export type Session = z.infer<typeof session>;

const storageKey = 'herald.session';

export function loadSession(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(storageKey);
    if (raw === null) return undefined;
    const parsed = session.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function saveSession(value: Session): void {
  try {
    sessionStorage.setItem(storageKey, JSON.stringify(value));
  } catch {
    // Storage off: the session lasts until the page is closed or reloaded.
  }
}

export function clearSession(): void {
  try {
    sessionStorage.removeItem(storageKey);
  } catch {
    // Nothing was stored.
  }
}
