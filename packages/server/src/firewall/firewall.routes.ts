import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { fleetActor } from '../users/index.ts';
import { parseDuration } from '../config/index.ts';
import type { FirewallService } from './firewall.service.ts';
import { banKinds } from './firewall.ts';

/** Ban lists (addresses/CIDRs, devices and certificates, with expiry and origin). */
export function firewallRoutes(service: FirewallService) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['firewall'];
    app.get(
      '/api/v1/bans',
      {
        config: { access: 'policies:read' },
        schema: {
          tags,
          summary:
            'Bans, active and expired, with reason, origin (manual, or automatic and its rule) and expiry',
        },
      },
      () => service.list(),
    );
    app.post(
      '/api/v1/bans',
      {
        config: { access: 'policies:write' },
        schema: {
          tags,
          summary:
            'Ban an address/CIDR (refused at TCP accept), a device or a certificate serial (refused at CONNECT)',
          body: z.object({
            kind: z.enum(banKinds),
            value: z.string().max(64),
            reason: z.string().max(256),
            ttl: z.string().max(16).optional(),
          }),
        },
      },
      async (request, reply) => {
        const ttlMs = request.body.ttl === undefined ? undefined : parseDuration(request.body.ttl);
        if (request.body.ttl !== undefined && ttlMs === undefined)
          throw new BulwarkError('validation_failed', 'ttl must be a duration such as 15m or 7d');
        return reply.status(201).send(await service.add({ ...request.body, ttlMs }, fleetActor(request)));
      },
    );
    app.delete(
      '/api/v1/bans/:id',
      {
        config: { access: 'policies:write' },
        schema: { tags, params: z.object({ id: z.string().max(64) }) },
      },
      async (request, reply) => {
        await service.remove(request.params.id, fleetActor(request));
        return reply.status(204).send();
      },
    );
  };
}
