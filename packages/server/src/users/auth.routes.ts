import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import { roles } from '../authz/index.ts';
import { clearSessionCookie, setSessionCookie } from './session-cookie.ts';
import { principalIn } from './request-principal.ts';
import type { SessionTicket, UserService } from './user.service.ts';
import { sessionStates, type Principal } from './user.types.ts';

export const sessionOut = z.object({
  state: z
    .enum(sessionStates)
    .describe('second_factor: send a code next; enrolment: enrol a factor first; active: signed in'),
  csrfToken: z.string().describe('Send as X-CSRF-Token with every cookie-authenticated write'),
  expiresAt: z.number().int(),
});

export function principalOf(request: {
  principal: (Principal & { sessionIdHash?: string }) | null;
}): Principal & { sessionIdHash: string } {
  const p = request.principal;
  if (!p?.sessionIdHash) throw new BulwarkError('unauthenticated', 'this needs a signed-in session');
  return p as Principal & { sessionIdHash: string };
}

export function startSession(reply: FastifyReply, ticket: SessionTicket) {
  setSessionCookie(reply, ticket.id, ticket.expiresAt);
  return { state: ticket.state, csrfToken: ticket.csrfToken, expiresAt: ticket.expiresAt };
}

/** Sign-in (password, then a second factor), factor enrolment, recovery codes, API tokens. */
export function authRoutes(users: UserService) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['auth'];

    app.post(
      '/api/v1/auth/setup',
      {
        config: { access: 'public' },
        schema: {
          tags,
          summary: 'First sign-in: exchange the one-time setup secret for a password',
          body: z.object({
            username: z.string().max(64),
            setupSecret: z.string().max(128),
            password: z.string().max(256),
          }),
          response: { 200: sessionOut },
        },
      },
      async (request, reply) =>
        startSession(reply, await users.completeSetup({ ...request.body, address: request.ip })),
    );

    app.post(
      '/api/v1/auth/sign-in',
      {
        config: { access: 'public' },
        schema: {
          tags,
          summary: 'Password step of sign-in',
          body: z.object({ username: z.string().max(64), password: z.string().max(256) }),
          response: { 200: sessionOut },
        },
      },
      async (request, reply) =>
        startSession(reply, await users.signIn({ ...request.body, address: request.ip })),
    );

    app.post(
      '/api/v1/auth/second-factor',
      {
        config: { access: 'second-factor' },
        schema: {
          tags,
          summary:
            'Second step of sign-in, or step-up in a signed-in session: a TOTP code or a recovery code (the session id is rotated)',
          body: z.union([
            z.object({ code: z.string().max(16) }).strict(),
            z.object({ recoveryCode: z.string().max(32) }).strict(),
          ]),
          response: { 200: sessionOut },
        },
      },
      async (request, reply) =>
        startSession(reply, await users.secondFactor(principalOf(request), request.body, request.ip)),
    );

    app.get(
      '/api/v1/auth/session',
      {
        config: { access: 'signed-in' },
        schema: {
          tags,
          summary: 'Who is signed in, and how',
          response: {
            200: z.object({
              username: z.string(),
              role: z.enum(roles),
              groups: z.array(z.string()).nullable(),
              via: z.enum(['session', 'token']),
              state: z.enum(sessionStates),
              csrfToken: z.string().optional(),
              twoFactorRequired: z.boolean(),
              twoFactor: z.object({
                totp: z.boolean(),
                webauthn: z.number().int(),
                recoveryCodesLeft: z.number().int(),
              }),
            }),
          },
        },
      },
      async (request) => {
        const p = principalIn(request);
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
        };
      },
    );

    app.post(
      '/api/v1/auth/sign-out',
      {
        config: { access: 'signed-in' },
        schema: {
          tags,
          summary:
            'Sign out (everywhere: end every session of this user; needs a session with a recent second factor)',
          body: z.object({ everywhere: z.boolean().default(false) }).default({ everywhere: false }),
          response: { 200: z.object({ sessionsEnded: z.number().int() }) },
        },
      },
      async (request, reply) => {
        // Ending the owner's other sessions is credential management: never from an API token (issue 11).
        if (request.body.everywhere) users.requireFreshSession(principalIn(request));
        const ended = await users.signOut(principalIn(request), request.body.everywhere);
        clearSessionCookie(reply);
        return { sessionsEnded: ended };
      },
    );

    app.post(
      '/api/v1/auth/totp',
      {
        config: { access: 'factor-enrolment' },
        schema: {
          tags,
          summary: 'Start TOTP enrolment: secret, otpauth URI and QR code',
          response: { 200: z.object({ secret: z.string(), otpauthUri: z.string(), qrSvg: z.string() }) },
        },
      },
      async (request) => users.beginTotp(principalIn(request)),
    );

    app.post(
      '/api/v1/auth/totp/confirm',
      {
        config: { access: 'factor-enrolment' },
        schema: {
          tags,
          summary: 'Confirm TOTP with a first code; returns 10 single-use recovery codes (shown once)',
          body: z.object({ code: z.string().max(16) }),
          response: { 200: z.object({ recoveryCodes: z.array(z.string()), session: sessionOut.optional() }) },
        },
      },
      async (request, reply) => {
        const result = await users.confirmTotp(principalOf(request), request.body.code, request.ip);
        return {
          recoveryCodes: result.recoveryCodes,
          session: result.session && startSession(reply, result.session),
        };
      },
    );

    app.post(
      '/api/v1/auth/recovery-codes',
      {
        config: { access: 'fresh-session' },
        schema: {
          tags,
          summary:
            'Replace the recovery codes with 10 new ones (shown once); needs a second factor verified within auth.stepUpWindow',
          response: { 200: z.object({ recoveryCodes: z.array(z.string()) }) },
        },
      },
      async (request) => ({ recoveryCodes: await users.regenerateRecoveryCodes(principalIn(request)) }),
    );

    const tokenOut = z.object({
      id: z.string(),
      name: z.string(),
      role: z.string(),
      createdAt: z.number().int(),
      expiresAt: z.number().int(),
      lastUsedAt: z.number().int().nullable(),
      lastUsedAddress: z.string().nullable(),
      revoked: z.boolean(),
    });

    app.get(
      '/api/v1/auth/tokens',
      {
        config: { access: 'session' },
        schema: {
          tags,
          summary: 'Your API tokens (never the secrets)',
          response: { 200: z.array(tokenOut) },
        },
      },
      async (request) => users.listTokens(principalIn(request)),
    );

    app.post(
      '/api/v1/auth/tokens',
      {
        config: { access: 'fresh-session' },
        schema: {
          tags,
          summary:
            'Create an API token (shown once) with a role no larger than yours; needs a recent second factor',
          body: z.object({
            name: z.string().max(64),
            role: z.enum(roles).optional(),
            expiresIn: z.string().max(16).default('30d'),
          }),
          response: {
            201: z.object({
              id: z.string(),
              name: z.string(),
              role: z.string(),
              token: z.string(),
              expiresAt: z.number().int(),
            }),
          },
        },
      },
      async (request, reply) => {
        const expiresInMs = parseDuration(request.body.expiresIn);
        if (expiresInMs === undefined)
          throw new BulwarkError(
            'validation_failed',
            'expiresIn must be a duration such as 12h, 30d or 365d',
          );
        const created = await users.createToken(principalIn(request), {
          name: request.body.name,
          role: request.body.role,
          expiresInMs,
        });
        return reply.status(201).send(created);
      },
    );

    app.delete(
      '/api/v1/auth/tokens/:id',
      {
        config: { access: 'fresh-session' },
        schema: {
          tags,
          summary: 'Revoke one of your API tokens; needs a recent second factor',
          params: z.object({ id: z.string().max(64) }),
        },
      },
      async (request, reply) => {
        await users.revokeToken(principalIn(request), request.params.id);
        return reply.status(204).send();
      },
    );
  };
}
