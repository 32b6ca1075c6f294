import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { fleetActor } from '../users/index.ts';
import { parseDuration } from '../config/index.ts';
import type { FirewallService } from './firewall.service.ts';

/** Ban lists (addresses/CIDRs and devices, with expiry). */
export function firewallRoutes(service: FirewallService) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const tags = ['firewall'];
    app.get(
      '/api/v1/bans',
      { config: { access: 'policies:read' }, schema: { tags, summary: 'Bans, active and expired' } },
      () => service.list(),
    );
    app.post(
      '/api/v1/bans',
      {
        config: { access: 'policies:write' },
        schema: {
          tags,
          summary: 'Ban an address/CIDR or a device (refused at TCP accept, or at CONNECT for devices)',
          body: z.object({
            kind: z.enum(['address', 'device']),
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
