import type {} from '@fastify/cookie'; // brings request.cookies and reply.setCookie into the types
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BulwarkError } from '@bulwark/protocol';
import { can, SESSION_COOKIE, type Principal, type UserService } from '../users/index.ts';
import type { RouteAccess } from './access.ts';

export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface GuardDeps {
  users: Pick<UserService, 'resolveSession' | 'resolveToken' | 'requires2fa' | 'requireFreshSession'> & {
    hasFactor(userId: string): Promise<boolean>;
  };
}

const same = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/**
 * The one guard. Every route must declare `config.access` (routes without one fail at registration);
 * this hook authenticates (Bearer API token or session cookie), enforces the sign-in state machine, CSRF
 * on cookie-authenticated writes, and the role's permission.
 */
export function installGuard(app: FastifyInstance, deps: GuardDeps): void {
  app.decorateRequest('principal', null);

  app.addHook('onRoute', (route) => {
    if (!route.config?.access) {
      throw new Error(`route ${String(route.method)} ${route.url} declares no access level (config.access)`);
    }
  });

  app.addHook('onRequest', async (request: FastifyRequest) => {
    const access: RouteAccess | undefined = request.routeOptions.config.access;
    if (access === 'public' || access === 'device-credentials') return;
    if (!access) {
      // An unknown path: Fastify's not-found handler answers 404. A declared route without access cannot
      // exist (refused at registration above), so this stays deny-by-default for everything else.
      if (request.is404) return;
      throw new BulwarkError('forbidden', 'route has no declared access');
    }
    const principal = await authenticate(request);
    if (!principal)
      throw new BulwarkError('unauthenticated', 'sign in, or send an API token as Authorization: Bearer');
    if (principal.via === 'session') checkCsrf(request, principal);
    request.principal = principal;

    let state = principal.sessionState ?? 'active';
    if (
      principal.via === 'session' &&
      state === 'active' &&
      deps.users.requires2fa(principal.role) &&
      !(await deps.users.hasFactor(principal.userId))
    ) {
      state = 'enrolment'; // 2FA became mandatory (role or setting changed): nothing but enrolment until it is done
    }
    if (access === 'signed-in') return;
    if (access === 'second-factor') {
      if (principal.via !== 'session')
        throw new BulwarkError(
          'forbidden',
          'an API token is not a session and has no second factor to verify',
        );
      // Sign-in's second step, or step-up: a signed-in session proves its factor again and gets a new id,
      // whose creation time `fresh-session` routes check.
      if (state !== 'second_factor' && state !== 'active')
        throw new BulwarkError('bad_request', 'no second factor is pending for this session');
      return;
    }
    if (access === 'factor-enrolment') {
      if (principal.via !== 'session')
        throw new BulwarkError(
          'forbidden',
          'factors are enrolled from a signed-in session, not with an API token',
        );
      if (state === 'second_factor')
        throw new BulwarkError('second_factor_required', 'complete sign-in with your second factor first');
      // Adding or replacing a factor of a signed-in account is factor management (step-up); the forced
      // enrolment right after the password is not.
      if (state === 'active') deps.users.requireFreshSession(principal);
      return;
    }
    if (state === 'second_factor')
      throw new BulwarkError('second_factor_required', 'complete sign-in with your second factor first');
    if (state === 'enrolment')
      throw new BulwarkError(
        'factor_enrolment_required',
        'this account must enrol a second factor (TOTP or a passkey) before anything else',
      );
    if (access === 'session' || access === 'fresh-session') {
      if (principal.via !== 'session')
        throw new BulwarkError(
          'forbidden',
          'factors and credentials are managed from a signed-in session, never with an API token',
        );
      if (access === 'fresh-session') deps.users.requireFreshSession(principal);
      return;
    }
    if (!can(principal.role, access))
      throw new BulwarkError('forbidden', `your role (${principal.role}) lacks the permission ${access}`);
  });

  async function authenticate(
    request: FastifyRequest,
  ): Promise<(Principal & { sessionIdHash?: string }) | undefined> {
    const header = request.headers.authorization;
    if (header) {
      const [scheme, token] = header.split(' ', 2);
      if (scheme?.toLowerCase() !== 'bearer' || !token)
        throw new BulwarkError('unauthenticated', 'use Authorization: Bearer <API token>');
      const principal = await deps.users.resolveToken(token, request.ip);
      if (!principal)
        throw new BulwarkError('invalid_credentials', 'the API token is wrong, expired or revoked');
      return principal;
    }
    const cookie = request.cookies[SESSION_COOKIE];
    return cookie ? deps.users.resolveSession(cookie) : undefined;
  }

  function checkCsrf(request: FastifyRequest, principal: Principal): void {
    if (SAFE_METHODS.has(request.method)) return;
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `https://${request.headers.host ?? ''}`) {
      throw new BulwarkError('csrf_failed', `cross-origin request from ${origin} refused`);
    }
    const token = request.headers[CSRF_HEADER];
    if (typeof token !== 'string' || !principal.csrfToken || !same(token, principal.csrfToken)) {
      throw new BulwarkError(
        'csrf_failed',
        `cookie-authenticated writes need the session's ${CSRF_HEADER} header`,
      );
    }
  }
}
