import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createCsr, generateDeviceKey, keyTypeOf, keyTypes } from './keys.ts';
import { x509 } from './x509.ts';

const run = promisify(execFile);

/** Pipes `input` to `openssl args…`; resolves with stdout and stderr. */
function openssl(args: string[], input: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')}: ${stderr || err.message}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

const expectedHash = { 'ec-p256': 'SHA-256', 'ec-p384': 'SHA-384', 'rsa-2048': 'SHA-256' } as const;

describe.each(keyTypes)('%s key and CSR', (keyType) => {
  it('builds a CSR for CN=<deviceId> whose signature verifies (proof of possession)', async () => {
    const key = await generateDeviceKey(keyType);
    const csr = await createCsr('pump-17', key);
    const parsed = new x509.Pkcs10CertificateRequest(new Uint8Array(csr.der));
    expect(parsed.subject).toBe('CN=pump-17');
    expect(await parsed.verify()).toBe(true);
    expect(parsed.signatureAlgorithm.hash.name).toBe(expectedHash[keyType]);
    expect(csr.pem).toContain('-----BEGIN CERTIFICATE REQUEST-----');
  });

  it('passes `openssl req -verify`', async () => {
    const csr = await createCsr('pump-17', await generateDeviceKey(keyType));
    const { stdout, stderr } = await openssl(['req', '-verify', '-noout', '-subject'], csr.pem);
    expect(stderr + stdout).toMatch(/verify OK/i);
    expect(stdout).toMatch(/CN\s*=\s*pump-17/);
  });

  it('writes the private key as PKCS#8 PEM that openssl reads, and recognises its type', async () => {
    const key = await generateDeviceKey(keyType);
    expect(key.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    await expect(openssl(['pkey', '-noout'], key.privateKeyPem)).resolves.toBeDefined();
    expect(keyTypeOf(key.privateKeyPem)).toBe(keyType);
  });
});

describe('generateDeviceKey', () => {
  it('defaults to ECDSA P-256 and never returns the same key twice', async () => {
    const [a, b] = await Promise.all([generateDeviceKey(), generateDeviceKey()]);
    expect(a.keyType).toBe('ec-p256');
    expect(a.privateKeyPem).not.toBe(b.privateKeyPem);
  });
});

describe('keyTypeOf', () => {
  it('refuses keys the server would not accept', async () => {
    const { stdout } = await run('openssl', ['genpkey', '-algorithm', 'ed25519']);
    expect(() => keyTypeOf(stdout)).toThrow(/unsupported private key/);
  });
});
