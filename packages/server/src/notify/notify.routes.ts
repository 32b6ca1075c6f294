import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { fleetActor } from '../users/index.ts';
import { channelFormats, channelKinds, severities, syslogTransports } from './channel.types.ts';
import type { NotifyService } from './notify.service.ts';

const filterOut = z.object({
  types: z.array(z.string()),
  minSeverity: z.enum(severities).optional(),
});

/** What a client sees of a channel: never the signing secret (only once, on creation or rotation). */
export const channelOut = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(channelKinds),
  format: z.enum(channelFormats),
  target: z.string(),
  settings: z.object({
    transport: z.enum(syslogTransports).optional(),
    facility: z.number().int().optional(),
    ca: z.string().optional(),
  }),
  filter: filterOut,
  enabled: z.boolean(),
  cursor: z.number().int(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  status: z.object({
    attempts: z.number().int(),
    failing: z.boolean(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.number().int().nullable(),
    lastDeliveredAt: z.number().int().nullable(),
    lag: z.number().int(),
  }),
});

const withSecret = channelOut.extend({
  secret: z
    .string()
    .optional()
    .describe('The Standard Webhooks signing secret (whsec_…): shown this once, stored sealed'),
});

const filterIn = z.object({
  types: z.array(z.string().max(64)).max(50).optional(),
  minSeverity: z.enum(severities).optional(),
});

/** Notification channels: webhooks and syslog/CEF exporters that follow the audit log. */
export function notifyRoutes(service: NotifyService) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['notifications'];
    const params = z.object({ id: z.string().max(128) });

    app.get(
      '/api/v1/notification-channels',
      {
        config: { access: 'alerts:read' },
        schema: {
          tags,
          summary: 'Notification channels with their delivery status',
          response: { 200: z.array(channelOut) },
        },
      },
      () => service.list(),
    );

    app.post(
      '/api/v1/notification-channels',
      {
        config: { access: 'monitor:write' },
        schema: {
          tags,
          summary:
            'Add a webhook (Standard Webhooks signature) or syslog (RFC 5424 / CEF over TCP or TLS) channel; a webhook secret is returned once',
          body: z.object({
            name: z.string().max(64),
            kind: z.enum(channelKinds),
            target: z.string().max(2048).describe('https:// URL for webhooks, host:port for syslog'),
            format: z.enum(channelFormats).optional(),
            transport: z.enum(syslogTransports).optional(),
            facility: z.number().int().min(0).max(23).optional(),
            ca: z.string().max(65536).optional(),
            filter: filterIn.optional(),
            enabled: z.boolean().optional(),
            from: z
              .union([z.enum(['head', 'beginning']), z.number().int().min(1)])
              .optional()
              .describe('head (default): only new events; beginning: the whole audit log; or a seq'),
          }),
          response: { 201: withSecret },
        },
      },
      async (request, reply) =>
        reply.status(201).send(await service.create(request.body, fleetActor(request))),
    );

    app.get(
      '/api/v1/notification-channels/:id',
      {
        config: { access: 'alerts:read' },
        schema: { tags, summary: 'One channel (by id or name)', params, response: { 200: channelOut } },
      },
      (request) => service.get(request.params.id),
    );

    app.patch(
      '/api/v1/notification-channels/:id',
      {
        config: { access: 'monitor:write' },
        schema: {
          tags,
          summary:
            'Change a channel; a changed channel is retried at once. rotateSecret returns a new secret once',
          params,
          body: z.object({
            name: z.string().max(64).optional(),
            target: z.string().max(2048).optional(),
            format: z.enum(channelFormats).optional(),
            transport: z.enum(syslogTransports).optional(),
            facility: z.number().int().min(0).max(23).optional(),
            ca: z.string().max(65536).nullable().optional(),
            filter: filterIn.extend({ minSeverity: z.enum(severities).nullable().optional() }).optional(),
            enabled: z.boolean().optional(),
            rotateSecret: z.boolean().optional(),
          }),
          response: { 200: withSecret },
        },
      },
      async (request) => service.update(request.params.id, request.body, fleetActor(request)),
    );

    app.delete(
      '/api/v1/notification-channels/:id',
      {
        config: { access: 'monitor:write' },
        schema: { tags, summary: 'Remove a channel (what it has not delivered is not sent)', params },
      },
      async (request, reply) => {
        await service.remove(request.params.id, fleetActor(request));
        return reply.status(204).send();
      },
    );

    app.post(
      '/api/v1/notification-channels/:id/test',
      {
        config: { access: 'monitor:write' },
        schema: {
          tags,
          summary: 'Send a synthetic test message now and report whether the receiver took it',
          params,
          response: {
            200: z.object({ ok: z.boolean(), error: z.string().optional(), durationMs: z.number().int() }),
          },
        },
      },
      async (request) => service.test(request.params.id, fleetActor(request)),
    );
  };
}
