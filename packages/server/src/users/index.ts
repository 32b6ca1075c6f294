export {
  createUserService,
  type UserService,
  type UserFacts,
  type UserComplianceFacts,
  type AccountComplianceFact,
  type SessionTicket,
  type SessionPrincipal,
} from './user.service.ts';
export {
  createWebauthnService,
  webauthnOrigins,
  type WebauthnService,
  type WebauthnCredentialInfo,
} from './webauthn.ts';
export { createThrottle, type Throttle } from './throttle.ts';
// Roles, permissions and the request's scope are authz's; re-exported for callers that import them from here.
export {
  permissions,
  roles,
  rolePermissions,
  can,
  roleWithin,
  isRole,
  twoFactorRoles,
  requestScope,
  fleetActor,
  type Permission,
  type Role,
} from '../authz/index.ts';
export {
  actorOf,
  inScope,
  sessionStates,
  type Principal,
  type SessionState,
  type User,
} from './user.types.ts';
export { checkNewPassword, hashPassword, MIN_PASSWORD_LENGTH } from './password.ts';
export { totpCode, matchTotp } from './totp.ts';
export { authRoutes } from './auth.routes.ts';
export { webauthnRoutes } from './webauthn.routes.ts';
export { userRoutes } from './user.routes.ts';
export { SESSION_COOKIE, setSessionCookie, clearSessionCookie } from './session-cookie.ts';
