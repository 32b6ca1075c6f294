import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BulwarkError } from '@bulwark/protocol';
import type { SecretBox } from './secret-box.ts';

export const MASTER_KEY_FILE = 'master.key';

function decodeKey(text: string, from: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : Buffer.from(trimmed, 'base64');
  if (key.length !== 32) {
    throw new BulwarkError(
      'config_invalid',
      `master key from ${from} must be 32 bytes (64 hex characters or base64)`,
    );
  }
  return key;
}

export interface MasterKey {
  key: Buffer;
  /** Where it came from, for messages: `BULWARK_MASTER_KEY` or the key file's path. */
  source: string;
}

/**
 * The master key encrypts every private key and secret at rest. It comes from BULWARK_MASTER_KEY (via
 * config) or from `<data>/master.key`. Returns undefined when neither exists: only the caller knows whether
 * the data directory is new (then it calls {@link createMasterKey}) or its key was lost (then a new key
 * would silently orphan every sealed secret, so it must stop instead).
 */
export function readMasterKey(dataDir: string, configured: string | undefined): MasterKey | undefined {
  if (configured) return { key: decodeKey(configured, 'BULWARK_MASTER_KEY'), source: 'BULWARK_MASTER_KEY' };
  const file = path.join(dataDir, MASTER_KEY_FILE);
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) chmodSync(file, 0o600); // never leave the key readable by others
    return { key: decodeKey(readFileSync(file, 'utf8'), file), source: file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Generates `<data>/master.key` (mode 0600) for a new data directory; a key another process wrote first wins. */
export function createMasterKey(dataDir: string): MasterKey {
  const file = path.join(dataDir, MASTER_KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  try {
    // 'wx' fails if another process created the key first; then read theirs.
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return { key, source: file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      return { key: decodeKey(readFileSync(file, 'utf8'), file), source: file };
    throw err;
  }
}

/** The master key, generated on first use when missing (embedders and tests; the CLI decides explicitly). */
export function loadMasterKey(dataDir: string, configured: string | undefined): Buffer {
  return (readMasterKey(dataDir, configured) ?? createMasterKey(dataDir)).key;
}

const CHECK_PURPOSE = 'master-key-check';
const CHECK_MESSAGE = 'bulwark master key check v1';

/**
 * A key check value: a MAC of a constant under a key derived from the master key (like the KCV of a
 * payment HSM key, but keyed, so it reveals nothing about the key). Stored with the data, it tells a wrong
 * master key from damaged data before anything is decrypted or written.
 */
export function keyCheckValue(box: Pick<SecretBox, 'mac'>): string {
  return box.mac(CHECK_PURPOSE, CHECK_MESSAGE);
}

export function matchesKeyCheckValue(box: Pick<SecretBox, 'verifyMac'>, value: string): boolean {
  return box.verifyMac(CHECK_PURPOSE, CHECK_MESSAGE, value);
}
