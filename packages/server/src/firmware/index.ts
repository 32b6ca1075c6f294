export {
  createFirmware,
  type Firmware,
  type FirmwareDeps,
  type FirmwareSettings,
} from './firmware.service.ts';
export { firmwareRoutes, type FirmwareRoutesDeps } from './firmware.routes.ts';
export { tufRoutes, type TufRoutesDeps, type DeviceCheck } from './tuf.routes.ts';
export type { Release, NewRelease, ReleaseStatus } from './release.types.ts';
export type { Rollout, RolloutDevice, NewRollout, PhaseSummary } from './rollout.types.ts';
export type { RolloutSelector, RolloutSettings, RolloutStatus } from './rollout.plan.ts';
export {
  generateTufKey,
  keyIdOf,
  privateKeyFromPem,
  publicKeyFrom,
  type TufPrivateKey,
  type TufPublicKey,
} from './tuf-keys.ts';
export { signDocument, roleOfDocument, type TufStatus } from './tuf.repository.ts';
export { tufRoles, type TufRole } from './tuf.store.ts';
export { parseSbom } from './sbom.ts';
export type { DeviceReferenceValues } from './reference-values.ts';
export type { Fleet, Deployment, StaleDevice } from './fleet.service.ts';
export type { FirmwareComplianceFacts } from './firmware.facts.ts';
