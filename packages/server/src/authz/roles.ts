/** What a route or an action needs. Each HTTP route declares exactly one access level (see http/guard). */
export const permissions = [
  'devices:read',
  'devices:write',
  'devices:enroll',
  'devices:revoke',
  'audit:read',
  'audit:verify',
  'events:read',
  'users:read',
  'users:write',
  'policies:read',
  'policies:write',
  'devices:quarantine',
  'firmware:read',
  'firmware:write',
  'firmware:deploy',
  'firmware:keys',
  'alerts:read',
  'alerts:write',
  'monitor:write',
  'metrics:read',
  'apps:read',
  'apps:write',
  'privacy:read',
  'privacy:write',
  'privacy:decrypt',
  /** Compliance: read results and reports; run, attest and request waivers; approve waivers; the baseline. */
  'compliance:read',
  'compliance:write',
  'compliance:approve',
  'baseline:write',
  /** Risk: read assets, TARAs and the register; save TARAs, annotate assets, manage risks and feeds. */
  'risk:read',
  'risk:write',
] as const;
export type Permission = (typeof permissions)[number];

export const roles = ['admin', 'security-officer', 'operator', 'auditor', 'viewer'] as const;
export type Role = (typeof roles)[number];

/** Least privilege: each role holds only what its job needs. */
export const rolePermissions: Record<Role, readonly Permission[]> = {
  admin: permissions,
  'security-officer': [
    'devices:read',
    'devices:write',
    'devices:revoke',
    'audit:read',
    'audit:verify',
    'events:read',
    'users:read',
    'policies:read',
    'policies:write',
    'devices:quarantine',
    'firmware:read',
    'firmware:deploy',
    'firmware:keys',
    'alerts:read',
    'alerts:write',
    'monitor:write',
    'metrics:read',
    'apps:read',
    'apps:write',
    'privacy:read',
    'compliance:read',
    'compliance:write',
    'compliance:approve',
    'risk:read',
    'risk:write',
  ],
  operator: [
    'devices:read',
    'devices:write',
    'devices:enroll',
    'events:read',
    'policies:read',
    'firmware:read',
    'firmware:deploy',
    'alerts:read',
    'alerts:write',
    'metrics:read',
    'apps:read',
    'apps:write',
  ],
  auditor: [
    'devices:read',
    'audit:read',
    'audit:verify',
    'events:read',
    'users:read',
    'policies:read',
    'firmware:read',
    'alerts:read',
    'apps:read',
    'privacy:read',
    'compliance:read',
    'risk:read',
  ],
  viewer: ['devices:read', 'firmware:read', 'alerts:read'],
};

const sets = new Map(roles.map((r) => [r, new Set<Permission>(rolePermissions[r])]));

export function can(role: Role, permission: Permission): boolean {
  return sets.get(role)?.has(permission) ?? false;
}

/** True when every permission of `candidate` is also held by `holder` (a token never exceeds its creator). */
export function roleWithin(candidate: Role, holder: Role): boolean {
  return rolePermissions[candidate].every((p) => can(holder, p));
}

/** Roles for which a second factor is always mandatory. */
export const twoFactorRoles: readonly Role[] = ['admin', 'security-officer'];

export const isRole = (value: unknown): value is Role =>
  typeof value === 'string' && (roles as readonly string[]).includes(value);
