import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { api } from '@bulwark/protocol';
import { ApiError, call, onSessionEnded, setCsrfToken } from './api.ts';
import { navItems, Shell } from './components/shell.tsx';
import { ErrorNote, Loading } from './components/status.tsx';
import { Alerts } from './pages/alerts.tsx';
import { AuditLog } from './pages/audit.tsx';
import { Compliance } from './pages/compliance.tsx';
import { Devices } from './pages/devices.tsx';
import { Firmware } from './pages/firmware.tsx';
import { Overview } from './pages/overview.tsx';
import { RiskPage } from './pages/risk.tsx';
import { SignIn } from './pages/sign-in.tsx';
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
};

function Page(props: { info: SessionInfo }) {
  const path = usePath();
  const item = navItems.find((i) => i.to === path);
  const render = pages[path];
  const first = useRef(true);
  useEffect(() => {
    document.title = `${item?.label ?? 'Not found'} · Bulwark`;
    // Keyboard and screen-reader users land on the new page's content, not on the link they followed.
    if (!first.current) document.getElementById('main')?.focus();
    first.current = false;
  }, [item]);
  if (!item || !render) {
    return (
      <>
        <h1>Not found</h1>
        <p>
          There is no page at <code>{path}</code>. <Link to="/">Back to the overview</Link>
        </p>
      </>
    );
  }
  if (!allows(props.info, item.needs))
    return <p className="error">Your role ({props.info.role}) does not allow this page.</p>;
  return render();
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
