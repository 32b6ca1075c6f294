import type { FastifyInstance, FastifyReply } from 'fastify';
import { api, BulwarkError, parseDurationMs } from '@bulwark/protocol';
import { rolePermissions } from '../authz/index.ts';
import type { RequestPrincipal } from '../http/index.ts';
import { clearSessionCookie, setSessionCookie } from './session-cookie.ts';
import type { SessionTicket, UserService } from './user.service.ts';
import type { Principal } from './user.types.ts';

const contracts = api.users;

/** The principal of a session (never an API token): sign-in steps and factor enrolment act on the session. */
export function sessionPrincipal(principal: RequestPrincipal): Principal & { sessionIdHash: string } {
  const { sessionIdHash } = principal;
  if (!sessionIdHash) throw new BulwarkError('unauthenticated', 'this needs a signed-in session');
  return { ...principal, sessionIdHash };
}

export function startSession(reply: FastifyReply, ticket: SessionTicket) {
  setSessionCookie(reply, ticket.id, ticket.expiresAt);
  return { state: ticket.state, csrfToken: ticket.csrfToken, expiresAt: ticket.expiresAt };
}

/** Password sign-in, its second step, who is signed in, sign-out. */
function signInRoutes(app: FastifyInstance, users: UserService): void {
  app.defineRoute(contracts.setupAccount, {
    handler: async ({ request, reply, body }) =>
      startSession(reply, await users.completeSetup({ ...body, address: request.ip })),
  });

  app.defineRoute(contracts.signIn, {
    handler: async ({ request, reply, body }) =>
      startSession(reply, await users.signIn({ ...body, address: request.ip })),
  });

  app.defineRoute(contracts.secondFactor, {
    handler: async ({ request, reply, body, principal }) =>
      startSession(reply, await users.secondFactor(sessionPrincipal(principal), body, request.ip)),
  });

  app.defineRoute(contracts.currentSession, {
    async handler({ principal: p }) {
      const user = await users.get(p.username);
      return {
        username: p.username,
        role: p.role,
        groups: p.groups,
        via: p.via,
        state: p.sessionState ?? 'active',
        csrfToken: p.csrfToken,
        twoFactorRequired: user.twoFactorRequired,
        twoFactor: user.twoFactor,
        // The console warns before an idle session ends (IEC 62443-3-3 SR 2.5, session lock after inactivity).
        idleTimeoutMs: p.via === 'session' ? users.sessionIdleMs : undefined,
        // The console shows only what the role may do (issue 20); every call is still checked by the guard.
        permissions: [...rolePermissions[p.role]],
      };
    },
  });

  app.defineRoute(contracts.signOut, {
    async handler({ reply, body, principal }) {
      // Ending the owner's other sessions is credential management: never from an API token (issue 11).
      if (body.everywhere) users.requireFreshSession(principal);
      const ended = await users.signOut(principal, body.everywhere);
      clearSessionCookie(reply);
      return { sessionsEnded: ended };
    },
  });
}

/** TOTP enrolment, recovery codes, API tokens. */
function credentialRoutes(app: FastifyInstance, users: UserService): void {
  app.defineRoute(contracts.beginTotp, { handler: ({ principal }) => users.beginTotp(principal) });

  app.defineRoute(contracts.confirmTotp, {
    async handler({ request, reply, body, principal }) {
      const result = await users.confirmTotp(sessionPrincipal(principal), body.code, request.ip);
      return {
        recoveryCodes: result.recoveryCodes,
        session: result.session && startSession(reply, result.session),
      };
    },
  });

  app.defineRoute(contracts.recoveryCodes, {
    handler: async ({ principal }) => ({ recoveryCodes: await users.regenerateRecoveryCodes(principal) }),
  });

  app.defineRoute(contracts.listTokens, { handler: ({ principal }) => users.listTokens(principal) });

  app.defineRoute(contracts.createToken, {
    handler: ({ body, principal }) =>
      users.createToken(principal, {
        name: body.name,
        role: body.role,
        expiresInMs: parseDurationMs(body.expiresIn, 'expiresIn'),
      }),
  });

  app.defineRoute(contracts.revokeToken, {
    async handler({ params, principal }) {
      await users.revokeToken(principal, params.id);
    },
  });
}

/** Sign-in (password, then a second factor), factor enrolment, recovery codes, API tokens. */
export function authRoutes(users: UserService) {
  return function register(app: FastifyInstance) {
    signInRoutes(app, users);
    credentialRoutes(app, users);
  };
}
