import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { requestScope } from '../authz/index.ts';
import type { DeviceService } from './device.service.ts';
import type { Device } from './device.types.ts';

export interface DeviceRoutesDeps {
  devices: DeviceService;
  /** The PKI's revocation (device and all its certificates). */
  revokeDevice(
    id: string,
    actor: string,
    reason: (typeof api.devices.revocationReasons)[number],
  ): Promise<string[]>;
}

const contracts = api.devices;

/** The devices API. A user limited to device groups sees only those: other devices answer 404, not 403. */
export function deviceRoutes(deps: DeviceRoutesDeps) {
  const { devices } = deps;

  async function visibleDevice(request: FastifyRequest, id: string): Promise<Device> {
    const device = await devices.find(id);
    if (!device || !requestScope(request).visible(device.group))
      throw new BulwarkError('not_found', `device ${id} does not exist`);
    return device;
  }

  return function register(app: FastifyInstance) {
    app.defineRoute(contracts.list, {
      async handler({ request, query }) {
        const { groups } = requestScope(request);
        const list = await devices.list({ ...query, groupsIn: groups ?? undefined });
        return {
          devices: await devices.views(list),
          next: list.length === query.limit ? (list[list.length - 1]?.id ?? null) : null,
        };
      },
    });

    app.defineRoute(contracts.show, {
      handler: async ({ request, params }) => devices.show((await visibleDevice(request, params.id)).id),
    });

    app.defineRoute(contracts.certificates, {
      handler: async ({ request, params }) => ({
        certificates: await devices.certificates((await visibleDevice(request, params.id)).id),
      }),
    });

    app.defineRoute(contracts.add, {
      async handler({ request, body }) {
        const { actor, visible } = requestScope(request);
        if (!visible(body.group ?? null))
          throw new BulwarkError('forbidden', 'you may add devices only to your own groups');
        return devices.add(body, actor);
      },
    });

    app.defineRoute(contracts.update, {
      async handler({ request, params, body }) {
        const { actor, visible } = requestScope(request);
        await visibleDevice(request, params.id);
        if (body.group !== undefined && !visible(body.group))
          throw new BulwarkError('forbidden', 'you may move devices only into your own groups');
        return devices.update(params.id, body, actor);
      },
    });

    app.defineRoute(contracts.enrollmentToken, {
      async handler({ request, params, body }) {
        await visibleDevice(request, params.id);
        return devices.issueToken(params.id, requestScope(request).actor, body.ttl);
      },
    });

    app.defineRoute(contracts.revoke, {
      async handler({ request, params, body }) {
        await visibleDevice(request, params.id);
        return {
          revokedCertificates: await deps.revokeDevice(params.id, requestScope(request).actor, body.reason),
        };
      },
    });

    app.defineRoute(contracts.markLost, {
      async handler({ request, params, body }) {
        await visibleDevice(request, params.id);
        return devices.markLost(params.id, body, requestScope(request).actor);
      },
    });

    app.defineRoute(contracts.markFound, {
      async handler({ request, params, body }) {
        await visibleDevice(request, params.id);
        return devices.markFound(params.id, body, requestScope(request).actor);
      },
    });

    app.defineRoute(contracts.decommission, {
      async handler({ request, params, body }) {
        await visibleDevice(request, params.id);
        return devices.decommission(params.id, body, requestScope(request).actor);
      },
    });

    for (const [c, disabled] of [
      [contracts.disable, true],
      [contracts.enable, false],
    ] as const) {
      app.defineRoute(c, {
        async handler({ request, params, body }) {
          await visibleDevice(request, params.id);
          return devices.setDisabled(
            params.id,
            { disabled, reason: body.reason },
            requestScope(request).actor,
          );
        },
      });
    }
  };
}
