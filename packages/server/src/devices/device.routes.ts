import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { parseDuration } from '../config/index.ts';
import { requestScope } from '../users/index.ts';
import type { DeviceService } from './device.service.ts';
import { deviceStates, deviceStatuses, type Device } from './device.types.ts';

const time = z.number().int().nullable();
const deviceOut = z.object({
  id: z.string(),
  group: z.string().nullable(),
  status: z.enum(deviceStatuses).describe('lifecycle status'),
  state: z.enum(deviceStates).describe('effective state: the status, or quarantined'),
  attributes: z.record(z.string(), z.string()),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  enrolledAt: time,
  revokedAt: time,
  quarantinedAt: time,
  lastSeenAt: time.describe('last MQTT connect or disconnect (epoch ms)'),
  online: z.boolean(),
  connectedSince: time,
  certificateExpiresAt: time.describe('notAfter of its newest certificate not revoked'),
});
const deviceViewOut = deviceOut.extend({
  zone: z.string().nullable(),
  firmwareVersion: z.string().nullable(),
  firmwareReportedAt: time,
});
const deviceShowOut = deviceViewOut.extend({
  recentDenials: z.array(
    z.object({
      at: z.number().int(),
      type: z.enum(['mqtt.publish_denied', 'mqtt.subscribe_denied', 'mqtt.connect_refused']),
      topic: z.string().nullable(),
      reason: z.string(),
    }),
  ),
});

const revocationReasons = ['unspecified', 'keyCompromise', 'superseded', 'cessationOfOperation'] as const;

export interface DeviceRoutesDeps {
  devices: DeviceService;
  /** The PKI's revocation (device and all its certificates). */
  revokeDevice(id: string, actor: string, reason: (typeof revocationReasons)[number]): Promise<string[]>;
}

/** The devices API. A user limited to device groups sees only those: other devices answer 404, not 403. */
export function deviceRoutes(deps: DeviceRoutesDeps) {
  const { devices } = deps;
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['devices'];
    const params = z.object({ id: z.string().max(64) });

    async function visibleDevice(request: FastifyRequest, id: string): Promise<Device> {
      const device = await devices.find(id);
      if (!device || !requestScope(request).visible(device.group))
        throw new BulwarkError('not_found', `device ${id} does not exist`);
      return device;
    }

    app.get(
      '/api/v1/devices',
      {
        config: { access: 'devices:read' },
        schema: {
          tags,
          summary: 'List devices (keyset pagination: pass the last id as `after`)',
          querystring: z.object({
            group: z.string().max(64).optional(),
            status: z.enum(deviceStatuses).optional().describe('lifecycle status'),
            state: z.enum(deviceStates).optional().describe('effective state, e.g. quarantined'),
            after: z.string().max(64).optional(),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: { 200: z.object({ devices: z.array(deviceViewOut), next: z.string().nullable() }) },
        },
      },
      async (request) => {
        const { groups } = requestScope(request);
        const q = request.query;
        const list = await devices.list({ ...q, groupsIn: groups ?? undefined });
        return {
          devices: await devices.views(list),
          next: list.length === q.limit ? (list[list.length - 1]?.id ?? null) : null,
        };
      },
    );

    app.get(
      '/api/v1/devices/:id',
      {
        config: { access: 'devices:read' },
        schema: {
          tags,
          summary:
            'One device with its zone, firmware and latest refusals (denied publish/subscribe, refused connect)',
          params,
          response: { 200: deviceShowOut },
        },
      },
      async (request) => devices.show((await visibleDevice(request, request.params.id)).id),
    );

    app.post(
      '/api/v1/devices',
      {
        config: { access: 'devices:write' },
        schema: {
          tags,
          summary: 'Register a device',
          body: z.object({ id: z.string().max(64), group: z.string().max(64).nullable().optional() }),
          response: { 201: deviceOut },
        },
      },
      async (request, reply) => {
        const { actor, visible } = requestScope(request);
        if (!visible(request.body.group ?? null))
          throw new BulwarkError('forbidden', 'you may add devices only to your own groups');
        return reply.status(201).send(await devices.add(request.body, actor));
      },
    );

    app.patch(
      '/api/v1/devices/:id',
      {
        config: { access: 'devices:write' },
        schema: {
          tags,
          summary: 'Change group and/or attributes',
          params,
          body: z.object({
            group: z.string().max(64).nullable().optional(),
            attributes: z.record(z.string(), z.string()).optional(),
          }),
          response: { 200: deviceOut },
        },
      },
      async (request) => {
        const { actor, visible } = requestScope(request);
        await visibleDevice(request, request.params.id);
        if (request.body.group !== undefined && !visible(request.body.group))
          throw new BulwarkError('forbidden', 'you may move devices only into your own groups');
        return devices.update(request.params.id, request.body, actor);
      },
    );

    app.post(
      '/api/v1/devices/:id/enrollment-token',
      {
        config: { access: 'devices:enroll' },
        schema: {
          tags,
          summary: 'One-time enrollment token (shown once)',
          params,
          body: z.object({ ttl: z.string().max(16).optional() }).default({}),
          response: { 201: z.object({ token: z.string(), expiresAt: z.number().int() }) },
        },
      },
      async (request, reply) => {
        await visibleDevice(request, request.params.id);
        const ttl = request.body.ttl === undefined ? undefined : parseDuration(request.body.ttl);
        if (request.body.ttl !== undefined && ttl === undefined)
          throw new BulwarkError('validation_failed', 'ttl must be a duration such as 30m or 24h');
        return reply
          .status(201)
          .send(await devices.issueToken(request.params.id, requestScope(request).actor, ttl));
      },
    );

    app.post(
      '/api/v1/devices/:id/revoke',
      {
        config: { access: 'devices:revoke' },
        schema: {
          tags,
          summary: 'Revoke the device and all its certificates (live sessions dropped within 1 s)',
          params,
          body: z
            .object({ reason: z.enum(revocationReasons).default('cessationOfOperation') })
            .default({ reason: 'cessationOfOperation' }),
          response: { 200: z.object({ revokedCertificates: z.array(z.string()) }) },
        },
      },
      async (request) => {
        await visibleDevice(request, request.params.id);
        return {
          revokedCertificates: await deps.revokeDevice(
            request.params.id,
            requestScope(request).actor,
            request.body.reason,
          ),
        };
      },
    );

    for (const [name, disabled] of [
      ['disable', true],
      ['enable', false],
    ] as const) {
      app.post(
        `/api/v1/devices/:id/${name}`,
        {
          config: { access: 'devices:write' },
          schema: {
            tags,
            summary: disabled
              ? 'Refuse the device until enabled again'
              : 'Let a disabled device connect again',
            params,
            body: z.object({ reason: z.string().max(256).optional() }).default({}),
            response: { 200: deviceOut },
          },
        },
        async (request) => {
          await visibleDevice(request, request.params.id);
          return devices.setDisabled(
            request.params.id,
            disabled,
            requestScope(request).actor,
            request.body.reason,
          );
        },
      );
    }
  };
}
