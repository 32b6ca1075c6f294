export {
  compileDeviceAccess,
  DEFAULT_POLICY,
  QUARANTINE_POLICY,
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
export { matches, covers, intersects, isValidFilter, isValidTopic } from './topic-filter.ts';
export { substitute, type PolicyContext } from './variables.ts';
export { exportNftables, type NftablesOptions } from './nftables.ts';
