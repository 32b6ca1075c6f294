import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetActor } from '../authz/index.ts';
import type { NotifyService } from './notify.service.ts';

const contracts = api.notify;

/** Notification channels: webhooks and syslog/CEF exporters that follow the audit log. */
export function notifyRoutes(service: NotifyService) {
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.list, { handler: () => service.list() });
    app.defineRoute(contracts.create, {
      handler: ({ request, body }) => service.create(body, fleetActor(request)),
    });
    app.defineRoute(contracts.get, { handler: ({ params }) => service.get(params.id) });
    app.defineRoute(contracts.update, {
      handler: ({ request, params, body }) => service.update(params.id, body, fleetActor(request)),
    });
    app.defineRoute(contracts.remove, {
      async handler({ request, params }) {
        await service.remove(params.id, fleetActor(request));
      },
    });
    app.defineRoute(contracts.test, {
      handler: ({ request, params }) => service.test(params.id, fleetActor(request)),
    });
  };
}
