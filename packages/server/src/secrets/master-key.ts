import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BulwarkError } from '@bulwark/protocol';

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

/**
 * The master key encrypts every private key and secret at rest. It comes from BULWARK_MASTER_KEY
 * (via config) or from `<data>/master.key`, which is generated at first start with mode 0600.
 */
export function loadMasterKey(dataDir: string, configured: string | undefined): Buffer {
  if (configured) return decodeKey(configured, 'BULWARK_MASTER_KEY');
  const file = path.join(dataDir, MASTER_KEY_FILE);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) chmodSync(file, 0o600); // never leave the key readable by others
    return decodeKey(readFileSync(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  try {
    // 'wx' fails if another process created the key first; then read theirs.
    writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return decodeKey(readFileSync(file, 'utf8'), file);
    throw err;
  }
}
