import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetActor } from '../authz/index.ts';
import type { AppService } from './app.service.ts';

/** `/api/v1/apps`: applications, their grants and credentials (contracts in protocol's api/apps.ts). */
export function appRoutes(service: AppService) {
  return function register(app: FastifyInstance) {
    app.defineRoute(api.apps.list, { handler: () => service.list() });
    app.defineRoute(api.apps.show, { handler: ({ params }) => service.describe(params.name) });
    app.defineRoute(api.apps.create, {
      handler: ({ request, body }) => service.add(body, fleetActor(request)),
    });
    app.defineRoute(api.apps.update, {
      handler: ({ request, params, body }) => service.update(params.name, body, fleetActor(request)),
    });
    app.defineRoute(api.apps.revoke, {
      handler: ({ request, params, query }) => service.revoke(params.name, fleetActor(request), query.reason),
    });
    app.defineRoute(api.apps.putGrants, {
      async handler({ request, params, body }) {
        await service.setGrants(params.name, body.grants, fleetActor(request));
        return service.get(params.name);
      },
    });
    app.defineRoute(api.apps.createToken, {
      handler: ({ request, params, body }) =>
        service.createToken(params.name, { ttlMs: body.ttl }, fleetActor(request)),
    });
    app.defineRoute(api.apps.listTokens, { handler: ({ params }) => service.listTokens(params.name) });
    app.defineRoute(api.apps.revokeToken, {
      async handler({ request, params }) {
        await service.revokeToken(params.name, params.id, fleetActor(request));
      },
    });
    app.defineRoute(api.apps.issueCertificate, {
      handler: ({ request, params, body }) =>
        service.issueCertificate(params.name, body.csr, fleetActor(request)),
    });
  };
}
