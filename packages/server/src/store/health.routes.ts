import type { FastifyInstance } from 'fastify';
import { api } from '@bulwark/protocol';
import type {} from '../http/index.ts'; // app.defineRoute
import type { Store } from './store.ts';

/**
 * Liveness and readiness for load balancers and orchestrators, without credentials (they reveal only
 * whether the database answers). `/health` answers 200 while the process serves at all: a database outage
 * is not a reason to restart a node, which keeps its MQTT sessions and recovers by itself. `/ready`
 * answers 503 (problem+json `unavailable`, with Retry-After) while the database does not answer, so a load
 * balancer sends HTTP requests to nodes that can serve them.
 */
export function healthRoutes(store: Pick<Store, 'health' | 'ping'>) {
  return function register(app: FastifyInstance) {
    app.defineRoute(api.health.health, {
      handler() {
        const { state, since } = store.health();
        return { status: 'ok' as const, store: { state, since } };
      },
    });

    app.defineRoute(api.health.ready, {
      async handler() {
        await store.ping(); // throws `unavailable` (503) when the database does not answer
        const { state, since } = store.health();
        return { status: 'ready' as const, store: { state, since } };
      },
    });
  };
}
