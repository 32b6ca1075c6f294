import { BulwarkError } from '@bulwark/protocol';
import { deviceIdOf } from '../events/index.ts';
import { can, type Permission } from './roles.ts';
import type { Scope } from './scope.ts';

/**
 * What a principal may want to see: a device (by id, or with its group already known), an alert (about a
 * device, or not) or an audit entry (about a subject).
 */
export type Visible =
  | { group: string | null }
  /** Something confined to device groups (a rollout's selector): visible when all of them are. */
  | { groups: readonly string[] | undefined }
  | { device: string }
  | { alert: { deviceId: string | null } }
  | { entry: { subject?: string | null } };

/** The device groups a principal is limited to, for a query filter; undefined = the whole fleet. */
export function groupsFilter(scope: Pick<Scope, 'groups'>): string[] | undefined {
  return scope.groups === null ? undefined : [...scope.groups];
}

/** Whether the whole fleet is in the principal's scope (fleet-wide rules, entries about no device). */
export const fleetWide = (scope: Pick<Scope, 'groups'>): boolean => scope.groups === null;

/** The rule itself: a principal limited to device groups sees only devices of those groups. */
export function seesGroup(scope: Pick<Scope, 'groups'>, group: string | null | undefined): boolean {
  return scope.groups === null || (typeof group === 'string' && scope.groups.includes(group));
}

/** Whether something confined to these device groups is within scope (none given = the whole fleet). */
export function seesAllGroups(scope: Pick<Scope, 'groups'>, groups: readonly string[] | undefined): boolean {
  return scope.groups === null || (!!groups?.length && groups.every((g) => seesGroup(scope, g)));
}

/** May this principal do X: its role (a token's own role) holds the permission. */
export function may(scope: Pick<Scope, 'role'>, permission: Permission): boolean {
  return can(scope.role, permission);
}

/** As `may`, refusing with `forbidden` and the reason. */
export function requirePermission(scope: Pick<Scope, 'role'>, permission: Permission): void {
  if (!may(scope, permission))
    throw new BulwarkError('forbidden', `your role (${scope.role}) lacks the permission ${permission}`);
}

export interface AuthzDeps {
  /** A device's group: null for none, undefined for no such device. */
  groupOf(deviceId: string): Promise<string | null | undefined>;
  now: () => number;
  /** How long a looked-up device group is reused (audit streams ask for many entries about one device). */
  cacheMs?: number;
}

export interface Authz {
  /** May this principal do X. */
  may(scope: Pick<Scope, 'role'>, permission: Permission): boolean;
  /** May this principal see this device / alert / audit entry. */
  sees(scope: Pick<Scope, 'groups'>, what: Visible): Promise<boolean>;
  /** As `sees`, answering `not_found` (as for something that does not exist) when it may not. */
  mustSee(scope: Pick<Scope, 'groups'>, what: Visible, notFound: string): Promise<void>;
}

const MAX_CACHED = 10_000;

/** The one authorization and visibility check, for routes, the SSE streams and the CLI. */
export function createAuthz(deps: AuthzDeps): Authz {
  const cacheMs = deps.cacheMs ?? 5000;
  const cache = new Map<string, { group: string | null; at: number }>();

  async function groupOf(deviceId: string): Promise<string | null> {
    const t = deps.now();
    let hit = cache.get(deviceId);
    if (!hit || t - hit.at > cacheMs) {
      hit = { group: (await deps.groupOf(deviceId)) ?? null, at: t };
      if (cache.size >= MAX_CACHED) cache.clear();
      cache.set(deviceId, hit);
    }
    return hit.group;
  }

  /** The device something is about: an id, or null when it is about no device. */
  function deviceOf(
    what: Exclude<Visible, { group: string | null } | { groups: readonly string[] | undefined }>,
  ): string | null {
    if ('device' in what) return what.device;
    if ('alert' in what) return what.alert.deviceId;
    return deviceIdOf(what.entry.subject) ?? null;
  }

  async function sees(scope: Pick<Scope, 'groups'>, what: Visible): Promise<boolean> {
    if (scope.groups === null) return true;
    if ('group' in what) return seesGroup(scope, what.group);
    if ('groups' in what) return seesAllGroups(scope, what.groups);
    // Limited to groups: only things about a device of those groups.
    const deviceId = deviceOf(what);
    return deviceId !== null && seesGroup(scope, await groupOf(deviceId));
  }

  return {
    may,
    sees,
    async mustSee(scope, what, notFound) {
      if (!(await sees(scope, what))) throw new BulwarkError('not_found', notFound);
    },
  };
}
