import { createEventRateLimit, type EventBus } from '../events/index.ts';
import {
  issueAppCertificate,
  revokeAppCertificates,
  type AppCertificateRequest,
} from './app-certificates.ts';
import {
  certificateStanding,
  checkConnection,
  checkDeviceConnection,
  type ConnectionIdentity,
} from './connection.ts';
import { createCrls, type RevocationReason } from './crl.ts';
import { enroll, reenroll, type EnrollInput, type ReenrollInput } from './enrollment.ts';
import { certificateForReport, createLostSeen } from './lost-seen.ts';
import type { PkiContext, PkiServiceDeps } from './pki.context.ts';
import { pkiFacts } from './pki.facts.ts';
import { revokeDevice } from './revocation.ts';
import { x509 } from './x509.ts';

export type { PkiServiceDeps } from './pki.context.ts';
export type { ConnectionCheck, ConnectionIdentity, DeviceConnectionCheck } from './connection.ts';
export type { AppCertificate, AppCertificateRequest } from './app-certificates.ts';
export { revocationReasons, type RevocationReason } from './crl.ts';
export type { Issued } from './enrollment.ts';
export type { PkiFacts, PkiCertificateFact } from './pki.facts.ts';

/** The certificate authority's use cases over its deps: enrollment, revocation, CRLs, the broker's checks. */
export function createPkiService(deps: PkiServiceDeps) {
  const { material } = deps;
  const base = { ...deps, refusals: createEventRateLimit({ max: 20, windowMs: 60_000 }) };
  const lostSeen = createLostSeen(base);
  const ctx: PkiContext = { ...base, lostSeen };
  const chain = [material.issuing.cert, material.root.cert];
  const crls = createCrls(deps);
  return {
    caCertificates: () => chain,
    chainPem: () => material.chainPem,
    /** Key and certificate for the TLS listeners. */
    serverTls: () => ({ keyPem: material.server.keyPem, certPem: material.server.certPem }),
    /** RFC 7030 §4.1.3: the CA certificates as base64 certs-only PKCS#7. */
    caCertsPkcs7: () => new x509.X509Certificates(chain).export('base64'),
    enroll: (input: EnrollInput) => enroll(ctx, input),
    reenroll: (input: ReenrollInput) => reenroll(ctx, input),
    /** Revokes the device and every certificate it holds, with their events, in one transaction. */
    revokeDevice: (deviceId: string, actor: string, reason: RevocationReason = 'cessationOfOperation') =>
      revokeDevice(ctx, { deviceId, actor, reason }),
    /** The broker's check: a device certificate (client id = device id), or an app's (`kind: 'app'`). */
    checkConnection: (id: ConnectionIdentity) => checkConnection(ctx, id),
    /** For device-only listeners (TUF repository): an application certificate is refused. */
    checkDevice: (id: ConnectionIdentity) => checkDeviceConnection(ctx, id),
    /** An application's client certificate from its CSR, with its event, in one transaction. */
    issueAppCertificate: (request: AppCertificateRequest) => issueAppCertificate(ctx, request),
    /** Inside the apps module's revocation transaction: every certificate of the app, with its events. */
    revokeAppCertificates,
    crl: crls.crl,
    revocationListsPem: crls.revocationListsPem,
    certificateStanding: (serial: string) => certificateStanding(ctx, serial),
    /**
     * In the server: a lost device's certificate refused by the MQTT listener (`tls.handshake_failed` with its
     * serial) becomes `device.lost_seen` via mqtt (the device listener's checks record it via https). Returns
     * the unsubscribe.
     */
    followLostDevices: (bus: Pick<EventBus, 'on'>) => lostSeen.follow(bus),
    /** A device certificate by serial with its public key and standing (attestation's signed reports). */
    certificateForReport: (_deviceId: string, serial: string) => certificateForReport(deps.db, serial),
    /** For the compliance checks: the CA chain, the server certificate, device and app certificates. */
    complianceFacts: () => pkiFacts(ctx),
  };
}

export type PkiService = ReturnType<typeof createPkiService>;
