/**
 * The one place the bench reaches into packages/server beyond its public door: the test support (the
 * real server on a temporary data directory, in-process enrollment) and the policy module it measures.
 * Neither is exported by `@bulwark/server`; importing them here keeps the bench from copying them.
 */
// eslint-disable-next-line no-restricted-imports -- test support is not part of @bulwark/server's public API; the bench reuses it rather than copying it
export {
  enrollInProcess,
  startTestServer,
  type TestServer,
} from '../../packages/server/src/test-support/server.ts';
// eslint-disable-next-line no-restricted-imports -- the policy engine the policy micro-benchmark measures; not exported by @bulwark/server
export {
  compilePolicies,
  DEFAULT_POLICY,
  POLICY_VERSION,
  type AttachedPolicy,
} from '../../packages/server/src/policy/index.ts';
export { createLogger, createPlatform, testConfig } from '@bulwark/server';
