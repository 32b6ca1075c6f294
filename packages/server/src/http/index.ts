export {
  createHttpApp,
  createDeviceApp,
  httpListenerFacts,
  HSTS,
  OPENAPI_PATH,
  type HttpAppOptions,
  type HttpTls,
  type NotFoundFallback,
  type RouteEntry,
} from './app.ts';
export { toProblem, fromFrameworkError, type Problem } from './problem.ts';
export { CSRF_HEADER, type GuardDeps } from './guard.ts';
export { CREDENTIAL_ACCESS, type RouteAccess } from './access.ts';
export { deviceListenerRedirects, type DeviceRoute } from './device-redirect.ts';
export {
  defineRoute,
  type HandlerResult,
  type PrincipalFor,
  type RequestPrincipal,
  type RouteDefinition,
  type RouteInput,
  type ServedContract,
} from './define-route.ts';
