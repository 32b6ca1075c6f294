import type { SecureContextOptions, TLSSocket, TlsOptions } from 'node:tls';

/**
 * The TLS profile of every Bulwark listener (HTTPS, MQTT): TLS 1.3, and TLS 1.2 with ECDHE and an AEAD
 * cipher (AES-GCM, ChaCha20-Poly1305) only, as Mozilla's "intermediate" server profile (v5.7) has it. No
 * CBC, CCM_8, ARIA or static-RSA suites. TLS 1.3 suites are Node's defaults (all AEAD).
 * ETSI EN 303 645 5.5-1, IEC 62443-4-2 CR 4.3, NIST SP 800-52r2 §3.3.1.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const;

/**
 * The lowest TLS version every Bulwark listener accepts: what `serverTlsProfile` gives Node and what the
 * listeners' compliance facts state (one constant, so the two cannot differ).
 */
export const MIN_TLS_VERSION = 'TLSv1.2' as const;

/** Server-side options every listener spreads into its `tls.createServer`/`https` options. */
export const serverTlsProfile: Pick<
  TlsOptions & SecureContextOptions,
  'minVersion' | 'ciphers' | 'honorCipherOrder' | 'ecdhCurve'
> = Object.freeze({
  minVersion: MIN_TLS_VERSION,
  ciphers: TLS12_CIPHERS.join(':'),
  honorCipherOrder: false, // every offered suite is strong; let the client pick what is fast on its hardware
  ecdhCurve: 'X25519:prime256v1:secp384r1',
});

/**
 * Refuses client-initiated renegotiation (a CPU-exhaustion lever and a TLS 1.2 attack surface; Node allows
 * 3 per 10 minutes by default). Call from the server's `secureConnection` handler.
 */
export function refuseRenegotiation(socket: TLSSocket): void {
  socket.disableRenegotiation();
}
