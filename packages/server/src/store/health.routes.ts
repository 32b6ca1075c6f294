import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { storeStates } from './availability.ts';
import type { Store } from './store.ts';

/**
 * Liveness and readiness for load balancers and orchestrators, without credentials (they reveal only
 * whether the database answers). `/health` answers 200 while the process serves at all: a database outage
 * is not a reason to restart a node, which keeps its MQTT sessions and recovers by itself. `/ready`
 * answers 503 (problem+json `unavailable`, with Retry-After) while the database does not answer, so a load
 * balancer sends HTTP requests to nodes that can serve them.
 */
export function healthRoutes(store: Pick<Store, 'health' | 'ping'>) {
  return function register(root: FastifyInstance) {
    const app = root.withTypeProvider<ZodTypeProvider>();
    const storeOut = z.object({
      state: z.enum(storeStates),
      since: z.number().int().describe('when it last changed state (epoch ms)'),
    });

    app.get(
      '/health',
      {
        config: { access: 'public' },
        schema: { response: { 200: z.object({ status: z.literal('ok'), store: storeOut }) } },
      },
      () => {
        const { state, since } = store.health();
        return { status: 'ok' as const, store: { state, since } };
      },
    );

    app.get(
      '/ready',
      {
        config: { access: 'public' },
        schema: { response: { 200: z.object({ status: z.literal('ready'), store: storeOut }) } },
      },
      async () => {
        await store.ping(); // throws `unavailable` (503) when the database does not answer
        const { state, since } = store.health();
        return { status: 'ready' as const, store: { state, since } };
      },
    );
  };
}
