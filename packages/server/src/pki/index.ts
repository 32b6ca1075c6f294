export { hasRootKey, loadOrCreatePki, serverNames, type PkiMaterial } from './ca.ts';
export {
  createPkiService,
  revocationReasons,
  type PkiService,
  type RevocationReason,
  type ConnectionCheck,
  type ConnectionIdentity,
  type DeviceConnectionCheck,
  type AppCertificate,
  type AppCertificateRequest,
  type Issued,
  type PkiFacts,
  type PkiCertificateFact,
} from './pki.service.ts';
export { validateCsr } from './csr.ts';
export { estRoutes, estReenrollRoutes } from './est.routes.ts';
export { normalizeSerial, x509 } from './x509.ts';
export { serverTlsProfile, refuseRenegotiation, TLS12_CIPHERS, MIN_TLS_VERSION } from './tls-profile.ts';
export { deviceCertificateSummaries, appCertificateSummaries } from './cert.store.ts';
export { revokeAppCertificates, APP_CERT_OU } from './app-certificates.ts';
export { revokeDeviceCertificates } from './revocation.ts';
export { certificateForReport } from './lost-seen.ts';
