import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { BulwarkError } from '@bulwark/protocol';

export const MIN_PASSWORD_LENGTH = 12;
const MAX_PASSWORD_LENGTH = 256;

/** ~49,000 passwords seen most often in breaches (zxcvbn's list). */
const common = new Set(dictionary['passwords-common'].map((p) => p.toLowerCase()));

// OWASP's argon2id baseline (m = 19 MiB, t = 2, p = 1).
const ARGON2 = { algorithm: 2 /* Argon2id */, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export const hashPassword = (password: string) => hash(password, ARGON2);

/** argon2's verify compares in constant time. */
export async function verifyPassword(stored: string | null, password: string): Promise<boolean> {
  if (!stored) return false;
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

/** A real hash of a random value: unknown accounts are "verified" against it so timing does not tell them apart. */
export const dummyHash = hashPassword(`dummy-${Math.random()}-${Date.now()}`);

/**
 * The password rules (NIST SP 800-63B §5.1.1.2): at least 12 characters, not a commonly used password,
 * not containing the user name, not the previous password.
 */
export async function checkNewPassword(
  password: string,
  username: string,
  previousHashes: (string | null)[],
): Promise<void> {
  if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH) {
    throw new BulwarkError(
      'validation_failed',
      `password must be at least ${MIN_PASSWORD_LENGTH} characters`,
    );
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    throw new BulwarkError('validation_failed', `password must be at most ${MAX_PASSWORD_LENGTH} characters`);
  }
  const lower = password.toLowerCase();
  if (common.has(lower) || common.has(lower.replace(/[\d!@#$%^&*?.]+$/, ''))) {
    throw new BulwarkError(
      'validation_failed',
      'password is too common: it appears in lists of breached passwords',
    );
  }
  if (lower.includes(username.toLowerCase())) {
    throw new BulwarkError('validation_failed', 'password must not contain the user name');
  }
  for (const previous of previousHashes) {
    if (await verifyPassword(previous, password)) {
      throw new BulwarkError('validation_failed', 'password must differ from the previous password');
    }
  }
}
