export {
  createDeviceService,
  eraseAcross,
  hashToken,
  requireStatus,
  statusRefusal,
  type DeviceDenial,
  type DeviceFacts,
  type DeviceService,
  type DeviceRetirementDeps,
  type Decommissioned,
  type DeviceView,
  type TokenCheck,
} from './device.service.ts';
export type { DeviceFleetFacts, DeviceComplianceFact, DeviceComplianceFacts } from './device.facts.ts';
export type { CertificateSummary, CertificatesOf } from './device.subject.ts';
export {
  deviceStates,
  deviceStatuses,
  effectiveState,
  statusAllows,
  type Device,
  type DeviceState,
  type DeviceStatus,
  type DeviceOperation,
} from './device.types.ts';
export { deviceRoutes, type DeviceRoutesDeps } from './device.routes.ts';
export {
  parseCsv,
  importRows,
  IMPORT_MAX_BYTES,
  IMPORT_MAX_ROWS,
  type CsvRecord,
  type ImportRow,
  type ImportResult,
} from './device-import.ts';
