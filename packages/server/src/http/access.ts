import type { Permission, Principal } from '../users/index.ts';

/**
 * What a route needs. Every route declares one (a test walks them all):
 * - `public`: nothing (the OpenAPI document, the CA chain, the CRL);
 * - `device-credentials`: the route authenticates devices itself (EST: enrollment token or client certificate);
 * - `signed-in`: any session or token, whatever its sign-in state (session info, sign-out);
 * - `second-factor`: a session whose password step is done and whose second factor is pending;
 * - `factor-enrolment`: a session allowed to enrol factors (also the only thing a user who must have 2FA
 *   and has none may do);
 * - `self`: a fully signed-in principal acting on their own account (API tokens, recovery codes), any role;
 * - a permission: a fully signed-in principal whose role holds it.
 */
export type RouteAccess =
  'public' | 'device-credentials' | 'signed-in' | 'second-factor' | 'factor-enrolment' | 'self' | Permission;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** Set by the guard for every route that is not public. */
    principal: (Principal & { sessionIdHash?: string }) | null;
  }
}
