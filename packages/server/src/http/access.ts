import type { Permission } from '../authz/index.ts';
import type { Principal } from '../users/index.ts';

/**
 * What a route needs. Every route declares one (a test walks them all):
 * - `public`: nothing (the OpenAPI document, the CA chain, the CRL);
 * - `device-credentials`: the route authenticates devices itself (EST: enrollment token or client certificate);
 * - `signed-in`: any session or token, whatever its sign-in state (session info, sign-out);
 * - `second-factor`: a session whose password step is done and whose second factor is pending, or a signed-in
 *   session verifying its second factor again (step-up); never an API token;
 * - `factor-enrolment`: a session allowed to enrol factors (also the only thing a user who must have 2FA
 *   and has none may do); a signed-in session must have authenticated recently (as `fresh-session`);
 * - `session`: a fully signed-in session acting on its own account (never an API token), any role;
 * - `fresh-session`: as `session`, and authenticated (second factor) within `auth.stepUpWindow`: factor and
 *   credential management (recovery codes, API tokens, passkeys);
 * - a permission: a fully signed-in principal whose role (a token's own role) holds it.
 */
export type RouteAccess =
  | 'public'
  | 'device-credentials'
  | 'signed-in'
  | 'second-factor'
  | 'factor-enrolment'
  | 'session'
  | 'fresh-session'
  | Permission;

/** Access levels of factor and credential management: never open to an API token, whatever its role. */
export const CREDENTIAL_ACCESS: readonly RouteAccess[] = ['factor-enrolment', 'session', 'fresh-session'];

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** Set by the guard for every route that is not public. */
    principal: (Principal & { sessionIdHash?: string }) | null;
  }
}
