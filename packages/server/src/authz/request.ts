import type { FastifyRequest } from 'fastify';
import { BulwarkError } from '@bulwark/protocol';
import { fleetWide, seesGroup, type Authz, type Visible } from './check.ts';
import { principalActor, type Scope } from './scope.ts';

/**
 * Who is asking, as the guard set it, for route handlers: the principal's scope (role and device groups,
 * null = all), the actor string for events, and whether a device group is within reach (`seesGroup`).
 */
export function requestScope(request: FastifyRequest): {
  scope: Scope;
  actor: string;
  groups: string[] | null;
  visible: (group: string | null) => boolean;
} {
  const p = request.principal;
  if (!p) throw new BulwarkError('unauthenticated', 'not signed in');
  return {
    scope: p,
    actor: principalActor(p),
    groups: p.groups,
    visible: (group) => seesGroup(p, group),
  };
}

/** The actor for a write that affects the whole fleet (policies, zones, conduits, bans): not for users limited to groups. */
export function fleetActor(request: FastifyRequest): string {
  const { scope, actor } = requestScope(request);
  if (!fleetWide(scope))
    throw new BulwarkError(
      'forbidden',
      'users limited to device groups cannot change fleet-wide access rules',
    );
  return actor;
}

/**
 * The check for what a request may see, for routes and the SSE streams: `sees(request, { entry })` for an audit
 * entry, `{ alert }`, `{ device: id }`, `{ group }`; `mustSee` answers `not_found` when it may not.
 */
export function requestVisibility(authz: Pick<Authz, 'sees' | 'mustSee'>) {
  return {
    sees: (request: FastifyRequest, what: Visible) => authz.sees(requestScope(request).scope, what),
    mustSee: (request: FastifyRequest, what: Visible, notFound: string) =>
      authz.mustSee(requestScope(request).scope, what, notFound),
  };
}

export type RequestVisibility = ReturnType<typeof requestVisibility>;
