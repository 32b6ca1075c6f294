import type { FastifyRequest } from 'fastify';
import { BulwarkError } from '@bulwark/protocol';
import type { Principal } from './user.types.ts';

/** The principal the guard set for a route that is not public (a route without one is a wiring mistake). */
export function principalIn(request: FastifyRequest): Principal & { sessionIdHash?: string } {
  const p = request.principal;
  if (!p) throw new BulwarkError('unauthenticated', 'not signed in');
  return p;
}
