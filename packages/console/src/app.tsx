import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { api } from '@bulwark/protocol';
import { ApiError, call, onSessionEnded, setCsrfToken } from './api.ts';
import { navItems, Shell } from './components/shell.tsx';
import { ErrorNote, Loading } from './components/status.tsx';
import { Alerts } from './pages/alerts.tsx';
import { AuditLog } from './pages/audit.tsx';
import { Compliance } from './pages/compliance.tsx';
import { DevicePage } from './pages/device.tsx';
import { Devices } from './pages/devices.tsx';
import { Firmware } from './pages/firmware.tsx';
import { Overview } from './pages/overview.tsx';
import { PoliciesPage } from './pages/policies.tsx';
import { RiskPage } from './pages/risk.tsx';
import { SignIn } from './pages/sign-in.tsx';
import { UsersPage } from './pages/users.tsx';
import { Link, usePath } from './router.tsx';
import { allows, SessionContext, type Session, type SessionInfo } from './session.ts';

type State =
  | { kind: 'loading' }
  | { kind: 'signed-out'; notice?: string }
  | { kind: 'failed'; error: unknown }
  | { kind: 'signed-in'; info: SessionInfo };

const pages: Record<string, () => ReactNode> = {
  '/': () => <Overview />,
  '/alerts': () => <Alerts />,
  '/devices': () => <Devices />,
  '/firmware': () => <Firmware />,
  '/compliance': () => <Compliance />,
  '/risk': () => <RiskPage />,
  '/audit': () => <AuditLog />,
  '/policies': () => <PoliciesPage />,
  '/users': () => <UsersPage />,
};

interface Route {
  /** The navigation entry the page belongs to: its permission gates the page too. */
  item: (typeof navItems)[number];
  title: string;
  render: () => ReactNode;
}

/** A path segment decoded, or undefined when it is not valid percent-encoding (a typed address). */
function decodedOrUndefined(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The page at a path: one of the navigation's, or a device (`/devices/<id>`, under Devices). */
function routeOf(path: string): Route | undefined {
  const device = /^\/devices\/([^/]+)$/.exec(path);
  if (device?.[1]) {
    const id = decodedOrUndefined(device[1]);
    if (id === undefined) return undefined;
    const item = navItems.find((i) => i.to === '/devices');
    return item && { item, title: id, render: () => <DevicePage key={id} id={id} /> };
  }
  const item = navItems.find((i) => i.to === path);
  const render = pages[path];
  return item && render && { item, title: item.label, render };
}

function Page(props: { info: SessionInfo }) {
  const path = usePath();
  const route = routeOf(path);
  const first = useRef(true);
  const title = route?.title;
  useEffect(() => {
    document.title = `${title ?? 'Not found'} · Bulwark`;
    // Keyboard and screen-reader users land on the new page's content, not on the link they followed.
    if (!first.current) document.getElementById('main')?.focus();
    first.current = false;
  }, [title]);
  if (!route) {
    return (
      <>
        <h1>Not found</h1>
        <p>
          There is no page at <code>{path}</code>. <Link to="/">Back to the overview</Link>
        </p>
      </>
    );
  }
  if (!allows(props.info, route.item.needs))
    return <p className="error">Your role ({props.info.role}) does not allow this page.</p>;
  return route.render();
}

async function loadSession(): Promise<SessionInfo | undefined> {
  try {
    const info = await call(api.users.currentSession);
    if (info.state !== 'active') return undefined; // half-way through sign-in: start it again
    setCsrfToken(info.csrfToken);
    return info;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return undefined;
    throw e;
  }
}

export function App() {
  const [state, setState] = useState<State>({ kind: 'loading' });
  const refresh = useCallback((notice?: string) => {
    loadSession().then(
      (info) => setState(info ? { kind: 'signed-in', info } : { kind: 'signed-out', notice }),
      (error: unknown) => setState({ kind: 'failed', error }),
    );
  }, []);
  useEffect(() => refresh(), [refresh]);
  useEffect(
    () =>
      onSessionEnded(() =>
        setState((s) =>
          s.kind === 'signed-in'
            ? { kind: 'signed-out', notice: 'Your session has ended. Sign in again.' }
            : s,
        ),
      ),
    [],
  );
  const session = useMemo<Session | undefined>(() => {
    if (state.kind !== 'signed-in') return undefined;
    return {
      info: state.info,
      async signOut() {
        await call(api.users.signOut, { body: { everywhere: false } }).catch(() => undefined);
        setCsrfToken(undefined);
        setState({ kind: 'signed-out', notice: 'You are signed out.' });
      },
    };
  }, [state]);

  if (state.kind === 'loading') return <Loading what="the console" />;
  if (state.kind === 'failed') return <ErrorNote error={state.error} what="the console" />;
  if (state.kind === 'signed-out') return <SignIn notice={state.notice} onSignedIn={() => refresh()} />;
  return (
    <SessionContext.Provider value={session}>
      <Shell>
        <Page info={state.info} />
      </Shell>
    </SessionContext.Provider>
  );
}
