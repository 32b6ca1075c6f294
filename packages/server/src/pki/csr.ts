import { createPublicKey } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { describeSpki, x509 } from './x509.ts';

export interface ValidCsr {
  csr: x509.Pkcs10CertificateRequest;
  /** e.g. `ec-P-256`, `rsa-3072`. */
  keyAlgorithm: string;
}

const MAX_CSR_BYTES = 16 * 1024;
const curves: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384' };
/**
 * The one RSA public exponent accepted: F4 = 65537. NIST SP 800-56B Rev. 2 §6.2.1 and FIPS 186-5 §A.1.1
 * require an odd e with 2^16 < e < 2^256; e = 3 is outside that range and is what Bleichenbacher's
 * e = 3 signature forgery (and Coppersmith-style attacks on unpadded small-e RSA) rely on. Every
 * mainstream key generator uses 65537, so requiring exactly it refuses nothing legitimate.
 */
const RSA_EXPONENT = 65537n;

/** The public exponent of an RSA SubjectPublicKeyInfo (RFC 8017 §3.1), read by Node's own key parser. */
function rsaExponent(spki: ArrayBuffer): bigint | undefined {
  return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }).asymmetricKeyDetails
    ?.publicExponent;
}

/** Accepts base64 DER (RFC 7030 §4.2.1) and, for convenience, PEM. */
function decodeBody(body: string): Buffer {
  const text = body.trim();
  if (text === '')
    throw new BulwarkError('csr_invalid', 'request body is empty: expected a base64-encoded PKCS#10 request');
  const pem =
    /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(
      text,
    );
  const b64 = (pem ? (pem[1] ?? '') : text).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 === 1) {
    throw new BulwarkError(
      'csr_invalid',
      'request body is not base64: expected a base64-encoded PKCS#10 request',
    );
  }
  const der = Buffer.from(b64, 'base64');
  if (der.length > MAX_CSR_BYTES)
    throw new BulwarkError('payload_too_large', `certification request exceeds ${MAX_CSR_BYTES} bytes`);
  return der;
}

/**
 * Parses a PKCS#10 request, enforces the key policy (ECDSA P-256/P-384, RSA of 2048-8192 bits with
 * e = 65537; see docs/enrollment.md "Accepted keys") and checks
 * the proof of possession (the request's signature, RFC 2986 §3). Nothing of the request's subject or
 * extensions is used: the server sets them.
 */
export async function validateCsr(body: string): Promise<ValidCsr> {
  const der = decodeBody(body);
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(new Uint8Array(der));
    void csr.publicKey.rawData; // force the lazy parts to parse here, not later
  } catch {
    throw new BulwarkError('csr_invalid', 'request body is not a DER-encoded PKCS#10 certification request');
  }
  let key: ReturnType<typeof describeSpki>;
  try {
    key = describeSpki(csr.publicKey.rawData);
  } catch {
    throw new BulwarkError('key_unsupported', 'the request carries a public key that cannot be read');
  }
  let keyAlgorithm: string;
  if (key.type === 'ec') {
    const curve = curves[key.curve ?? ''];
    if (!curve) {
      throw new BulwarkError(
        'key_unsupported',
        `EC curve ${key.curve ?? 'unknown'} is not accepted: use P-256 or P-384`,
      );
    }
    keyAlgorithm = `ec-${curve}`;
  } else if (key.type === 'rsa') {
    const bits = key.bits ?? 0;
    if (bits < 2048)
      throw new BulwarkError(
        'key_unsupported',
        `RSA key of ${bits} bits is too weak: at least 2048 bits are required`,
      );
    if (bits > 8192)
      throw new BulwarkError(
        'key_unsupported',
        `RSA key of ${bits} bits is larger than the 8192 bits accepted`,
      );
    const exponent = rsaExponent(csr.publicKey.rawData);
    if (exponent !== RSA_EXPONENT)
      throw new BulwarkError(
        'key_unsupported',
        `RSA public exponent ${exponent ?? 'unknown'} is not accepted: the exponent must be 65537 (NIST SP 800-56B Rev. 2 §6.2.1)`,
      );
    keyAlgorithm = `rsa-${bits}`;
  } else {
    throw new BulwarkError(
      'key_unsupported',
      `${key.type} keys are not accepted: use ECDSA P-256/P-384 or RSA of at least 2048 bits with e = 65537`,
    );
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid)
    throw new BulwarkError(
      'csr_signature_invalid',
      'the certification request signature does not verify (no proof of key possession)',
    );
  return { csr, keyAlgorithm };
}
