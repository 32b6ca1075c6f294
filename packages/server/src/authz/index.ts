export {
  permissions,
  roles,
  rolePermissions,
  can,
  roleWithin,
  isRole,
  twoFactorRoles,
  type Permission,
  type Role,
} from './roles.ts';
export { localOperator, principalActor, type Scope, type ActingPrincipal } from './scope.ts';
export {
  createAuthz,
  may,
  requirePermission,
  seesGroup,
  seesAllGroups,
  fleetWide,
  groupsFilter,
  type Authz,
  type AuthzDeps,
  type Visible,
} from './check.ts';
export { requestScope, fleetActor, requestVisibility, type RequestVisibility } from './request.ts';
