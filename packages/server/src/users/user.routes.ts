import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { actorOf } from './user.types.ts';
import type { UserService } from './user.service.ts';

const contracts = api.users;

/** Users and roles: administrators only (users:write), readable by those with users:read. */
export function userRoutes(users: UserService) {
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.listUsers, { handler: () => users.list() });
    app.defineRoute(contracts.getUser, { handler: ({ params }) => users.get(params.username) });
    app.defineRoute(contracts.createUser, {
      handler: ({ body, principal }) => users.create(body, actorOf(principal), principal.role),
    });
    app.defineRoute(contracts.updateUser, {
      handler: ({ params, body, principal }) => users.update(params.username, body, actorOf(principal)),
    });
    app.defineRoute(contracts.resetUser, {
      handler: ({ params, principal }) => users.resetSetup(params.username, actorOf(principal)),
    });
  };
}
