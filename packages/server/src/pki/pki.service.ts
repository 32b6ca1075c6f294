import { BulwarkError, connackCodes, type ConnackCode } from '@bulwark/protocol';
import { requireStatus, statusAllows, type DeviceService } from '../devices/index.ts';
import { createEventRateLimit, type EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import type { CaKeyPair, PkiMaterial } from './ca.ts';
import { certRow } from './ca.ts';
import * as certs from './cert.store.ts';
import { validateCsr } from './csr.ts';
import { derInteger, newSerial, normalizeSerial, SIGNING_ALG, x509 } from './x509.ts';

const BACKDATE = 5 * 60_000;
const CRL_VALIDITY = 24 * 3_600_000;

export interface PkiServiceDeps {
  db: Db;
  material: PkiMaterial;
  devices: Pick<DeviceService, 'checkToken' | 'completeEnrollment' | 'markRevoked' | 'find' | 'lockStatus'>;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  deviceCertValidityMs: number;
}

export interface Issued {
  certificate: x509.X509Certificate;
  /** base64 certs-only PKCS#7 (RFC 7030 §4.2.3). */
  pkcs7: string;
}

/** What the broker learns about a TLS client before accepting its CONNECT. */
export interface ConnectionIdentity {
  clientId: string;
  certSerial: string | undefined;
  certCn: string | undefined;
}

export type ConnectionCheck =
  | { ok: true; deviceId: string; group: string | null; serial: string }
  | { ok: false; returnCode: ConnackCode; reason: string };

const reasonCode = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
} as const;
export type RevocationReason = keyof typeof reasonCode;
export const revocationReasons = Object.keys(reasonCode) as RevocationReason[];

/** A CRL (RFC 5280 §5) signed by `ca`, valid for CRL_VALIDITY from `t`. */
async function signCrl(
  ca: CaKeyPair,
  t: number,
  number: number,
  entries: x509.X509CrlEntryParams[],
): Promise<Buffer> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(t),
    nextUpdate: new Date(t + CRL_VALIDITY),
    signingAlgorithm: SIGNING_ALG,
    signingKey: ca.key,
    entries,
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      new x509.Extension('2.5.29.20', false, derInteger(number)), // cRLNumber, RFC 5280 §5.2.3
    ],
  });
  return Buffer.from(crl.rawData);
}

const toPem = (der: Buffer) =>
  `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END X509 CRL-----\n`;

