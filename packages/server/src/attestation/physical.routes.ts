import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetWide, requestScope } from '../authz/index.ts';
import type { PhysicalSites } from './physical.service.ts';

/** What the routes call on the sites service (nothing else). */
export type PhysicalSitesApi = Pick<PhysicalSites, 'list' | 'put' | 'grant' | 'revoke'>;

const contracts = api.attestation;

/**
 * Sites and their access lists span the fleet (a site holds groups of every kind, the records name people):
 * like the compliance evidence they feed, a user limited to device groups has no access. The actor otherwise.
 */
function siteActor(request: FastifyRequest): string {
  const { scope, actor } = requestScope(request);
  if (!fleetWide(scope))
    throw new BulwarkError(
      'forbidden',
      'physical sites span the fleet: users limited to device groups have no access',
    );
  return actor;
}

/**
 * `/api/v1/physical/sites`: sites with their owner, device groups and access records (contracts in protocol's
 * api/attestation.ts). Reading needs `compliance:read`, changing `compliance:write`.
 */
export function physicalRoutes(sites: PhysicalSitesApi) {
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.listSites, {
      async handler({ request }) {
        siteActor(request);
        return { sites: await sites.list() };
      },
    });
    app.defineRoute(contracts.putSite, {
      handler: ({ request, params, body }) => sites.put(params.name, body, siteActor(request)),
    });
    app.defineRoute(contracts.grantAccess, {
      handler: ({ request, params, body }) => sites.grant(params.name, body, siteActor(request)),
    });
    app.defineRoute(contracts.revokeAccess, {
      handler: ({ request, params, body }) =>
        sites.revoke(params.name, { id: params.id, reason: body.reason }, siteActor(request)),
    });
  };
}
