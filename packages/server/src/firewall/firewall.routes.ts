import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetActor } from '../authz/index.ts';
import type { FirewallService } from './firewall.service.ts';

/** Ban lists (addresses/CIDRs, devices and certificates, with expiry and origin). */
export function firewallRoutes(service: FirewallService) {
  return function register(app: FastifyInstance) {
    app.defineRoute(api.firewall.list, { handler: () => service.list() });

    app.defineRoute(api.firewall.add, {
      handler: async ({ request, body }) => service.add({ ...body, ttlMs: body.ttl }, fleetActor(request)),
    });

    app.defineRoute(api.firewall.remove, {
      async handler({ request, params }) {
        await service.remove(params.id, fleetActor(request));
      },
    });
  };
}
