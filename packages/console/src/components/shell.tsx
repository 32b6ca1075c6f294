import type { ReactNode } from 'react';
import { api, type Contract } from '@bulwark/protocol';
import { Link } from '../router.tsx';
import { allows, useSession } from '../session.ts';
import { ThemeToggle } from './theme.tsx';

interface NavItem {
  to: string;
  label: string;
  /** The operation the page reads first: its permission decides whether the page is offered. */
  needs: Contract;
}

export const navItems: readonly NavItem[] = [
  { to: '/', label: 'Overview', needs: api.devices.list },
  { to: '/alerts', label: 'Alerts', needs: api.monitor.listAlerts },
  { to: '/devices', label: 'Devices', needs: api.devices.list },
  { to: '/approvals', label: 'Approvals', needs: api.operations.listBulk },
  { to: '/firmware', label: 'Firmware', needs: api.firmware.listReleases },
  { to: '/compliance', label: 'Compliance', needs: api.compliance.listRuns },
  { to: '/risk', label: 'Risk', needs: api.riskRegister.register },
  { to: '/policies', label: 'Policies', needs: api.access.listPolicies },
  { to: '/apps', label: 'Apps', needs: api.apps.list },
  { to: '/privacy', label: 'Privacy', needs: api.privacy.listRequests },
  { to: '/users', label: 'Users', needs: api.users.listUsers },
  { to: '/audit', label: 'Audit log', needs: api.audit.query },
];

/** The signed-in user's own page (factors, recovery codes, sessions), linked from their name: any session has it. */
export const accountItem: NavItem = { to: '/account', label: 'Your account', needs: api.users.listPasskeys };

/** The frame of every signed-in page: the navigation the role may use, who is signed in, sign-out. */
export function Shell(props: { children: ReactNode }) {
  const session = useSession();
  const items = navItems.filter((item) => allows(session.info, item.needs));
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Bulwark</span>
        <nav aria-label="Main">
          <ul>
            {items.map((item) => (
              <li key={item.to}>
                <Link to={item.to}>{item.label}</Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span>
            <Link to={accountItem.to}>{session.info.username}</Link>{' '}
            <span className="muted">({session.info.role})</span>
          </span>
          <ThemeToggle />
          <button type="button" onClick={() => void session.signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {props.children}
      </main>
    </div>
  );
}
