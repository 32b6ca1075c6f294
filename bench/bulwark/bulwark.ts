/**
 * The one place the bench reaches into packages/server beyond its public door: the test support (the
 * real server on a temporary data directory, in-process enrollment), the policy module it measures and
 * the X.509 library (an app's certificate request).
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
// eslint-disable-next-line no-restricted-imports -- the X.509 library the server uses, to make an app's CSR as its own tests do; not exported by @bulwark/server
export { x509 } from '../../packages/server/src/pki/index.ts';
export { createLogger, createPlatform, testConfig } from '@bulwark/server';
