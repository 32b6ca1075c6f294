import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, type Platform } from '../platform.ts';
import { x509 } from './index.ts';

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
      p.devices.setDisabled('race-1', true, 'test'),
      pki.revokeDevice('race-1', 'test'),
    ]);
    expect((await p.devices.get('race-1')).status).toBe('revoked');
    await expect(p.devices.setDisabled('race-1', false, 'test')).rejects.toMatchObject({
      code: 'device_revoked',
    });
    await expect(p.devices.issueToken('race-1', 'test')).rejects.toMatchObject({ code: 'device_revoked' });
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

  it('reissues the CRL before it goes stale', async () => {
    const pki = await p.pki();
    const first = new x509.X509Crl(new Uint8Array(await pki.crl()));
    now += 13 * 3_600_000;
    const later = new x509.X509Crl(new Uint8Array(await pki.crl()));
    expect(later.thisUpdate.getTime()).toBeGreaterThan(first.thisUpdate.getTime());
    expect(later.nextUpdate!.getTime()).toBeGreaterThan(now);
  });
});
