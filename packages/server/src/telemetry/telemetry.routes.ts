import type { FastifyInstance } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetActor, requestScope } from '../authz/index.ts';
import type { TelemetryService } from './telemetry.service.ts';

export interface TelemetryRoutesDeps {
  telemetry: Pick<TelemetryService, 'query' | 'listPatterns' | 'setPattern' | 'removePattern'>;
  /** A device's group: null for none, undefined for no such device. */
  groupOf(deviceId: string): Promise<string | null | undefined>;
}

const contracts = api.telemetry;

/**
 * The telemetry store's API. Reading a device's messages needs `devices:read` and the device within the
 * user's groups (another device answers 404, as the devices API does); patterns are fleet-wide settings.
 */
export function telemetryRoutes(deps: TelemetryRoutesDeps) {
  const { telemetry } = deps;
  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.query, {
      async handler({ request, params, query }) {
        const group = await deps.groupOf(params.id);
        if (group === undefined || !requestScope(request).visible(group))
          throw new BulwarkError('not_found', `device ${params.id} does not exist`);
        return telemetry.query({ deviceId: params.id, ...query });
      },
    });

    app.defineRoute(contracts.patterns, { handler: () => telemetry.listPatterns() });

    app.defineRoute(contracts.setPattern, {
      handler: ({ request, body }) =>
        telemetry.setPattern(body.pattern, { retentionMs: body.retention }, fleetActor(request)),
    });

    app.defineRoute(contracts.removePattern, {
      handler: ({ request, params }) => telemetry.removePattern(params.pattern, fleetActor(request)),
    });
  };
}
