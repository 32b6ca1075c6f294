import type {} from '@fastify/cookie'; // brings request.cookies and reply.setCookie into the types
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BulwarkError } from '@bulwark/protocol';
import { requirePermission } from '../authz/index.ts';
import { SESSION_COOKIE, type Principal, type SessionState, type UserService } from '../users/index.ts';
import type { RouteAccess } from './access.ts';

export const CSRF_HEADER = 'x-csrf-token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface GuardDeps {
  users: Pick<UserService, 'resolveSession' | 'resolveToken' | 'requires2fa' | 'requireFreshSession'> & {
    hasFactor(userId: string): Promise<boolean>;
  };
}

type GuardedPrincipal = Principal & { sessionIdHash?: string };
/** What the access check needs: who, in which sign-in state, and the step-up check. */
interface Checked {
  principal: GuardedPrincipal;
  state: SessionState;
  requireFreshSession: (p: Principal) => void;
}

const same = (a: string, b: string) =>
  a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

const notWithToken = (what: string) => new BulwarkError('forbidden', what);
const secondFactorFirst = () =>
  new BulwarkError('second_factor_required', 'complete sign-in with your second factor first');

/** `second-factor`: sign-in's second step, or step-up (a signed-in session proves its factor again). */
function checkSecondFactorStep({ principal, state }: Checked): void {
  if (principal.via !== 'session')
    throw notWithToken('an API token is not a session and has no second factor to verify');
  // The session then gets a new id, whose creation time `fresh-session` routes check.
  if (state !== 'second_factor' && state !== 'active')
    throw new BulwarkError('bad_request', 'no second factor is pending for this session');
}

/** `factor-enrolment`: the forced enrolment right after the password, or factor management (step-up). */
function checkEnrolment({ principal, state, requireFreshSession }: Checked): void {
  if (principal.via !== 'session')
    throw notWithToken('factors are enrolled from a signed-in session, not with an API token');
  if (state === 'second_factor') throw secondFactorFirst();
  if (state === 'active') requireFreshSession(principal);
}

/** Every other access level needs a fully signed-in principal. */
function checkSignedIn(state: SessionState): void {
  if (state === 'second_factor') throw secondFactorFirst();
  if (state === 'enrolment')
    throw new BulwarkError(
      'factor_enrolment_required',
      'this account must enrol a second factor (TOTP or a passkey) before anything else',
    );
}

/** The sign-in state machine and the role's permission (authz), for a route's declared access. */
export function checkAccess(
  access: Exclude<RouteAccess, 'public' | 'device-credentials'>,
  checked: Checked,
): void {
  const { principal, state, requireFreshSession } = checked;
  if (access === 'signed-in') return;
  if (access === 'second-factor') return checkSecondFactorStep(checked);
  if (access === 'factor-enrolment') return checkEnrolment(checked);
  checkSignedIn(state);
  if (access === 'session' || access === 'fresh-session') {
    if (principal.via !== 'session')
      throw notWithToken(
        'factors and credentials are managed from a signed-in session, never with an API token',
      );
    if (access === 'fresh-session') requireFreshSession(principal);
    return;
  }
  requirePermission(principal, access);
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

async function authenticate(request: FastifyRequest, deps: GuardDeps): Promise<GuardedPrincipal | undefined> {
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

/** The session's sign-in state; an active session of an account that must have 2FA and has none must enrol. */
async function stateOf(principal: GuardedPrincipal, deps: GuardDeps): Promise<SessionState> {
  const state = principal.sessionState ?? 'active';
  if (
    principal.via === 'session' &&
    state === 'active' &&
    deps.users.requires2fa(principal.role) &&
    !(await deps.users.hasFactor(principal.userId))
  )
    return 'enrolment'; // 2FA became mandatory (role or setting changed): nothing but enrolment until it is done
  return state;
}

/**
 * The one guard. Every route must declare `config.access` (routes without one fail at registration);
 * this hook authenticates (Bearer API token or session cookie), enforces the sign-in state machine, CSRF
 * on cookie-authenticated writes, and the role's permission (authz).
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
    const principal = await authenticate(request, deps);
    if (!principal)
      throw new BulwarkError('unauthenticated', 'sign in, or send an API token as Authorization: Bearer');
    if (principal.via === 'session') checkCsrf(request, principal);
    request.principal = principal;
    const state = await stateOf(principal, deps);
    checkAccess(access, { principal, state, requireFreshSession: (p) => deps.users.requireFreshSession(p) });
  });
}
