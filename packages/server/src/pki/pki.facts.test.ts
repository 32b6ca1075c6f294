import { createHash, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, type Platform } from '../platform.ts';
import { exec, opensslCsr, workDir } from '../test-support/clients.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import { normalizeSerial, type PkiFacts } from './index.ts';
import { describeKey } from './pki.facts.ts';

const DAY = 86_400_000;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('describeKey: the key type from the certificate key itself', () => {
  const spki = (key: ReturnType<typeof generateKeyPairSync>['publicKey']) =>
    key.export({ type: 'spki', format: 'der' });

  it('names accepted key types and describes the others', () => {
    const ec = (namedCurve: string) => spki(generateKeyPairSync('ec', { namedCurve }).publicKey);
    const rsa = (modulusLength: number) => spki(generateKeyPairSync('rsa', { modulusLength }).publicKey);
    expect(describeKey(ec('prime256v1'))).toEqual({ keyType: 'ec-p256', keyDescription: 'ec-p256' });
    expect(describeKey(ec('secp384r1'))).toEqual({ keyType: 'ec-p384', keyDescription: 'ec-p384' });
    expect(describeKey(ec('secp521r1'))).toEqual({ keyType: 'ec-p521', keyDescription: 'ec-p521' });
    expect(describeKey(ec('secp256k1'))).toEqual({ keyType: null, keyDescription: 'ec-secp256k1' });
    expect(describeKey(rsa(1024))).toEqual({ keyType: null, keyDescription: 'rsa-1024' });
    expect(describeKey(rsa(2048))).toEqual({ keyType: 'rsa-2048', keyDescription: 'rsa-2048' });
    expect(describeKey(spki(generateKeyPairSync('ed25519').publicKey))).toEqual({
      keyType: 'ed25519',
      keyDescription: 'ed25519',
    });
    expect(describeKey(spki(generateKeyPairSync('ed448').publicKey)).keyType).toBe('ed448');
  });
});

