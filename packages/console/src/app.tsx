import { useCallback, useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { api } from '@bulwark/protocol';
import { ApiError, call, onSessionEnded, setCsrfToken } from './api.ts';
import { SessionTimeout } from './components/session-timeout.tsx';
import { accountItem, navItems, Shell } from './components/shell.tsx';
import { ErrorNote, Loading } from './components/status.tsx';
import { AccountPage } from './pages/account.tsx';
import { AlertPage } from './pages/alert.tsx';
import { Alerts } from './pages/alerts.tsx';
import { AppPage } from './pages/application.tsx';
import { ApprovalsPage } from './pages/approvals.tsx';
import { AppsPage } from './pages/apps.tsx';
import { AuditLog } from './pages/audit.tsx';
import { Compliance } from './pages/compliance.tsx';
import { DevicePage } from './pages/device.tsx';
import { Devices } from './pages/devices.tsx';
import { Firmware } from './pages/firmware.tsx';
import { Overview } from './pages/overview.tsx';
import { PoliciesPage } from './pages/policies.tsx';
import { PrivacyPage } from './pages/privacy.tsx';
import { RiskDetail, RiskPage } from './pages/risk.tsx';
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
  '/approvals': () => <ApprovalsPage />,
  '/firmware': () => <Firmware />,
  '/compliance': () => <Compliance />,
  '/risk': () => <RiskPage />,
  '/audit': () => <AuditLog />,
  '/policies': () => <PoliciesPage />,
  '/users': () => <UsersPage />,
  '/apps': () => <AppsPage />,
  '/privacy': () => <PrivacyPage />,
};

/** The page of one thing of a list (`/devices/<id>`, `/apps/<name>`): the list's navigation entry gates it. */
const detailPages: readonly { list: string; render: (id: string) => ReactNode }[] = [
  { list: '/devices', render: (id) => <DevicePage key={id} id={id} /> },
  { list: '/alerts', render: (id) => <AlertPage key={id} id={id} /> },
  { list: '/apps', render: (name) => <AppPage key={name} name={name} /> },
  { list: '/risk', render: (id) => <RiskDetail key={id} id={id} /> },
];

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

/**
 * The page at a path: one of the navigation's, a device or an app (`/devices/<id>`, `/apps/<name>`, under their
 * list), or your account.
 */
function routeOf(path: string): Route | undefined {
  if (path === accountItem.to)
    return { item: accountItem, title: accountItem.label, render: () => <AccountPage /> };
  const [, list, segment] = /^(\/[^/]+)\/([^/]+)$/.exec(path) ?? [];
  const detail = detailPages.find((d) => d.list === list);
  if (detail && segment) {
    const id = decodedOrUndefined(segment);
    if (id === undefined) return undefined;
    const item = navItems.find((i) => i.to === detail.list);
    return item && { item, title: id, render: () => detail.render(id) };
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
      signedOut(notice) {
        setCsrfToken(undefined);
        setState({ kind: 'signed-out', notice });
      },
    };
  }, [state]);

  if (state.kind === 'loading') return <Loading what="the console" />;
  if (state.kind === 'failed') return <ErrorNote error={state.error} what="the console" />;
  if (state.kind === 'signed-out') return <SignIn notice={state.notice} onSignedIn={() => refresh()} />;
  return (
    <SessionContext.Provider value={session}>
      <Shell>
        <SessionTimeout idleMs={state.info.idleTimeoutMs} />
        <Page info={state.info} />
      </Shell>
    </SessionContext.Provider>
  );
}
