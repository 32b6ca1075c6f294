import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import {
  certificateInfo,
  describeCertificate,
  normalizeFingerprint,
  parsePemChain,
  rootOf,
  toPem,
  type CertificateInfo,
} from './certificate.ts';
import { assertBasicUserId, getCaCerts, simpleEnroll } from './est-client.ts';
import { openIdentityStore } from './identity-store.ts';
import { createCsr, generateDeviceKey, type KeyType } from './keys.ts';
import { parseMqttUrl, parseServerUrl } from './urls.ts';

export interface EnrollOptions {
  /** EST server, `https://host[:port]`. */
  readonly serverUrl: string;
  readonly deviceId: string;
  /** One-time enrollment token issued by the operator for this device. */
  readonly token: string;
  /** Identity directory; see {@link openIdentityStore}. */
  readonly dir: string;
  /**
   * PEM CA chain to trust. When absent the chain is fetched from `/cacerts` without TLS verification
   * and must then be authenticated by `caFingerprint`, or explicitly accepted with `trustOnFirstUse`.
   */
  readonly ca?: string | undefined;
  /** SHA-256 fingerprint the CA root must have (any case, `:` optional); enrollment is refused otherwise. */
  readonly caFingerprint?: string | undefined;
  /**
   * Enroll with neither `ca` nor `caFingerprint`, trusting whatever root the server presents.
   * Default `false`: enrollment is then refused, with the root's fingerprint in the error, before the
   * token is sent. A machine in the middle could take the token when this is `true`.
   */
  readonly trustOnFirstUse?: boolean | undefined;
  /** Default `ec-p256`. */
  readonly keyType?: KeyType | undefined;
  /** Broker URL to remember in `identity.json`; by default the agent uses the server host, port 8883. */
  readonly mqttUrl?: string | undefined;
  /** Replace an identity already in `dir`. Without it enrollment refuses, so a key is never lost by accident. */
  readonly force?: boolean | undefined;
  /** Called with the fetched root before the token is sent, when trusting on first use (`trustOnFirstUse`). */
  readonly onTrustOnFirstUse?: ((root: CertificateInfo) => void) | undefined;
  readonly timeoutMs?: number | undefined;
}

export interface EnrollResult {
  readonly deviceId: string;
  readonly dir: string;
  readonly certificate: CertificateInfo;
  readonly caRoot: CertificateInfo;
  /** True when the CA chain came from the server unverified and was accepted because of `trustOnFirstUse`. */
  readonly trustedOnFirstUse: boolean;
}

/**
 * Enrolls a device: establishes trust in the CA, generates a key on the device, sends a CSR with
 * the enrollment token (`simpleenroll`) and stores key, certificate and CA chain in `dir`.
 * Without `ca` or `caFingerprint` it refuses (`forbidden`, the server's root fingerprint in the
 * message) before the token is sent, unless `trustOnFirstUse` is set.
 *
 * @example
 * ```ts
 * const result = await enrollDevice({
 *   serverUrl: 'https://bulwark.example:8443',
 *   deviceId: 'pump-17',
 *   token: process.argv[2],
 *   dir: '/var/lib/bulwark',
 *   caFingerprint: '3A:7F:…',
 * });
 * console.log(`certificate valid until ${new Date(result.certificate.notAfter).toISOString()}`);
 * ```
 */
export async function enrollDevice(options: EnrollOptions): Promise<EnrollResult> {
  const problem = deviceIdProblem(options.deviceId);
  if (problem !== undefined) throw new BulwarkError('validation_failed', problem);
  assertBasicUserId(options.deviceId);
  if (options.token === '') throw new BulwarkError('validation_failed', 'enrollment token is empty');
  const serverUrl = parseServerUrl(options.serverUrl);
  const mqttUrl = options.mqttUrl === undefined ? undefined : parseMqttUrl(options.mqttUrl);
  const expectedFingerprint = parseFingerprintOption(options.caFingerprint);

  const store = openIdentityStore(options.dir);
  if (!options.force && (await store.exists())) {
    throw new BulwarkError(
      'conflict',
      `${options.dir} already holds a device identity; enroll with --force (force: true) to replace it`,
    );
  }
  // Fail before the one-time token is spent, not after the certificate has been issued.
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  await access(options.dir, constants.W_OK);

  const trust = await establishTrust(serverUrl, options);
  if (expectedFingerprint !== undefined) {
    if (trust.root.fingerprint !== expectedFingerprint) {
      throw new BulwarkError(
        'forbidden',
        `CA root fingerprint mismatch: expected ${expectedFingerprint}, got ${trust.root.fingerprint}; not enrolling`,
      );
    }
  } else if (trust.unverified) {
    // RFC 7030 §4.1.1: a root fetched without a trust anchor must be verified out of band before
    // the client relies on it, and the token is the secret a machine in the middle is after.
    if (!options.trustOnFirstUse) {
      throw new BulwarkError(
        'forbidden',
        `CA root not verified: the server presented a root with SHA-256 fingerprint ${trust.root.fingerprint}; ` +
          `compare it with "${ROOT_FINGERPRINT_COMMAND}" on the Bulwark server, then re-run with ` +
          '--ca-fingerprint <hex> (caFingerprint) or --ca FILE (ca); not enrolling',
      );
    }
    options.onTrustOnFirstUse?.(trust.root);
  }

  const key = await generateDeviceKey(options.keyType ?? 'ec-p256');
  const csr = await createCsr(options.deviceId, key);
  const certPem = await simpleEnroll({
    serverUrl,
    deviceId: options.deviceId,
    token: options.token,
    csrDer: csr.der,
    // From here on TLS is verified against the chain we decided to trust.
    ca: trust.pem,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });

  await store.save({
    deviceId: options.deviceId,
    serverUrl,
    mqttUrl,
    keyPem: key.privateKeyPem,
    certPem,
    caPem: trust.pem,
  });
  return {
    deviceId: options.deviceId,
    dir: options.dir,
    certificate: certificateInfo(certPem),
    caRoot: trust.root,
    trustedOnFirstUse: trust.unverified && expectedFingerprint === undefined,
  };
}

/**
 * Prints the root's fingerprint on a Bulwark server. `pki ca-chain` lists the issuing CA first and
 * the root second, and `openssl x509` reads only the first certificate, so the `sed` drops the first.
 */
export const ROOT_FINGERPRINT_COMMAND =
  "bulwark pki ca-chain | sed '1,/END/d' | openssl x509 -noout -fingerprint -sha256";

async function establishTrust(
  serverUrl: string,
  options: EnrollOptions,
): Promise<{ pem: string; root: CertificateInfo; unverified: boolean }> {
  if (options.ca !== undefined) {
    const chain = parsePemChain(options.ca);
    return { pem: toPem(chain), root: describeCertificate(await rootOf(chain)), unverified: false };
  }
  // RFC 7030 §4.1.1: with no trust anchor yet, the client may fetch /cacerts unauthenticated; the
  // caller must then verify the root out of band before sending anything secret.
  const fetched = await getCaCerts(serverUrl, undefined, {
    insecureSkipVerify: true,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  return { pem: fetched.pem, root: fetched.root, unverified: true };
}

function parseFingerprintOption(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const fingerprint = normalizeFingerprint(text);
  if (fingerprint === undefined) {
    throw new BulwarkError(
      'validation_failed',
      `invalid CA fingerprint "${text}": expected the SHA-256 fingerprint as 64 hex digits (colons optional)`,
    );
  }
  return fingerprint;
}
