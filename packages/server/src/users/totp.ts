import { Secret, TOTP } from 'otpauth';

/** RFC 6238 defaults: 30-second steps, 6 digits, HMAC-SHA-1. */
export const TOTP_PERIOD = 30;
const DIGITS = 6;
const WINDOW = 1; // ±1 step of clock drift

export function newTotpSecret(): string {
  return new Secret({ size: 20 }).base32;
}

export function totpUri(secretBase32: string, username: string, issuer = 'Bulwark'): string {
  return new TOTP({
    issuer,
    label: username,
    algorithm: 'SHA1',
    digits: DIGITS,
    period: TOTP_PERIOD,
    secret: Secret.fromBase32(secretBase32),
  }).toString();
}

/**
 * Checks a code and returns the time step it belongs to (for replay refusal), or undefined. A step is
 * accepted once: the caller stores the last accepted step and refuses codes of that step or earlier.
 */
export function matchTotp(secretBase32: string, code: string, now: number): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const totp = new TOTP({
    algorithm: 'SHA1',
    digits: DIGITS,
    period: TOTP_PERIOD,
    secret: Secret.fromBase32(secretBase32),
  });
  const delta = totp.validate({ token: code, timestamp: now, window: WINDOW });
  if (delta === null) return undefined;
  return Math.floor(now / 1000 / TOTP_PERIOD) + delta;
}

export function totpCode(secretBase32: string, now: number): string {
  return new TOTP({
    algorithm: 'SHA1',
    digits: DIGITS,
    period: TOTP_PERIOD,
    secret: Secret.fromBase32(secretBase32),
  }).generate({ timestamp: now });
}
