import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it before it loads
import { createHash, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export { x509 };

export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function generateCaKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

export async function exportPkcs8(key: CryptoKey): Promise<Buffer> {
  return Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
}

export async function importSigningKey(pkcs8: Buffer): Promise<CryptoKey> {
  return webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, false, ['sign']);
}

export function pkcs8ToPem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64}-----END PRIVATE KEY-----\n`;
}

/**
 * 16 random bytes, positive and without a leading zero byte, so the hex form is canonical
 * (RFC 5280 §4.1.2.2: unique, positive, at most 20 octets, unpredictable).
 */
export function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

/** Canonical serial form: lowercase hex without leading zeros (Node and x509 libraries differ). */
export function normalizeSerial(serial: string): string {
  return serial
    .toLowerCase()
    .replace(/[^0-9a-f]/g, '')
    .replace(/^0+(?=.)/, '');
}

export function fingerprint(cert: x509.X509Certificate): string {
  return createHash('sha256').update(Buffer.from(cert.rawData)).digest('hex');
}

/** DER INTEGER for small non-negative numbers (the CRL number, RFC 5280 §5.2.3). */
export function derInteger(n: number): Uint8Array<ArrayBuffer> {
  let hex = Math.max(0, Math.floor(n)).toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let bytes = Buffer.from(hex, 'hex');
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return new Uint8Array([0x02, bytes.length, ...bytes]);
}

/** Describes a public key in SPKI DER: 'ec-P-256', 'rsa-2048', 'ed25519'… and its parameters. */
export function describeSpki(spki: ArrayBuffer): { type: string; curve?: string; bits?: number } {
  const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const details = key.asymmetricKeyDetails ?? {};
  return {
    type: key.asymmetricKeyType ?? 'unknown',
    ...(details.namedCurve ? { curve: details.namedCurve } : {}),
    ...(details.modulusLength ? { bits: details.modulusLength } : {}),
  };
}
