import { createPrivateKey, type webcrypto } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { x509 } from './x509.ts';

/**
 * Key algorithms a device can generate. ECDSA P-256 is the default: small keys, fast on constrained
 * hardware, and universally supported by TLS stacks.
 */
export const keyTypes = ['ec-p256', 'ec-p384', 'rsa-2048'] as const;
export type KeyType = (typeof keyTypes)[number];

export function isKeyType(value: unknown): value is KeyType {
  return typeof value === 'string' && (keyTypes as readonly string[]).includes(value);
}

/** A freshly generated device key: the WebCrypto pair (to sign the CSR) and the private key as PEM. */
export interface DeviceKey {
  readonly keyType: KeyType;
  readonly keyPair: webcrypto.CryptoKeyPair;
  /** PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), what the identity store writes to `key.pem`. */
  readonly privateKeyPem: string;
}

/** A PKCS#10 certification request. */
export interface Csr {
  /** DER bytes, what EST sends (base64-encoded, RFC 7030 §4.2.1). */
  readonly der: Uint8Array;
  readonly pem: string;
}

type KeyAlgorithm = {
  readonly generate: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams;
  readonly sign: webcrypto.Algorithm | webcrypto.EcdsaParams;
};

const algorithms = {
  'ec-p256': {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
  // RFC 5480 §4: pair P-384 with SHA-384 so the signature is as strong as the key.
  'ec-p384': {
    generate: { name: 'ECDSA', namedCurve: 'P-384' },
    sign: { name: 'ECDSA', hash: 'SHA-384' },
  },
  'rsa-2048': {
    generate: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
} as const satisfies Record<KeyType, KeyAlgorithm>;

/**
 * Generates a new key pair on the device. The private key never leaves the device: only the CSR
 * (public key + proof of possession) is sent to the server.
 *
 * @example
 * ```ts
 * const key = await generateDeviceKey('ec-p256');
 * const csr = await createCsr('pump-17', key);
 * ```
 */
export async function generateDeviceKey(keyType: KeyType = 'ec-p256'): Promise<DeviceKey> {
  // Extractable only so the private key can be written to key.pem once; it is never sent anywhere.
  const keyPair = await globalThis.crypto.subtle.generateKey(algorithms[keyType].generate, true, [
    'sign',
    'verify',
  ]);
  const pkcs8 = await globalThis.crypto.subtle.exportKey('pkcs8', keyPair.privateKey);
  return { keyType, keyPair, privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/**
 * Builds a PKCS#10 request with subject `CN=<deviceId>`, signed by the device key (proof of
 * possession, RFC 2986 §3).
 *
 * @example
 * ```ts
 * const csr = await createCsr('pump-17', await generateDeviceKey());
 * await simpleEnroll({ serverUrl, deviceId: 'pump-17', token, csrDer: csr.der, ca });
 * ```
 */
export async function createCsr(deviceId: string, key: DeviceKey): Promise<Csr> {
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [deviceId] }],
    keys: key.keyPair,
    signingAlgorithm: algorithms[key.keyType].sign,
  });
  return { der: new Uint8Array(request.rawData), pem: request.toString('pem') };
}

/**
 * Tells which {@link KeyType} a PEM private key is, so renewal generates a key of the same kind.
 *
 * @example
 * ```ts
 * keyTypeOf(await readFile('key.pem', 'utf8')); // 'ec-p256'
 * ```
 */
export function keyTypeOf(privateKeyPem: string): KeyType {
  const key = createPrivateKey(privateKeyPem);
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec') {
    if (details?.namedCurve === 'prime256v1') return 'ec-p256';
    if (details?.namedCurve === 'secp384r1') return 'ec-p384';
  }
  if (key.asymmetricKeyType === 'rsa' && details?.modulusLength === 2048) return 'rsa-2048';
  throw new BulwarkError(
    'key_unsupported',
    `unsupported private key (${key.asymmetricKeyType ?? 'unknown'} ${details?.namedCurve ?? details?.modulusLength ?? ''})`.trim(),
  );
}
