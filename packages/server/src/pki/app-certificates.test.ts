import { X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, type Platform } from '../platform.ts';
import { revokeAppCertificates, x509, type PkiService } from './index.ts';

async function csr(): Promise<string> {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=whatever-the-client-says',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return request.toString('pem');
}

describe('PKI: application certificates', () => {
  let p: Platform;
  let pki: PkiService;
  beforeAll(async () => {
    const config = testConfig({
      dataDir: mkdtempSync(path.join(tmpdir(), 'bulwark-pki-app-')),
      logLevel: 'silent',
    });
    p = await createPlatform(config, { logger: createLogger('silent'), manageServerCertificate: true });
    pki = await p.pki();
  });
  afterAll(async () => p?.close());

  it('signs a CSR with the app as CN, OU bulwark-apps and the app URI, recorded with its event', async () => {
    const issued = await pki.issueAppCertificate({
      app: 'dashboard',
      csrPem: await csr(),
      actor: 'user:alice',
    });
    const cert = new X509Certificate(issued.certificatePem);
    expect(cert.subject).toBe('CN=dashboard\nOU=bulwark-apps');
    expect(cert.subjectAltName).toBe('URI:urn:bulwark:app:dashboard');
    expect(cert.checkIssued(new X509Certificate(issued.chainPem))).toBe(true);
    expect(issued.notAfter).toBe(new Date(cert.validTo).getTime());
    const row = await p.store.db
      .selectFrom('certificates')
      .selectAll()
      .where('serial', '=', issued.serial)
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ kind: 'app', device_id: null, app_name: 'dashboard' });
    const entries = await p.audit.query({ type: 'app.certificate_issued', limit: 100 });
    expect(entries.at(-1)).toMatchObject({
      actor: 'user:alice',
      subject: 'app:dashboard',
      data: { serial: issued.serial },
    });
  });

  it('identifies an app certificate for any client id (the apps check compares), and refuses it for devices', async () => {
    const { serial } = await pki.issueAppCertificate({ app: 'reports', csrPem: await csr(), actor: 'test' });
    const identity = { clientId: 'reports/worker-2', certSerial: serial, certCn: 'reports' };
    expect(await pki.checkConnection(identity)).toEqual({ ok: true, kind: 'app', app: 'reports', serial });
    expect(await pki.checkDevice(identity)).toMatchObject({ ok: false, code: 'forbidden' });
    expect(await pki.certificateStanding(serial)).toEqual({ ok: true });
  });

  it('revokes every certificate of the app in the caller transaction, with the events, and refuses them after', async () => {
    const a = await pki.issueAppCertificate({ app: 'billing', csrPem: await csr(), actor: 'test' });
    const b = await pki.issueAppCertificate({ app: 'billing', csrPem: await csr(), actor: 'test' });
    const revoked = await p.events.atomically((tx, emit) =>
      revokeAppCertificates(tx, emit, { app: 'billing', at: Date.now(), actor: 'user:alice' }),
    );
    expect(revoked.sort()).toEqual([a.serial, b.serial].sort());
    expect(
      await pki.checkConnection({ clientId: 'billing', certSerial: a.serial, certCn: 'billing' }),
    ).toMatchObject({
      ok: false,
      code: 'device_revoked',
    });
    expect(await pki.certificateStanding(b.serial)).toEqual({ ok: false, reason: 'certificate_revoked' });
    const crl = new x509.X509Crl(new Uint8Array(await pki.crl()));
    expect(crl.entries.map((e) => e.serialNumber.toLowerCase())).toEqual(
      expect.arrayContaining([a.serial, b.serial]),
    );
    const events = await p.audit.query({ type: 'certificate.revoked', limit: 100 });
    expect(events.filter((e) => e.subject === 'app:billing')).toHaveLength(2);
  });

  it('refuses a bad app name and a bad CSR', async () => {
    await expect(
      pki.issueAppCertificate({ app: 'Bad_Name', csrPem: await csr(), actor: 'test' }),
    ).rejects.toMatchObject({
      code: 'validation_failed',
    });
    await expect(
      pki.issueAppCertificate({ app: 'ok-app', csrPem: 'nonsense!', actor: 'test' }),
    ).rejects.toMatchObject({
      code: 'csr_invalid',
    });
  });
});
