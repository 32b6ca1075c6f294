import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateCsr } from './csr.ts';
import { x509 } from './x509.ts';

async function csrFor(algorithm: EcKeyGenParams | RsaHashedKeyGenParams, sign: EcdsaParams | Algorithm) {
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  return x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=whatever', keys, signingAlgorithm: sign });
}
const rsa = (bits: number): RsaHashedKeyGenParams => ({
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: bits,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash: 'SHA-256',
});

describe('CSR validation', () => {
  it('accepts ECDSA P-256 and P-384 and RSA 2048 in base64 and PEM', async () => {
    const p256 = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' });
    expect((await validateCsr(p256.toString('base64'))).keyAlgorithm).toBe('ec-P-256');
    expect((await validateCsr(p256.toString('pem'))).keyAlgorithm).toBe('ec-P-256');
    const p384 = await csrFor({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' });
    expect((await validateCsr(p384.toString('base64'))).keyAlgorithm).toBe('ec-P-384');
    const r2048 = await csrFor(rsa(2048), { name: 'RSASSA-PKCS1-v1_5' });
    expect((await validateCsr(r2048.toString('base64'))).keyAlgorithm).toBe('rsa-2048');
  });

  it('refuses weak and unsupported keys', async () => {
    const r1024 = await csrFor(rsa(1024), { name: 'RSASSA-PKCS1-v1_5' });
    await expect(validateCsr(r1024.toString('base64'))).rejects.toMatchObject({
      code: 'key_unsupported',
      message: /1024 bits is too weak/,
    });
    const p521 = await csrFor({ name: 'ECDSA', namedCurve: 'P-521' }, { name: 'ECDSA', hash: 'SHA-512' });
    await expect(validateCsr(p521.toString('base64'))).rejects.toMatchObject({
      code: 'key_unsupported',
      message: /secp521r1/,
    });
  });

  /** A CSR made by the openssl CLI, as a device maker's tooling would make it. */
  function opensslCsr(keyOptions: string[]): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-csr-'));
    try {
      const key = path.join(dir, 'key.pem');
      execFileSync('openssl', ['genpkey', ...keyOptions, '-out', key], { stdio: 'pipe' });
      execFileSync(
        'openssl',
        ['req', '-new', '-key', key, '-subj', '/CN=dev', '-out', path.join(dir, 'csr.pem')],
        {
          stdio: 'pipe',
        },
      );
      return readFileSync(path.join(dir, 'csr.pem'), 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('accepts an openssl RSA key with e = 65537 and refuses e = 3 and other exponents (SP 800-56B §6.2.1)', async () => {
    const f4 = opensslCsr(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']);
    expect((await validateCsr(f4)).keyAlgorithm).toBe('rsa-2048');
    const e3 = opensslCsr([
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-pkeyopt',
      'rsa_keygen_pubexp:3',
    ]);
    await expect(validateCsr(e3)).rejects.toMatchObject({
      code: 'key_unsupported',
      message: /public exponent 3 is not accepted/,
    });
    // Odd and above 2^16, so NIST would allow it, but no mainstream generator makes it: one exponent only.
    const e65539 = opensslCsr([
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-pkeyopt',
      'rsa_keygen_pubexp:65539',
    ]);
    await expect(validateCsr(e65539)).rejects.toMatchObject({
      code: 'key_unsupported',
      message: /public exponent 65539/,
    });
  });

  it('accepts openssl EC keys on P-256/P-384 only, and refuses Ed25519', async () => {
    const p256 = opensslCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
    expect((await validateCsr(p256)).keyAlgorithm).toBe('ec-P-256');
    const k256 = opensslCsr(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1']);
    await expect(validateCsr(k256)).rejects.toMatchObject({ code: 'key_unsupported', message: /secp256k1/ });
    const ed = opensslCsr(['-algorithm', 'ED25519']);
    await expect(validateCsr(ed)).rejects.toMatchObject({ code: 'key_unsupported', message: /ed25519/ });
  });

  it('refuses a request whose signature does not verify', async () => {
    const csr = await csrFor({ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' });
    const der = Buffer.from(csr.rawData);
    der[der.length - 3] = (der[der.length - 3] ?? 0) ^ 0x01;
    await expect(validateCsr(der.toString('base64'))).rejects.toMatchObject({
      code: 'csr_signature_invalid',
    });
  });

  it.each([
    ['', /empty/],
    ['%%%', /not base64/],
    [Buffer.from('hello world').toString('base64'), /not a DER-encoded PKCS#10/],
    [
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
      /not a DER-encoded PKCS#10/,
    ],
  ])('refuses garbage %j with csr_invalid', async (body, message) => {
    await expect(validateCsr(body)).rejects.toMatchObject({ code: 'csr_invalid', message });
  });
});
