export {
  createAttestationService,
  type AttestationService,
  type AttestationDeps,
  type AttestationSettings,
  type AttestationComplianceFacts,
  type DeviceAttestation,
  type QuoteInput,
  type RegisterAnswer,
  type SecurityReportView,
} from './attestation.service.ts';
export {
  attestationRoutes,
  attestationDeviceRoutes,
  type AttestationRoutesDeps,
  type AttestationDeviceRoutesDeps,
  type DeviceCheck,
  type PeerOf,
} from './attestation.routes.ts';
export {
  createPhysicalSites,
  resolveWhen,
  type PhysicalSites,
  type PhysicalSitesDeps,
  type PhysicalComplianceFacts,
  type PhysicalSiteFacts,
  type SiteView,
  type SiteAccessView,
  type SiteInput,
  type GrantInput,
  type RevokeInput,
} from './physical.service.ts';
export { physicalRoutes, type PhysicalSitesApi } from './physical.routes.ts';
