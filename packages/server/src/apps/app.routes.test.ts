import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { x509 } from '../pki/index.ts';
import { createTestPlatform, type TestCredentials, type TestPlatform } from '../test-support/platform.ts';

async function csrPem(): Promise<string> {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=anything',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return csr.toString('pem');
}

/** `/api/v1/apps` in-process: answers shaped by the contracts, access by role, errors as problems. */
describe('apps API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let operator: TestCredentials;
  let auditor: TestCredentials;
  let viewer: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    operator = await t.signIn('operator');
    auditor = await t.signIn('auditor');
    viewer = await t.signIn('viewer');
  });
  afterAll(async () => t?.close());

  const call = (
    who: TestCredentials,
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
    url: string,
    payload?: object,
  ) => t.app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });

  it('adds an app, lists it, replaces its grants and shows its credentials', async () => {
    const created = await call(operator, 'POST', '/api/v1/apps', {
      name: 'dashboard',
      purpose: 'analytics.reporting',
      grants: ['subscribe devices/+/telemetry group:pumps'],
    });
    expect(created.statusCode).toBe(201);
    expect(api.apps.app.strict().parse(created.json())).toMatchObject({
      name: 'dashboard',
      status: 'active',
    });

    const listed = await call(auditor, 'GET', '/api/v1/apps');
    expect(
      z
        .array(api.apps.app)
        .parse(listed.json())
        .map((a) => a.name),
    ).toEqual(['dashboard']);

    const grants = await call(operator, 'PUT', '/api/v1/apps/dashboard/grants', {
      grants: ['subscribe devices/+/telemetry zone:plant-a', 'publish devices/+/commands/ping'],
    });
    expect(grants.json()).toMatchObject({
      grants: ['subscribe devices/+/telemetry zone:plant-a', 'publish devices/+/commands/ping'],
    });

    const token = await call(operator, 'POST', '/api/v1/apps/dashboard/tokens', { ttl: '90d' });
    expect(token.statusCode).toBe(201);
    const { id } = api.apps.createdToken.strict().parse(token.json());

    const cert = await call(operator, 'POST', '/api/v1/apps/dashboard/certificates', { csr: await csrPem() });
    expect(cert.statusCode).toBe(201);
    const issued = api.apps.issuedCertificate.strict().parse(cert.json());
    expect(new X509Certificate(issued.certificatePem).subject).toBe('CN=dashboard\nOU=bulwark-apps');

    const shown = api.apps.appDetail
      .strict()
      .parse((await call(auditor, 'GET', '/api/v1/apps/dashboard')).json());
    expect(shown.tokens.map((tk) => tk.id)).toEqual([id]);
    expect(shown.certificates.map((c) => c.serial)).toEqual([issued.serial]);

    expect((await call(operator, 'DELETE', `/api/v1/apps/dashboard/tokens/${id}`)).statusCode).toBe(204);
    const tokens = z
      .array(api.apps.appToken)
      .parse((await call(operator, 'GET', '/api/v1/apps/dashboard/tokens')).json());
    expect(tokens[0]?.revokedAt).not.toBeNull();
  });

  it('refuses with problems: bad input 400, unknown 404, a duplicate 409, and by role 403', async () => {
    const bad = await call(operator, 'POST', '/api/v1/apps', { name: 'x', purpose: 'marketing.nonsense' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ code: 'validation_failed' });
    expect((await call(operator, 'GET', '/api/v1/apps/nope')).statusCode).toBe(404);
    await call(operator, 'POST', '/api/v1/apps', { name: 'twice' });
    expect((await call(operator, 'POST', '/api/v1/apps', { name: 'twice' })).statusCode).toBe(409);
    expect((await call(viewer, 'GET', '/api/v1/apps')).statusCode).toBe(403);
    expect((await call(auditor, 'POST', '/api/v1/apps', { name: 'sneaky' })).statusCode).toBe(403);
  });

  it('revokes an app with its certificates: the CRL lists them, the PKI refuses them', async () => {
    await call(operator, 'POST', '/api/v1/apps', { name: 'legacy', purpose: 'essential.service.operations' });
    const cert = api.apps.issuedCertificate.parse(
      (await call(operator, 'POST', '/api/v1/apps/legacy/certificates', { csr: await csrPem() })).json(),
    );
    const revoked = await call(operator, 'DELETE', '/api/v1/apps/legacy?reason=replaced');
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ status: 'revoked' });
    const pki = await t.platform.pki();
    expect(
      await pki.checkConnection({ clientId: 'legacy', certSerial: cert.serial, certCn: 'legacy' }),
    ).toMatchObject({
      ok: false,
      code: 'device_revoked',
    });
    const entry = await t.platform.audit.latest('app.revoked');
    expect(entry?.data).toEqual({ reason: 'replaced', revokedCertificates: [cert.serial], revokedTokens: 0 });
  });
});
