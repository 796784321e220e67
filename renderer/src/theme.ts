export type Theme = 'light' | 'dark';

const storageKey = 'herald.theme';
const systemDark = matchMedia('(prefers-color-scheme: dark)');

function stored(): Theme | undefined {
  try {
    const value = localStorage.getItem(storageKey);
    return value === 'light' || value === 'dark' ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The theme in effect: the user's choice, else the system's. */
export function currentTheme(): Theme {
  const applied = document.documentElement.dataset.theme;
  if (applied === 'light' || applied === 'dark') return applied;
  return systemDark.matches ? 'dark' : 'light';
}

/** Applies the stored choice; without one, the stylesheet follows prefers-color-scheme. */
export function applyStoredTheme(): void {
  const theme = stored();
  if (theme === undefined) delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

/** Switches to the other theme and remembers the choice. */
export function toggleTheme(): Theme {
  const next: Theme = currentTheme() === 'dark' ? 'light' : 'dark';
  try {
    localStorage.setItem(storageKey, next);
  } catch {
    // Storage may be off (private mode); the choice then lasts for this page only.
  }
  document.documentElement.dataset.theme = next;
  return next;
}

export function onSystemThemeChange(callback: () => void, signal: AbortSignal): void {
  systemDark.addEventListener('change', callback, { signal });
}
