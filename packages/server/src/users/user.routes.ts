import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { actorOf } from './user.types.ts';
import { principalIn } from './request-principal.ts';
import { roles } from '../authz/index.ts';
import type { UserService } from './user.service.ts';

export const userOut = z.object({
  username: z.string(),
  role: z.enum(roles),
  groups: z.array(z.string()).nullable(),
  twoFactor: z.object({ totp: z.boolean(), webauthn: z.number().int(), recoveryCodesLeft: z.number().int() }),
  twoFactorRequired: z.boolean(),
  setupPending: z.boolean(),
  disabled: z.boolean(),
  createdAt: z.number().int(),
});

const setupOut = z.object({ setupSecret: z.string(), setupExpiresAt: z.number().int() });

/** Users and roles: administrators only (users:write), readable by those with users:read. */
export function userRoutes(users: UserService) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['users'];
    const params = z.object({ username: z.string().max(64) });

    app.get(
      '/api/v1/users',
      {
        config: { access: 'users:read' },
        schema: { tags, summary: 'List users with their 2FA coverage', response: { 200: z.array(userOut) } },
      },
      () => users.list(),
    );

    app.get(
      '/api/v1/users/:username',
      { config: { access: 'users:read' }, schema: { tags, params, response: { 200: userOut } } },
      (request) => users.get(request.params.username),
    );

    app.post(
      '/api/v1/users',
      {
        config: { access: 'users:write' },
        schema: {
          tags,
          summary: 'Create a user; returns a one-time setup secret to exchange at first sign-in',
          body: z.object({
            username: z.string().max(64),
            role: z.enum(roles),
            groups: z.array(z.string().max(64)).max(100).nullable().optional(),
          }),
          response: { 201: setupOut.extend({ user: userOut }) },
        },
      },
      async (request, reply) => {
        const created = await users.create(
          request.body,
          actorOf(principalIn(request)),
          principalIn(request).role,
        );
        return reply.status(201).send(created);
      },
    );

    app.patch(
      '/api/v1/users/:username',
      {
        config: { access: 'users:write' },
        schema: {
          tags,
          summary: "Change a user's role, device groups or disabled state (ends the user's sessions)",
          params,
          body: z.object({
            role: z.enum(roles).optional(),
            groups: z.array(z.string().max(64)).max(100).nullable().optional(),
            disabled: z.boolean().optional(),
          }),
          response: { 200: userOut },
        },
      },
      (request) => users.update(request.params.username, request.body, actorOf(principalIn(request))),
    );

    app.post(
      '/api/v1/users/:username/reset',
      {
        config: { access: 'users:write' },
        schema: {
          tags,
          summary: 'Reset password and factors; returns a new setup secret',
          params,
          response: { 200: setupOut },
        },
      },
      (request) => users.resetSetup(request.params.username, actorOf(principalIn(request))),
    );
  };
}
