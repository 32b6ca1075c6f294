import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, type Platform } from '../platform.ts';
import { x509 } from './index.ts';

const exec = promisify(execFile);

async function csr(): Promise<string> {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  return (
    await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    })
  ).toString('base64');
}

describe('PKI service: revocation is final and the CRL stays fresh', () => {
  let p: Platform;
  let now = Date.now();
  beforeAll(async () => {
    const config = testConfig({
      dataDir: mkdtempSync(path.join(tmpdir(), 'bulwark-pki-')),
      logLevel: 'silent',
    });
    p = await createPlatform(config, {
      logger: createLogger('silent'),
      now: () => now,
      manageServerCertificate: true,
    });
  });
  afterAll(async () => p?.close());

  async function enrolled(id: string) {
    await p.devices.add({ id }, 'test');
    const { token } = await p.devices.issueToken(id, 'test');
    return (await p.pki()).enroll({ deviceId: id, token, csr: await csr() });
  }

  it('never brings a revoked device back through a concurrent disable and enable', async () => {
    await enrolled('race-1');
    const pki = await p.pki();
    await Promise.allSettled([
      p.devices.setDisabled('race-1', { disabled: true }, 'test'),
      pki.revokeDevice('race-1', 'test'),
    ]);
    expect((await p.devices.get('race-1')).status).toBe('revoked');
    await expect(p.devices.setDisabled('race-1', { disabled: false }, 'test')).rejects.toMatchObject({
      code: 'device_revoked',
    });
    await expect(p.devices.issueToken('race-1', 'test')).rejects.toMatchObject({ code: 'device_revoked' });
  });

  it('answers a device certificate by serial with its public key and standing (signed reports)', async () => {
    const pki = await p.pki();
    const issued = await enrolled('report-1');
    const serial = issued.certificate.serialNumber;
    const spki = Buffer.from(issued.certificate.publicKey.rawData).toString('base64');
    const answer = await pki.certificateForReport('report-1', serial.toUpperCase());
    expect(answer).toMatchObject({ revoked: false, deviceId: 'report-1' });
    expect(answer?.publicKeyPem.replace(/-----[A-Z ]+-----|\s/g, '')).toBe(spki);
    await pki.revokeDevice('report-1', 'test');
    expect(await pki.certificateForReport('report-1', serial)).toMatchObject({ revoked: true });
    expect(await pki.certificateForReport('report-1', 'abcdef')).toBeUndefined();
  });

  it('issues no certificate to a device revoked while it re-enrolls', async () => {
    const pki = await p.pki();
    for (let i = 0; i < 5; i++) {
      const id = `reenroll-race-${i}`;
      const issued = await enrolled(id);
      const serial = issued.certificate.serialNumber;
      const results = await Promise.allSettled([
        pki.reenroll({ peerCertSerial: serial, csr: await csr() }),
        new Promise((r) => setTimeout(r, i)).then(() => pki.revokeDevice(id, 'test', 'keyCompromise')),
      ]);
      expect(results[1].status).toBe('fulfilled');
      const live = await p.store.db
        .selectFrom('certificates')
        .select('serial')
        .where('device_id', '=', id)
        .where('revoked_at', 'is', null)
        .execute();
      expect(live).toEqual([]);
    }
  });

  it('refuses revocation reasons that are not its own (no inherited keys)', async () => {
    await enrolled('reason-1');
    const pki = await p.pki();
    for (const reason of ['toString', 'constructor', '__proto__', 'nonsense']) {
      await expect(pki.revokeDevice('reason-1', 'test', reason as never)).rejects.toMatchObject({
        code: 'validation_failed',
      });
    }
    expect((await p.devices.get('reason-1')).status).toBe('active');
  });

  it('gives a TLS listener one CRL per CA: OpenSSL with CRL_CHECK_ALL accepts a valid device and refuses a revoked one', async () => {
    const pki = await p.pki();
    const good = await enrolled('crl-good');
    const bad = await enrolled('crl-bad');
    await pki.revokeDevice('crl-bad', 'test', 'keyCompromise');
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-crl-'));
    const file = (name: string, text: string) => {
      writeFileSync(path.join(dir, name), text);
      return path.join(dir, name);
    };
    const chain = file('chain.pem', pki.chainPem());
    const crls = file('crls.pem', (await pki.revocationListsPem()).join(''));
    // -crl_check_all is what Node sets when a listener is given CRLs: every CA in the chain needs a current one.
    const verify = (cert: x509.X509Certificate) =>
      exec('openssl', [
        'verify',
        '-crl_check_all',
        '-CAfile',
        chain,
        '-CRLfile',
        crls,
        file('c.pem', cert.toString('pem')),
      ])
        .then(({ stdout }) => stdout)
        .catch((e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`);
    expect(await verify(good.certificate)).toMatch(/: OK/);
    expect(await verify(bad.certificate)).toMatch(/certificate revoked/);
    // What the broker asks right after a handshake: known, unrevoked, of a device that exists.
    const serial = (c: x509.X509Certificate) => c.serialNumber;
    expect(await pki.certificateStanding(serial(good.certificate))).toEqual({ ok: true });
    expect(await pki.certificateStanding(serial(bad.certificate))).toEqual({
      ok: false,
      reason: 'certificate_revoked',
    });
    expect(await pki.certificateStanding('7f00aa')).toEqual({ ok: false, reason: 'certificate_unknown' });
  });

  it('reissues the CRL before it goes stale', async () => {
    const pki = await p.pki();
    const first = new x509.X509Crl(new Uint8Array(await pki.crl()));
    now += 13 * 3_600_000;
    const later = new x509.X509Crl(new Uint8Array(await pki.crl()));
    expect(later.thisUpdate.getTime()).toBeGreaterThan(first.thisUpdate.getTime());
    expect(later.nextUpdate!.getTime()).toBeGreaterThan(now);
  });
});
