import { principalActor, seesGroup, type Role } from '../authz/index.ts';

export interface User {
  id: string;
  username: string;
  role: Role;
  /** Device groups the user is limited to; null = all groups. */
  groups: string[] | null;
  twoFactor: { totp: boolean; webauthn: number; recoveryCodesLeft: number };
  /** Whether this user must have a second factor (role, or the install-wide setting). */
  twoFactorRequired: boolean;
  setupPending: boolean;
  disabled: boolean;
  createdAt: number;
}

/** Who is asking: a signed-in user or an API token acting with its own (never larger) role. */
export interface Principal {
  userId: string;
  username: string;
  role: Role;
  groups: string[] | null;
  via: 'session' | 'token';
  sessionState?: SessionState;
  tokenId?: string;
  csrfToken?: string;
  /**
   * Sessions only: when it last authenticated (its second factor, or the password for an account without
   * one). A session gets a new id at every authentication step, so this is the session's creation time.
   */
  authenticatedAt?: number;
}

export const sessionStates = ['second_factor', 'enrolment', 'active'] as const;
/** `second_factor`: password accepted, factor pending. `enrolment`: must enrol a factor first. */
export type SessionState = (typeof sessionStates)[number];

/** An actor string for events (authz's `principalActor`). */
export const actorOf = principalActor;

/** True when the principal may see a device of this group (authz's `seesGroup`). */
export const inScope = seesGroup;
