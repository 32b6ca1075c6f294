export {
  compileDeviceAccess,
  DEFAULT_POLICY,
  QUARANTINE_POLICY,
  APP_DEFAULT_POLICY,
  mqttActions,
  type MqttAction,
  type DevicePrincipal,
} from './device-access.ts';
export {
  compilePolicies,
  type Decision,
  type DeviceAccess,
  type AttachedPolicy,
  type AppliedStatement,
  type CompileInput,
} from './compile.ts';
export {
  parsePolicyDocument,
  lintPolicy,
  policyDocumentSchema,
  policyActions,
  POLICY_VERSION,
  addressIn,
  cidrSchema,
  targetsSchema,
  type Targets,
  type PolicyDocument,
  type PolicyAction,
  type Statement,
} from './document.ts';
export {
  zoneSchema,
  conduitSchema,
  zoneOf,
  ownerOf,
  conduitFor,
  ZONE_TOPIC_ROOT,
  type Zone,
  type Conduit,
  type Segmentation,
} from './zones.ts';
export { matches, levelsMatch, covers, intersects, isValidFilter, isValidTopic } from './topic-filter.ts';
export { substitute, type PolicyContext } from './variables.ts';
export { exportNftables, type NftablesOptions } from './nftables.ts';
export {
  parseGrant,
  formatGrant,
  formatTargets,
  grantsToPolicy,
  appPolicyName,
  type GrantResult,
} from './grants.ts';
export { reachOf, targetsHold, type DeviceFacts, type Reach } from './targets.ts';
