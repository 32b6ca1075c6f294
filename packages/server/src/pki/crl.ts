import type { Db } from '../store/index.ts';
import type { CaKeyPair, PkiMaterial } from './ca.ts';
import * as certs from './cert.store.ts';
import { derInteger, SIGNING_ALG, x509 } from './x509.ts';

const CRL_VALIDITY = 24 * 3_600_000;

export const reasonCode = {
  unspecified: x509.X509CrlReason.unspecified,
  keyCompromise: x509.X509CrlReason.keyCompromise,
  superseded: x509.X509CrlReason.superseded,
  cessationOfOperation: x509.X509CrlReason.cessationOfOperation,
} as const;
export type RevocationReason = keyof typeof reasonCode;
export const revocationReasons = Object.keys(reasonCode) as RevocationReason[];

const reasonOf = (stored: string | null): x509.X509CrlReason =>
  Object.hasOwn(reasonCode, stored ?? 'unspecified')
    ? reasonCode[(stored ?? 'unspecified') as RevocationReason]
    : x509.X509CrlReason.unspecified;

/** A CRL (RFC 5280 §5) signed by `ca`, valid for CRL_VALIDITY from `t`. */
async function signCrl(
  ca: CaKeyPair,
  crl: { t: number; number: number; entries: x509.X509CrlEntryParams[] },
): Promise<Buffer> {
  const signed = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subject,
    thisUpdate: new Date(crl.t),
    nextUpdate: new Date(crl.t + CRL_VALIDITY),
    signingAlgorithm: SIGNING_ALG,
    signingKey: ca.key,
    entries: crl.entries,
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      new x509.Extension('2.5.29.20', false, derInteger(crl.number)), // cRLNumber, RFC 5280 §5.2.3
    ],
  });
  return Buffer.from(signed.rawData);
}

const toPem = (der: Buffer) =>
  `-----BEGIN X509 CRL-----\n${der.toString('base64').replace(/.{1,64}/g, '$&\n')}-----END X509 CRL-----\n`;

/** The CRLs of the chain, each reissued when its content changes and halfway through its validity. */
export function createCrls(deps: { db: Db; material: PkiMaterial; now: () => number }) {
  const { db, material, now } = deps;
  let crlCache: { key: string; der: Buffer; at: number } | undefined;
  let crlNumber = 0;
  let rootCrlCache: { der: Buffer; at: number } | undefined;

  /** DER CRL of the issuing CA (RFC 5280 §5), regenerated when the set of revocations changes. */
  async function crl(): Promise<Buffer> {
    const t = now();
    const revoked = await certs.revokedUnexpired(db, t);
    const key = revoked.map((r) => r.serial).join(',');
    // Reissued when the revocations change, and halfway through its validity so it never goes stale.
    if (crlCache && crlCache.key === key && t - crlCache.at < CRL_VALIDITY / 2) return crlCache.der;
    crlNumber = Math.max(crlNumber + 1, Math.floor(t / 1000));
    const der = await signCrl(material.issuing, {
      t,
      number: crlNumber,
      entries: revoked.map((r) => ({
        serialNumber: r.serial,
        revocationDate: new Date(r.revoked_at ?? t),
        reason: reasonOf(r.revocation_reason),
      })),
    });
    crlCache = { key, der, at: t };
    return der;
  }

  /**
   * PEM CRLs of every CA in the chain, for a TLS listener that checks client certificates against them.
   * Node sets OpenSSL's X509_V_FLAG_CRL_CHECK_ALL when a CRL is given, so the issuing CA's own certificate
   * needs one from the root too (RFC 5280 §6.3: a certificate without a current CRL from its issuer fails).
   * The root never revokes the issuing CA here (a compromise means a new installation), so its CRL is empty.
   */
  async function revocationListsPem(): Promise<string[]> {
    const t = now();
    if (!rootCrlCache || t - rootCrlCache.at >= CRL_VALIDITY / 2) {
      rootCrlCache = {
        der: await signCrl(material.root, { t, number: Math.floor(t / 1000), entries: [] }),
        at: t,
      };
    }
    return [toPem(await crl()), toPem(rootCrlCache.der)];
  }

  return { crl, revocationListsPem };
}
