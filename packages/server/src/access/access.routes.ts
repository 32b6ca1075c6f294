import type { FastifyInstance, FastifyRequest } from 'fastify';
import { api, BulwarkError } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import { fleetActor, fleetWide, requestScope, seesGroup } from '../authz/index.ts';
import type { AccessService } from './access.service.ts';

type DeviceGroup = (id: string) => Promise<string | null | undefined>;

const contracts = api.access;

/** Device-side scope: a user limited to device groups may only look at devices of those groups. */
async function requireVisible(request: FastifyRequest, deviceId: string, group: DeviceGroup) {
  const { scope } = requestScope(request);
  if (fleetWide(scope)) return;
  if (!seesGroup(scope, await group(deviceId)))
    throw new BulwarkError('not_found', `device ${deviceId} does not exist`);
}

function policyRoutes(app: FastifyInstance, access: AccessService, deviceGroup: DeviceGroup): void {
  app.defineRoute(contracts.listPolicies, { handler: () => access.listPolicies() });
  app.defineRoute(contracts.getPolicy, { handler: ({ params }) => access.getPolicy(params.name) });
  app.defineRoute(contracts.policyVersions, {
    handler: ({ params }) => access.policyVersions(params.name),
  });
  app.defineRoute(contracts.putPolicy, {
    handler: ({ request, params, body }) => access.putPolicy(params.name, body, fleetActor(request)),
  });
  app.defineRoute(contracts.deletePolicy, {
    async handler({ request, params }) {
      await access.deletePolicy(params.name, fleetActor(request));
    },
  });
  for (const [c, attached] of [
    [contracts.attach, true],
    [contracts.detach, false],
  ] as const) {
    app.defineRoute(c, {
      async handler({ request, params, body }) {
        await access.setAttachment(params.name, { ...body, attached }, fleetActor(request));
      },
    });
  }
  app.defineRoute(contracts.simulate, {
    async handler({ request, body }) {
      await requireVisible(request, body.deviceId, deviceGroup);
      return access.simulate(body);
    },
  });
}

/** Zones and conduits are kept the same way: list, put by name, delete by name. */
function segmentationRoutes(app: FastifyInstance, access: AccessService): void {
  app.defineRoute(contracts.listZones, { handler: () => access.listZones() });
  app.defineRoute(contracts.putZone, {
    handler: ({ request, params, body }) =>
      access.putZone({ ...body, name: params.name }, fleetActor(request)),
  });
  app.defineRoute(contracts.listConduits, { handler: () => access.listConduits() });
  app.defineRoute(contracts.putConduit, {
    handler: ({ request, params, body }) =>
      access.putConduit({ ...body, name: params.name }, fleetActor(request)),
  });
  for (const [c, kind] of [
    [contracts.deleteZone, 'zone'],
    [contracts.deleteConduit, 'conduit'],
  ] as const) {
    app.defineRoute(c, {
      async handler({ request, params }) {
        await access.deleteSegment(kind, params.name, fleetActor(request));
      },
    });
  }
  app.defineRoute(contracts.nftables, {
    async handler({ query, reply }) {
      const brokerAddresses = query.broker
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      return reply.type('text/plain; charset=utf-8').send(await access.exportNftables({ brokerAddresses }));
    },
  });
}

function deviceAccessRoutes(app: FastifyInstance, access: AccessService, deviceGroup: DeviceGroup): void {
  app.defineRoute(contracts.describeAccess, {
    async handler({ request, params }) {
      await requireVisible(request, params.id, deviceGroup);
      return access.describeAccess(params.id);
    },
  });
  for (const [c, quarantined] of [
    [contracts.quarantine, true],
    [contracts.release, false],
  ] as const) {
    app.defineRoute(c, {
      async handler({ request, params, body }) {
        await requireVisible(request, params.id, deviceGroup);
        await access.setQuarantine(
          params.id,
          { quarantined, reason: body.reason },
          requestScope(request).actor,
        );
      },
    });
  }
}

/** Policies, attachments, simulation, zones, conduits, quarantine and a device's effective access. */
export function accessRoutes(access: AccessService, deviceGroup: DeviceGroup) {
  return function register(app: FastifyInstance) {
    policyRoutes(app, access, deviceGroup);
    segmentationRoutes(app, access);
    deviceAccessRoutes(app, access, deviceGroup);
  };
}