describe('PKI compliance facts', () => {
  let p: Platform;
  let now = Date.now();
  const dir = workDir();

  async function enroll(id: string, spec: 'ec-p256' | 'rsa-2048' = 'ec-p256') {
    if (!(await p.devices.find(id))) await p.devices.add({ id }, 'test');
    const { token } = await p.devices.issueToken(id, 'test');
    const csr = await opensslCsr(dir, `${id}-${now}`, spec, id);
    const issued = await (await p.pki()).enroll({ deviceId: id, token, csr: csr.base64 });
    return { serial: normalizeSerial(issued.certificate.serialNumber), keyPem: csr.keyPem };
  }

  /** A device certificate this CA would never issue (RSA-1024), stored as if it had been. */
  async function storeWeakCertificate(id: string) {
    await p.devices.add({ id }, 'test');
    const certFile = path.join(dir, `${id}.pem`);
    await exec('openssl', [
      'req', '-x509', '-newkey', 'rsa:1024', '-nodes', '-keyout', path.join(dir, `${id}.key`),
      '-subj', `/CN=${id}`, '-days', '30', '-out', certFile,
    ]); // prettier-ignore
    const pem = readFileSync(certFile, 'utf8');
    const cert = new X509Certificate(pem);
    const serial = normalizeSerial(cert.serialNumber);
    await p.store.db
      .insertInto('certificates')
      .values({
        serial,
        kind: 'device',
        device_id: id,
        subject: `CN=${id}`,
        fingerprint: cert.fingerprint256,
        not_before: Date.parse(cert.validFrom),
        not_after: Date.parse(cert.validTo),
        pem,
        issued_at: now,
        revoked_at: null,
        revocation_reason: null,
      })
      .execute();
    return serial;
  }

  let facts: PkiFacts;
  const serials: Record<string, string> = {};
  let keyOfA = '';
  let appSerial = '';

  beforeAll(async () => {
    const config = testConfig({
      dataDir: mkdtempSync(path.join(testTmpDir(), 'bulwark-pki-facts-')),
      logLevel: 'silent',
    });
    p = await createPlatform(config, { logger: createLogger('silent'), now: () => now });
    const first = await enroll('dev-a');
    now += 1000;
    const second = await enroll('dev-a'); // enrolled again: the first certificate is revoked, superseded
    keyOfA = second.keyPem;
    serials.aOld = first.serial;
    serials.a = second.serial;
    serials.b = (await enroll('dev-b', 'rsa-2048')).serial;
    await p.devices.add({ id: 'dev-c' }, 'test'); // registered, awaiting enrolment
    serials.d = (await enroll('dev-d')).serial;
    await (await p.pki()).revokeDevice('dev-d', 'test');
    serials.e = await storeWeakCertificate('dev-e');
    const appCsr = await opensslCsr(dir, 'app-dash', 'ec-p256', 'dash');
    appSerial = (
      await (await p.pki()).issueAppCertificate({ app: 'dash', csrPem: appCsr.base64, actor: 'test' })
    ).serial;
    facts = await (await p.pki()).complianceFacts();
  });
  afterAll(async () => p?.close());

  it('states the CA chain root first and the server certificate, with their key types', () => {
    expect(facts.ca).toHaveLength(2);
    const [root, issuing] = facts.ca;
    expect(root?.subject).toMatch(/root/i);
    expect(issuing?.subject).not.toMatch(/root/i);
    for (const c of [...facts.ca, facts.server]) {
      expect(c).toMatchObject({ keyType: 'ec-p256', keyDescription: 'ec-p256' });
      expect(c?.notAfter).toBeGreaterThan(now);
      expect(c?.publicKeySha256).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(root?.notAfter).toBeGreaterThan(issuing?.notAfter ?? Infinity);
    expect(facts.deviceCertValidityMs).toBe(90 * DAY);
  });

  it('states the newest certificate not revoked of each device in service', () => {
    const byDevice = Object.fromEntries(facts.deviceCertificates.map((c) => [c.deviceId, c]));
    expect(Object.keys(byDevice).sort()).toEqual(['dev-a', 'dev-b', 'dev-e']); // c has none, d is revoked
    expect(byDevice['dev-a']).toMatchObject({
      serial: serials.a,
      keyType: 'ec-p256',
      subject: 'CN=dev-a, O=Bulwark devices',
    });
    expect(byDevice['dev-b']).toMatchObject({ serial: serials.b, keyType: 'rsa-2048' });
    expect(byDevice['dev-e']).toMatchObject({ serial: serials.e, keyType: null, keyDescription: 'rsa-1024' });
    expect(byDevice['dev-a']?.notAfter).toBe((byDevice['dev-a']?.notBefore ?? 0) + 90 * DAY + 5 * 60_000);
  });

  it('fingerprints the public key (SPKI DER), so one key under two owners shows', () => {
    const a = facts.deviceCertificates.find((c) => c.deviceId === 'dev-a');
    // The device's own key, from the key file it holds.
    const spki = createPublicKey(keyOfA).export({ type: 'spki', format: 'der' });
    expect(a?.publicKeySha256).toBe(sha256(spki));
    const b = facts.deviceCertificates.find((c) => c.deviceId === 'dev-b');
    expect(b?.publicKeySha256).not.toBe(a?.publicKeySha256);
  });

  it('lists every unexpired certificate not revoked with its owner, apps included', () => {
    const active = Object.fromEntries(facts.activeCertificates.map((c) => [c.serial, c.owner]));
    expect(active[serials.aOld ?? '']).toBeUndefined();
    expect(active).toEqual({
      [serials.a ?? '']: 'device:dev-a',
      [serials.b ?? '']: 'device:dev-b',
      [serials.e ?? '']: 'device:dev-e',
      [appSerial]: 'app:dash',
    });
  });

  it('leaves expired certificates out of the active ones, not out of the device’s newest', async () => {
    now += 40 * DAY; // dev-e's 30-day certificate has expired
    const later = await (await p.pki()).complianceFacts();
    now -= 40 * DAY;
    expect(later.activeCertificates.map((c) => c.serial)).not.toContain(serials.e);
    expect(later.deviceCertificates.find((c) => c.deviceId === 'dev-e')?.serial).toBe(serials.e);
  });
});
