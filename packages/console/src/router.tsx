import { useSyncExternalStore, type MouseEvent, type ReactNode } from 'react';

const NAVIGATE = 'bulwark:navigate';

function subscribe(onChange: () => void): () => void {
  window.addEventListener('popstate', onChange);
  window.addEventListener(NAVIGATE, onChange);
  return () => {
    window.removeEventListener('popstate', onChange);
    window.removeEventListener(NAVIGATE, onChange);
  };
}

/** The current path (`/devices`): the server answers the console page for each, so a reload stays put. */
export function usePath(): string {
  return useSyncExternalStore(subscribe, () => window.location.pathname);
}

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event(NAVIGATE));
}

/** A real link (opens in a new tab, copyable) that navigates in place on a plain click. */
export function Link(props: { to: string; className?: string; children: ReactNode }) {
  const current = usePath() === props.to;
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.to);
  };
  return (
    <a
      href={props.to}
      className={props.className}
      aria-current={current ? 'page' : undefined}
      onClick={onClick}
    >
      {props.children}
    </a>
  );
}
