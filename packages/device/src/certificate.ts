import { createHash } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { x509 } from './x509.ts';

/** What the agent needs to know about a certificate. Times are epoch milliseconds. */
export interface CertificateInfo {
  readonly subject: string;
  readonly issuer: string;
  readonly serialNumber: string;
  readonly notBefore: number;
  readonly notAfter: number;
  /** SHA-256 of the DER encoding, `AB:CD:…` (the format of `openssl x509 -fingerprint -sha256`). */
  readonly fingerprint: string;
}

/**
 * Reads the first certificate of a PEM string.
 *
 * @example
 * ```ts
 * const { notAfter } = certificateInfo(await readFile('cert.pem', 'utf8'));
 * ```
 */
export function certificateInfo(pem: string): CertificateInfo {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
  } catch (err) {
    throw new BulwarkError('validation_failed', 'not a PEM certificate', { cause: err });
  }
  return describeCertificate(cert);
}

export function describeCertificate(cert: x509.X509Certificate): CertificateInfo {
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    serialNumber: cert.serialNumber,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    fingerprint: fingerprintOf(new Uint8Array(cert.rawData)),
  };
}

/** Splits a PEM bundle (a CA chain) into certificates, in order. */
export function parsePemChain(pem: string): x509.X509Certificate[] {
  let certs: x509.X509Certificate[];
  try {
    certs = x509.PemConverter.decode(pem).map((der) => new x509.X509Certificate(der));
  } catch (err) {
    throw new BulwarkError('validation_failed', 'not a PEM certificate chain', { cause: err });
  }
  if (certs.length === 0) throw new BulwarkError('validation_failed', 'no certificate in PEM data');
  return certs;
}

export function toPem(certs: readonly x509.X509Certificate[]): string {
  return certs.map((cert) => cert.toString('pem')).join('\n') + '\n';
}

/**
 * The self-signed certificate of a chain: the trust anchor whose fingerprint an operator compares
 * out of band before trusting it (RFC 7030 §4.1.1).
 */
export async function rootOf(certs: readonly x509.X509Certificate[]): Promise<x509.X509Certificate> {
  for (const cert of certs) {
    if (cert.subject === cert.issuer && (await cert.isSelfSigned())) return cert;
  }
  throw new BulwarkError('validation_failed', 'CA chain contains no self-signed root certificate');
}

/** SHA-256 fingerprint of DER bytes as upper-case hex pairs joined by `:`. */
export function fingerprintOf(der: Uint8Array): string {
  const hex = createHash('sha256').update(der).digest('hex').toUpperCase();
  return hex.match(/../g)?.join(':') ?? '';
}

/**
 * Normalises an operator-typed fingerprint (any case, with or without `:` or spaces, optional
 * `sha256:` prefix) to the {@link fingerprintOf} format, or `undefined` if it is not 32 bytes of hex.
 */
export function normalizeFingerprint(text: string): string | undefined {
  const hex = text
    .trim()
    .replace(/^sha-?256[:=]?/i, '')
    .replace(/[\s:]/g, '')
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) return undefined;
  return hex.match(/../g)?.join(':');
}
