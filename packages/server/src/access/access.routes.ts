import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { fleetActor, requestScope } from '../users/index.ts';
import { attachmentKinds, type AccessService } from './access.service.ts';

/** Device-side scope: a user limited to device groups may only look at devices of those groups. */
async function requireVisible(
  request: FastifyRequest,
  deviceId: string,
  group: (id: string) => Promise<string | null | undefined>,
) {
  const groups = request.principal?.groups;
  if (groups === null || groups === undefined) return;
  const g = await group(deviceId);
  if (g === undefined || g === null || !groups.includes(g))
    throw new BulwarkError('not_found', `device ${deviceId} does not exist`);
}

const decisionOut = z.object({
  allow: z.boolean(),
  reason: z.string(),
  statement: z.string().optional(),
  policy: z.string().optional(),
  deviceId: z.string(),
  action: z.string(),
  topic: z.string().nullable(),
  zone: z.string().nullable(),
});

/** Policies, attachments, simulation, zones, conduits, quarantine and a device's effective access. */
export function accessRoutes(
  access: AccessService,
  deviceGroup: (id: string) => Promise<string | null | undefined>,
) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['policies'];
    const name = z.object({ name: z.string().max(64) });

    app.get(
      '/api/v1/policies',
      {
        config: { access: 'policies:read' },
        schema: { tags, summary: 'Policies (built-in ones included) and their attachments' },
      },
      () => access.listPolicies(),
    );
    app.get(
      '/api/v1/policies/:name',
      { config: { access: 'policies:read' }, schema: { tags, params: name } },
      (request) => access.getPolicy(request.params.name),
    );
    app.get(
      '/api/v1/policies/:name/versions',
      { config: { access: 'policies:read' }, schema: { tags, params: name, summary: 'Every saved version' } },
      (request) => access.policyVersions(request.params.name),
    );
    app.put(
      '/api/v1/policies/:name',
      {
        config: { access: 'policies:write' },
        schema: {
          tags,
          summary:
            'Create or replace a policy (a new version); warns when it locks out devices or grants everything',
          params: name,
          body: z.unknown(),
          response: {
            200: z.object({
              name: z.string(),
              version: z.number().int(),
              warnings: z.array(z.object({ code: z.string(), statement: z.string(), message: z.string() })),
            }),
          },
        },
      },
      (request) => access.putPolicy(request.params.name, request.body, fleetActor(request)),
    );
    app.delete(
      '/api/v1/policies/:name',
      { config: { access: 'policies:write' }, schema: { tags, params: name } },
      async (request, reply) => {
        await access.deletePolicy(request.params.name, fleetActor(request));
        return reply.status(204).send();
      },
    );
    const attachment = z.object({ kind: z.enum(attachmentKinds), target: z.string().max(64).default('*') });
    app.post(
      '/api/v1/policies/:name/attachments',
      {
        config: { access: 'policies:write' },
        schema: {
          tags,
          params: name,
          body: attachment,
          summary: 'Attach to all devices, a group, a zone or a device',
        },
      },
      async (request, reply) => {
        await access.attach(
          request.params.name,
          request.body.kind,
          request.body.target,
          fleetActor(request),
          true,
        );
        return reply.status(204).send();
      },
    );
    app.delete(
      '/api/v1/policies/:name/attachments',
      { config: { access: 'policies:write' }, schema: { tags, params: name, body: attachment } },
      async (request, reply) => {
        await access.attach(
          request.params.name,
          request.body.kind,
          request.body.target,
          fleetActor(request),
          false,
        );
        return reply.status(204).send();
      },
    );
    app.post(
      '/api/v1/policies/simulate',
      {
        config: { access: 'policies:read' },
        schema: {
          tags,
          summary:
            'Would this device be allowed to connect/publish/subscribe/receive? Names the deciding statement',
          body: z.object({
            deviceId: z.string().max(64),
            action: z.enum(['connect', 'publish', 'subscribe', 'receive']),
            topic: z.string().max(1024).optional(),
            sourceAddress: z.string().max(64).optional(),
          }),
          response: { 200: decisionOut },
        },
      },
      async (request) => {
        await requireVisible(request, request.body.deviceId, deviceGroup);
        return access.simulate(request.body);
      },
    );

    const stags = ['segmentation'];
    // Zones and conduits are kept the same way: list, put by name, delete by name.
    for (const [kind, plural, summary, list, put] of [
      [
        'zone',
        'zones',
        'Zones (IEC 62443-3-2)',
        () => access.listZones(),
        (i: unknown, a: string) => access.putZone(i, a),
      ],
      [
        'conduit',
        'conduits',
        'Conduits between zones',
        () => access.listConduits(),
        (i: unknown, a: string) => access.putConduit(i, a),
      ],
    ] as const) {
      app.get(
        `/api/v1/${plural}`,
        { config: { access: 'policies:read' }, schema: { tags: stags, summary } },
        () => list(),
      );
      app.put(
        `/api/v1/${plural}/:name`,
        {
          config: { access: 'policies:write' },
          schema: { tags: stags, params: name, body: z.record(z.string(), z.unknown()) },
        },
        (request) => put({ ...request.body, name: request.params.name }, fleetActor(request)),
      );
      app.delete(
        `/api/v1/${plural}/:name`,
        { config: { access: 'policies:write' }, schema: { tags: stags, params: name } },
        async (request, reply) => {
          await access.deleteSegment(kind, request.params.name, fleetActor(request));
          return reply.status(204).send();
        },
      );
    }
    app.get(
      '/api/v1/segmentation/nftables',
      {
        config: { access: 'policies:read' },
        schema: {
          tags: stags,
          summary: 'The zones and conduits as an nftables ruleset (default drop)',
          querystring: z.object({
            broker: z.string().max(512).optional().describe('comma-separated Bulwark host addresses'),
          }),
        },
      },
      async (request, reply) => {
        const brokerAddresses = request.query.broker
          ?.split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        return reply.type('text/plain; charset=utf-8').send(await access.exportNftables({ brokerAddresses }));
      },
    );

    const dtags = ['devices'];
    const id = z.object({ id: z.string().max(64) });
    app.get(
      '/api/v1/devices/:id/access',
      {
        config: { access: 'devices:read' },
        schema: {
          tags: dtags,
          params: id,
          summary: 'What the device can do now: zone, quarantine, applied and dropped statements',
        },
      },
      async (request) => {
        await requireVisible(request, request.params.id, deviceGroup);
        return access.describeAccess(request.params.id);
      },
    );
    for (const [path, quarantined] of [
      ['quarantine', true],
      ['release', false],
    ] as const) {
      app.post(
        `/api/v1/devices/:id/${path}`,
        {
          config: { access: 'devices:quarantine' },
          schema: {
            tags: dtags,
            params: id,
            body: z.object({ reason: z.string().max(256).optional() }).default({}),
            summary: quarantined
              ? 'Quarantine: only devices/{id}/quarantine/# and its command topic remain'
              : 'End quarantine',
          },
        },
        async (request, reply) => {
          await requireVisible(request, request.params.id, deviceGroup);
          await access.setQuarantine(
            request.params.id,
            quarantined,
            requestScope(request).actor,
            request.body.reason,
          );
          return reply.status(204).send();
        },
      );
    }
  };
}
