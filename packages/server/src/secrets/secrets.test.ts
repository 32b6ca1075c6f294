import { randomBytes } from 'node:crypto';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSecretBox, loadMasterKey, MASTER_KEY_FILE } from './index.ts';

describe('secrets at rest', () => {
  it('generates the master key once, with mode 0600, and reads it back', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-secrets-'));
    const key = loadMasterKey(dir, undefined);
    expect(key).toHaveLength(32);
    expect(statSync(path.join(dir, MASTER_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(loadMasterKey(dir, undefined).equals(key)).toBe(true);
  });

  it('takes the key from configuration (hex or base64) and refuses a bad one', () => {
    const key = randomBytes(32);
    expect(loadMasterKey('/nonexistent', key.toString('hex')).equals(key)).toBe(true);
    expect(loadMasterKey('/nonexistent', key.toString('base64')).equals(key)).toBe(true);
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-secrets-'));
    writeFileSync(path.join(dir, MASTER_KEY_FILE), 'abcd\n');
    expect(() => loadMasterKey(dir, undefined)).toThrow(/must be 32 bytes/);
  });

  it('seals with AES-256-GCM bound to a label; a wrong key or label cannot open it', () => {
    const box = createSecretBox(randomBytes(32));
    const sealed = box.seal(Buffer.from('private key'), 'pki/root');
    expect(sealed).not.toContain('private key');
    expect(box.seal(Buffer.from('private key'), 'pki/root')).not.toBe(sealed); // fresh nonce
    expect(box.open(sealed, 'pki/root').toString()).toBe('private key');
    expect(() => box.open(sealed, 'pki/issuing')).toThrow(/cannot decrypt/);
    expect(() => createSecretBox(randomBytes(32)).open(sealed, 'pki/root')).toThrow(
      /master key does not match/,
    );
  });

  it('MACs per purpose', () => {
    const box = createSecretBox(randomBytes(32));
    const mac = box.mac('audit-anchor', '1:abc');
    expect(box.verifyMac('audit-anchor', '1:abc', mac)).toBe(true);
    expect(box.verifyMac('audit-entry', '1:abc', mac)).toBe(false);
    expect(box.verifyMac('audit-anchor', '1:abd', mac)).toBe(false);
    expect(box.verifyMac('audit-anchor', '1:abc', 'zz')).toBe(false);
  });
});
