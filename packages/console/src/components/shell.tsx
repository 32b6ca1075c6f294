import type { ReactNode } from 'react';
import { api, type Contract } from '@bulwark/protocol';
import { Link } from '../router.tsx';
import { allows, useSession } from '../session.ts';

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
  { to: '/firmware', label: 'Firmware', needs: api.firmware.listReleases },
  { to: '/compliance', label: 'Compliance', needs: api.compliance.listRuns },
  { to: '/risk', label: 'Risk', needs: api.riskRegister.register },
  { to: '/policies', label: 'Policies', needs: api.access.listPolicies },
  { to: '/users', label: 'Users', needs: api.users.listUsers },
  { to: '/audit', label: 'Audit log', needs: api.audit.query },
];

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
            {session.info.username} <span className="muted">({session.info.role})</span>
          </span>
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
