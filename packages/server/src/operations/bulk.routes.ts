import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { requestScope } from '../authz/index.ts';
import type { BulkOperations, Principal } from './bulk.service.ts';

const contracts = api.operations;

function principalOf(request: FastifyRequest): Principal {
  const { scope, actor } = requestScope(request);
  return { scope, actor };
}

/**
 * Bulk device actions. Every route needs `devices:read`; requesting, approving and rejecting also need the
 * permission of the action itself (devices:revoke, devices:quarantine), checked by the service, as is the
 * requester's and the approver's group scope.
 */
export function bulkRoutes(operations: BulkOperations) {
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.createBulk, {
      async handler({ request, body, reply }) {
        const op = await operations.request(body, principalOf(request));
        // 202 Accepted: stored, waiting for a second person; 200: it ran.
        if (op.status === 'pending') void reply.status(202);
        return op;
      },
    });

    app.defineRoute(contracts.listBulk, {
      handler: async ({ request, query }) => ({
        operations: await operations.list(query, requestScope(request).scope),
      }),
    });

    app.defineRoute(contracts.showBulk, {
      handler: ({ request, params }) => operations.get(params.id, requestScope(request).scope),
    });

    app.defineRoute(contracts.approveBulk, {
      handler: ({ request, params, body }) => operations.approve(params.id, principalOf(request), body.note),
    });

    app.defineRoute(contracts.rejectBulk, {
      handler: ({ request, params, body }) => operations.reject(params.id, principalOf(request), body.note),
    });
  };
}