export function createPkiService(deps: PkiServiceDeps) {
  const { db, material, devices, events, now } = deps;
  const chain = [material.issuing.cert, material.root.cert];
  let crlCache: { key: string; der: Buffer; at: number } | undefined;
  let crlNumber = 0;
  let rootCrlCache: { der: Buffer; at: number } | undefined;
  const refusals = createEventRateLimit({ max: 20, windowMs: 60_000 });

  /** Signs a device certificate: subject, SAN and extensions are the server's, only the public key is the device's. */
  async function sign(deviceId: string, publicKey: x509.PublicKey): Promise<x509.X509Certificate> {
    const t = now();
    return x509.X509CertificateGenerator.create({
      serialNumber: newSerial(),
      subject: [{ CN: [deviceId] }, { O: ['Bulwark devices'] }],
      issuer: material.issuing.cert.subject,
      notBefore: new Date(t - BACKDATE),
      notAfter: new Date(t + deps.deviceCertValidityMs),
      publicKey,
      signingKey: material.issuing.key,
      signingAlgorithm: SIGNING_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:bulwark:device:${deviceId}` }]),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(material.issuing.cert),
      ],
    });
  }

  const pkcs7Of = (cert: x509.X509Certificate) => new x509.X509Certificates([cert]).export('base64');

  async function refused(
    operation: string,
    err: unknown,
    actor: string,
    subject: string | undefined,
    remoteAddress?: string,
  ): Promise<never> {
    const e = BulwarkError.from(err);
    const { record, suppressed } = refusals.admit(remoteAddress ?? 'unknown');
    if (!record) throw e;
    await events.emit({
      type: 'enrollment.refused',
      actor,
      subject,
      data: {
        operation,
        reason: e.message,
        code: e.code,
        ...(remoteAddress ? { remoteAddress } : {}),
        ...(suppressed ? { suppressed } : {}),
      },
    });
    throw e;
  }

  /** DER CRL of the issuing CA (RFC 5280 §5), regenerated when the set of revocations changes. */
  async function crl(): Promise<Buffer> {
    const t = now();
    const revoked = await certs.revokedUnexpired(db, t);
    const key = revoked.map((r) => r.serial).join(',');
    // Reissued when the revocations change, and halfway through its validity so it never goes stale.
    if (crlCache && crlCache.key === key && t - crlCache.at < CRL_VALIDITY / 2) return crlCache.der;
    crlNumber = Math.max(crlNumber + 1, Math.floor(t / 1000));
    const der = await signCrl(
      material.issuing,
      t,
      crlNumber,
      revoked.map((r) => ({
        serialNumber: r.serial,
        revocationDate: new Date(r.revoked_at ?? t),
        reason:
          reasonCode[(r.revocation_reason ?? 'unspecified') as RevocationReason] ??
          x509.X509CrlReason.unspecified,
      })),
    );
    crlCache = { key, der, at: t };
    return der;
  }

  return {
    caCertificates: () => chain,
    chainPem: () => material.chainPem,
    /** Key and certificate for the TLS listeners. */
    serverTls: () => ({ keyPem: material.server.keyPem, certPem: material.server.certPem }),
    /** RFC 7030 §4.1.3: the CA certificates as base64 certs-only PKCS#7. */
    caCertsPkcs7: () => new x509.X509Certificates(chain).export('base64'),

    /** EST simpleenroll with a one-time token (RFC 7030 §4.2.1, §3.2.3 HTTP-based client authentication). */
    async enroll(input: {
      deviceId: string;
      token: string;
      csr: string;
      remoteAddress?: string;
    }): Promise<Issued> {
      const actor = `device:${input.deviceId}`;
      let issued: x509.X509Certificate;
      let keyAlgorithm: string;
      let superseded: string[];
      try {
        const check = await devices.checkToken(input.deviceId, input.token);
        const valid = await validateCsr(input.csr);
        keyAlgorithm = valid.keyAlgorithm;
        issued = await sign(input.deviceId, valid.csr.publicKey);
        const t = now();
        superseded = await db.transaction().execute(async (trx) => {
          await devices.completeEnrollment(trx, check);
          // A token re-provisions the device: certificates it held before are superseded.
          const previous = (await certs.activeDeviceCertificates(trx, input.deviceId)).map((c) => c.serial);
          await certs.revokeCertificates(trx, previous, t, 'superseded');
          await certs.insertCertificate(trx, certRow(issued, 'device', input.deviceId, t));
          return previous;
        });
      } catch (err) {
        // Until the token checks out, the claimed id is only a claim: the actor is the address.
        return refused(
          'simpleenroll',
          err,
          `anonymous@${input.remoteAddress ?? 'unknown'}`,
          `device:${input.deviceId}`,
          input.remoteAddress,
        );
      }
      for (const serial of superseded) {
        await events.emit({
          type: 'certificate.revoked',
          actor,
          subject: actor,
          data: { serial, reason: 'superseded' },
        });
      }
      await events.emit({
        type: 'certificate.issued',
        actor,
        subject: actor,
        data: {
          serial: normalizeSerial(issued.serialNumber),
          operation: 'simpleenroll',
          keyAlgorithm,
          notAfter: issued.notAfter.getTime(),
          ...(input.remoteAddress ? { remoteAddress: input.remoteAddress } : {}),
        },
      });
      return { certificate: issued, pkcs7: pkcs7Of(issued) };
    },

    /**
     * EST simplereenroll (RFC 7030 §4.2.2): the client authenticates with its current certificate, already
     * verified against our CA by TLS; it must still be ours, unrevoked, and belong to an active device.
     */
    async reenroll(input: {
      peerCertSerial: string | undefined;
      csr: string;
      remoteAddress?: string;
    }): Promise<Issued> {
      let actor = `anonymous@${input.remoteAddress ?? 'unknown'}`;
      let deviceId: string | undefined;
      let issued: x509.X509Certificate;
      let keyAlgorithm: string;
      try {
        if (!input.peerCertSerial) {
          throw new BulwarkError(
            'unauthenticated',
            'simplereenroll requires the current device certificate as TLS client certificate',
          );
        }
        const current = await certs.getCertificate(db, normalizeSerial(input.peerCertSerial));
        if (!current || current.kind !== 'device' || !current.device_id) {
          throw new BulwarkError(
            'unauthenticated',
            'the client certificate is not a device certificate issued here',
          );
        }
        deviceId = current.device_id;
        actor = `device:${deviceId}`;
        if (current.revoked_at !== null)
          throw new BulwarkError('device_revoked', 'the client certificate has been revoked');
        if (current.not_after <= now())
          throw new BulwarkError('unauthenticated', 'the client certificate has expired');
        const device = await devices.find(deviceId);
        if (!device) throw new BulwarkError('device_revoked', 'device no longer exists');
        requireStatus(device, 'reenroll');
        const valid = await validateCsr(input.csr);
        keyAlgorithm = valid.keyAlgorithm;
        const id = deviceId;
        const serial = current.serial;
        const cert = await sign(id, valid.csr.publicKey);
        issued = cert;
        // Re-checked in the transaction that stores the certificate: a revocation meanwhile wins.
        await db.transaction().execute(async (trx) => {
          await devices.lockStatus(trx, id, 'reenroll');
          if ((await certs.getCertificate(trx, serial))?.revoked_at !== null) {
            throw new BulwarkError('device_revoked', 'the client certificate has been revoked');
          }
          await certs.insertCertificate(trx, certRow(cert, 'device', id, now()));
        });
      } catch (err) {
        return refused('simplereenroll', err, actor, deviceId && `device:${deviceId}`, input.remoteAddress);
      }
      await events.emit({
        type: 'certificate.issued',
        actor,
        subject: actor,
        data: {
          serial: normalizeSerial(issued.serialNumber),
          operation: 'simplereenroll',
          keyAlgorithm,
          notAfter: issued.notAfter.getTime(),
          ...(input.remoteAddress ? { remoteAddress: input.remoteAddress } : {}),
        },
      });
      return { certificate: issued, pkcs7: pkcs7Of(issued) };
    },

    /** Revokes the device and every certificate it holds, in one transaction; effective on the broker within a second. */
    async revokeDevice(
      deviceId: string,
      actor: string,
      reason: RevocationReason = 'cessationOfOperation',
    ): Promise<string[]> {
      if (!Object.hasOwn(reasonCode, reason))
        throw new BulwarkError('validation_failed', `reason must be one of ${revocationReasons.join(', ')}`);
      const t = now();
      const serials = await db.transaction().execute(async (trx) => {
        await devices.markRevoked(trx, deviceId);
        const active = (await certs.activeDeviceCertificates(trx, deviceId)).map((c) => c.serial);
        await certs.revokeCertificates(trx, active, t, reason);
        return active;
      });
      for (const serial of serials) {
        await events.emit({
          type: 'certificate.revoked',
          actor,
          subject: `device:${deviceId}`,
          data: { serial, reason },
        });
      }
      await events.emit({
        type: 'device.revoked',
        actor,
        subject: `device:${deviceId}`,
        data: { revokedCertificates: serials, reason },
      });
      return serials;
    },

    /** The broker's identity check for a CONNECT over mutual TLS. */
    async checkConnection(id: ConnectionIdentity): Promise<ConnectionCheck> {
      // [MQTT-3.1.3-8], [MQTT-3.1.3-9]: identifier problems are answered with 0x02.
      if (id.clientId === '')
        return {
          ok: false,
          returnCode: connackCodes.identifierRejected,
          reason: 'empty client id: the client id must equal the device id',
        };
      if (!id.certSerial || !id.certCn)
        return {
          ok: false,
          returnCode: connackCodes.notAuthorized,
          reason: 'no verified client certificate',
        };
      if (id.certCn !== id.clientId) {
        return {
          ok: false,
          returnCode: connackCodes.identifierRejected,
          reason: `client id "${id.clientId}" does not match the certificate's device id "${id.certCn}"`,
        };
      }
      const cert = await certs.getCertificate(db, normalizeSerial(id.certSerial));
      if (!cert || cert.kind !== 'device' || cert.device_id !== id.certCn) {
        return {
          ok: false,
          returnCode: connackCodes.notAuthorized,
          reason: 'certificate was not issued to this device',
        };
      }
      if (cert.revoked_at !== null)
        return {
          ok: false,
          returnCode: connackCodes.notAuthorized,
          reason: `certificate revoked (${cert.revocation_reason ?? 'unspecified'})`,
        };
      const device = await devices.find(cert.device_id);
      if (!device) return { ok: false, returnCode: connackCodes.notAuthorized, reason: 'unknown device' };
      if (!statusAllows(device.status, 'connect'))
        return { ok: false, returnCode: connackCodes.notAuthorized, reason: `device is ${device.status}` };
      return { ok: true, deviceId: device.id, group: device.group, serial: cert.serial };
    },

    crl,

    /**
     * PEM CRLs of every CA in the chain, for a TLS listener that checks client certificates against them.
     * Node sets OpenSSL's X509_V_FLAG_CRL_CHECK_ALL when a CRL is given, so the issuing CA's own certificate
     * needs one from the root too (RFC 5280 §6.3: a certificate without a current CRL from its issuer fails).
     * The root never revokes the issuing CA here (a compromise means a new installation), so its CRL is empty.
     */
    async revocationListsPem(): Promise<string[]> {
      const t = now();
      if (!rootCrlCache || t - rootCrlCache.at >= CRL_VALIDITY / 2) {
        rootCrlCache = { der: await signCrl(material.root, t, Math.floor(t / 1000), []), at: t };
      }
      return [toPem(await crl()), toPem(rootCrlCache.der)];
    },

    /**
     * Whether a certificate that chains to our CA may speak to the broker at all: issued here to a device,
     * not revoked, and its device still exists. Checked right after the TLS handshake, before any MQTT byte is
     * read; the CRL in the handshake covers revocations, this covers certificates the store does not know
     * (signed, then the store was restored from an older backup) and devices that no longer exist.
     */
    async certificateStanding(serial: string): Promise<{ ok: true } | { ok: false; reason: string }> {
      const cert = await certs.getCertificate(db, normalizeSerial(serial));
      if (!cert || cert.kind !== 'device' || !cert.device_id)
        return { ok: false, reason: 'certificate_unknown' };
      if (cert.revoked_at !== null) return { ok: false, reason: 'certificate_revoked' };
      if (!(await devices.find(cert.device_id))) return { ok: false, reason: 'device_unknown' };
      return { ok: true };
    },
  };
}

export type PkiService = ReturnType<typeof createPkiService>;
