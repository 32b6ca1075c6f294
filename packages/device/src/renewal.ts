import { simpleReenroll } from './est-client.ts';
import type { DeviceIdentity, IdentityStore } from './identity-store.ts';
import { createCsr, generateDeviceKey, keyTypeOf } from './keys.ts';

/** Renew once less than this fraction of the certificate's lifetime remains. */
export const DEFAULT_RENEW_THRESHOLD = 1 / 3;

/**
 * Whether a certificate valid from `notBefore` to `notAfter` (epoch ms) should be renewed at
 * `now`: when less than `threshold` of its lifetime remains. Renewing at two thirds leaves a third
 * of the lifetime to retry if the server is unreachable.
 *
 * @example
 * ```ts
 * renewalDue({ notBefore: 0, notAfter: 90 }, 59); // false: 31 of 90 remain
 * renewalDue({ notBefore: 0, notAfter: 90 }, 61); // true: 29 of 90 remain
 * ```
 */
export function renewalDue(
  validity: { readonly notBefore: number; readonly notAfter: number },
  now: number,
  threshold: number = DEFAULT_RENEW_THRESHOLD,
): boolean {
  const lifetime = validity.notAfter - validity.notBefore;
  return validity.notAfter - now < lifetime * threshold;
}

export interface RenewOptions {
  readonly store: Pick<IdentityStore, 'replaceCredentials'>;
  readonly timeoutMs?: number;
}

/**
 * Renews a device identity: generates a NEW key of the same type (so a key that leaked does not
 * outlive its certificate), requests a certificate for it with `simplereenroll` authenticated by
 * the current key and certificate, stores the new pair atomically and returns the new identity.
 *
 * @example
 * ```ts
 * const store = openIdentityStore(dir);
 * const renewed = await renewIdentity(await store.load(), { store });
 * ```
 */
export async function renewIdentity(
  identity: DeviceIdentity,
  options: RenewOptions,
): Promise<DeviceIdentity> {
  const key = await generateDeviceKey(keyTypeOf(identity.keyPem));
  const csr = await createCsr(identity.deviceId, key);
  const certPem = await simpleReenroll({
    serverUrl: identity.serverUrl,
    csrDer: csr.der,
    ca: identity.caPem,
    key: identity.keyPem,
    cert: identity.certPem,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  const credentials = { keyPem: key.privateKeyPem, certPem };
  await options.store.replaceCredentials(credentials);
  return { ...identity, ...credentials };
}
