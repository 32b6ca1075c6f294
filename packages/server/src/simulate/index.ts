/**
 * `bulwark simulate`: a fleet of simulated devices built on the device SDK, run against a running server
 * (enrollment over EST, MQTT over mutual TLS, telemetry with a daily rhythm), and attacks that the
 * platform's detectors answer (docs/demo.md).
 */
export { attackKinds, expectedOf, parseAttackKinds, type AttackKind, type AttackReport } from './attacks.ts';
export { reachServer, runFleet, type FleetOptions, type FleetSummary } from './fleet.ts';
export {
  planFleet,
  simulatedDeviceId,
  type FleetPlan,
  type PlannedDevice,
  type RegistrationDeps,
} from './registration.ts';
export { deviceModels, type DeviceModel } from './rhythm.ts';
