import { useSyncExternalStore } from 'react';

/**
 * Light and dark. The system's preference (`prefers-color-scheme`) by default; the top bar's toggle chooses one,
 * remembered in this browser. The choice is `html[data-theme]`: styles.css gives every colour as
 * `light-dark(light, dark)` and the attribute sets `color-scheme`, so there is one palette and no inline style.
 */
export type Theme = 'light' | 'dark';

const KEY = 'bulwark.theme';
const CHANGED = 'bulwark:theme';
const darkQuery = () => window.matchMedia('(prefers-color-scheme: dark)');

/** The choice when this browser refuses storage (a privacy mode): kept for this page only. */
let unstored: Theme | undefined;

function storedChoice(): Theme | undefined {
  try {
    const value = localStorage.getItem(KEY);
    return value === 'light' || value === 'dark' ? value : undefined;
  } catch {
    return unstored;
  }
}

const systemTheme = (): Theme => (darkQuery().matches ? 'dark' : 'light');

/** The theme in force: the remembered choice, else the system's. */
export function currentTheme(): Theme {
  return storedChoice() ?? systemTheme();
}

/** Puts the remembered choice on the document (no attribute: the system's preference applies). */
export function applyStoredTheme(): void {
  const choice = storedChoice();
  if (choice) document.documentElement.dataset.theme = choice;
  else delete document.documentElement.dataset.theme;
}

/**
 * Chooses a theme and remembers it. Choosing what the system prefers forgets the choice instead, so the console
 * follows the system again (a later change of the system's setting is then seen).
 */
export function chooseTheme(theme: Theme): void {
  const choice = theme === systemTheme() ? undefined : theme;
  try {
    if (choice) localStorage.setItem(KEY, choice);
    else localStorage.removeItem(KEY);
  } catch {
    unstored = choice;
  }
  applyStoredTheme();
  window.dispatchEvent(new Event(CHANGED));
}

function subscribe(onChange: () => void): () => void {
  const query = darkQuery();
  // Another tab's choice arrives as a storage event: this document follows it.
  const fromOtherTab = (e: StorageEvent) => {
    if (e.key !== KEY && e.key !== null) return;
    applyStoredTheme();
    onChange();
  };
  query.addEventListener('change', onChange);
  window.addEventListener(CHANGED, onChange);
  window.addEventListener('storage', fromOtherTab);
  return () => {
    query.removeEventListener('change', onChange);
    window.removeEventListener(CHANGED, onChange);
    window.removeEventListener('storage', fromOtherTab);
  };
}

/** The top bar's toggle: a pressed "Dark theme" button while the dark theme is in force. */
export function ThemeToggle() {
  const dark = useSyncExternalStore(subscribe, currentTheme) === 'dark';
  return (
    <button
      type="button"
      className="theme-toggle"
      aria-pressed={dark}
      title={dark ? 'Switch to the light theme' : 'Switch to the dark theme'}
      onClick={() => chooseTheme(dark ? 'light' : 'dark')}
    >
      Dark theme
    </button>
  );
}
