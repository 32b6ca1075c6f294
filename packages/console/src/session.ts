import { createContext, useContext } from 'react';
import type { z } from 'zod';
import type { api, Contract } from '@bulwark/protocol';

/** Who is signed in: the answer of GET /api/v1/auth/session. */
export type SessionInfo = z.output<(typeof api.users.currentSession.response)[200]>;

export interface Session {
  info: SessionInfo;
  signOut: () => Promise<void>;
  /** The session was ended by an action of the page (sign out everywhere): the sign-in page with this notice. */
  signedOut: (notice: string) => void;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in console');
  return session;
}

/**
 * Whether the signed-in role may call this operation: its contract's access is the permission it needs. A control
 * the role may not use is not shown (the server refuses the call anyway).
 */
export function allows(info: SessionInfo, c: Contract): boolean {
  return !c.access.includes(':') || info.permissions.includes(c.access);
}

export function useAllows(c: Contract): boolean {
  return allows(useSession().info, c);
}
