export { appInProcess, type AppIdentity } from './app-identity.ts';
export {
  compilePolicies,
  DEFAULT_POLICY,
  POLICY_VERSION,
  type AttachedPolicy,
  createLogger,
  createPlatform,
  enrollInProcess,
  startTestServer,
  testConfig,
  type TestServer,
} from './bulwark.ts';
export { bulwarkJson } from './cli.ts';
