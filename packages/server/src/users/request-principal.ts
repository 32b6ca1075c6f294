import type { FastifyRequest } from 'fastify';
import { BulwarkError } from '@bulwark/protocol';
import { actorOf } from './user.types.ts';

/**
 * Who is asking, as the guard set it, for route handlers: the actor string for events, the device groups
 * the user is limited to (null = all), and whether a device group is within reach.
 */
export function requestScope(request: FastifyRequest) {
  const p = request.principal;
  if (!p) throw new BulwarkError('unauthenticated', 'not signed in');
  const groups = p.groups;
  return {
    actor: actorOf(p),
    groups,
    visible: (group: string | null) => groups === null || (group !== null && groups.includes(group)),
  };
}

/** The actor for a write that affects the whole fleet (policies, zones, conduits, bans): not for users limited to groups. */
export function fleetActor(request: FastifyRequest): string {
  const scope = requestScope(request);
  if (scope.groups !== null)
    throw new BulwarkError(
      'forbidden',
      'users limited to device groups cannot change fleet-wide access rules',
    );
  return scope.actor;
}
