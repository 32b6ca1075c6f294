import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import { complianceRoutes } from './compliance.routes.ts';
import { createFakeCompliance, HTML_REPORT_CSP, type FakeCompliance } from './compliance.fake.ts';

const DAY = 86_400_000;
const contracts = api.compliance;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * `/api/v1/compliance` in-process: answers shaped by the contracts, access by role, reports with their
 * headers. The routes are mounted on an app of their own (the platform's guard and users) over a compliance
 * service of fixtures with the real attestations and waivers.
 */
describe('compliance API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
  let compliance: FakeCompliance;
  let admin: TestCredentials;
  let officer: TestCredentials;
  let auditor: TestCredentials;
  let operator: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    app = await routeTestApp(t);
    admin = await t.signIn('admin');
    officer = await t.signIn('security-officer');
    auditor = await t.signIn('auditor');
    operator = await t.signIn('operator');
    compliance = createFakeCompliance({
      db: t.platform.store.db,
      events: t.platform.events,
      now: Date.now,
      approvers: [officer.username],
    });
    await app.register(complianceRoutes(compliance));
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const call = (who: TestCredentials, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });

  it('describes every compliance operation in the OpenAPI document with its permission', async () => {
    const doc = (await call(auditor, 'GET', '/api/v1/openapi.json')).json<{
      paths: Record<string, Record<string, { 'x-permission'?: string }>>;
    }>();
    const operations = Object.values(contracts).filter(
      (v) => typeof v === 'object' && 'path' in v && 'method' in v,
    );
    expect(operations).toHaveLength(14);
    for (const c of operations) {
      const path = c.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const operation = doc.paths[path]?.[c.method.toLowerCase()];
      expect(operation, `${c.method} ${c.path}`).toBeDefined();
      expect(operation?.['x-permission']).toBe(c.access);
    }
  });

  it('a report before any run is a conflict (409) and starts no run', async () => {
    const r = await call(auditor, 'GET', '/api/v1/compliance/reports/etsi-en-303-645');
    expect(r.statusCode).toBe(409);
    const problem = r.json<{ code: string; detail: string }>();
    expect(problem.code).toBe('conflict');
    expect(problem.detail).toMatch(/^no compliance run yet: run `bulwark compliance run` or POST/);
    expect(compliance.runsMade).toEqual([]);
  });

  it('runs (compliance:write), lists runs with the trend, shows a run (compliance:read)', async () => {
    expect((await call(auditor, 'POST', '/api/v1/compliance/runs')).statusCode).toBe(403);
    expect((await call(operator, 'GET', '/api/v1/compliance/runs')).statusCode).toBe(403);

    const ran = await call(officer, 'POST', '/api/v1/compliance/runs');
    expect(ran.statusCode, ran.body).toBe(200);
    const run = contracts.runCompliance.response[200].strict().parse(ran.json());
    expect(run).toMatchObject({ id: 'run-1' });
    expect(run.createdBy).toMatch(new RegExp(`^user:${officer.username}/token:`));
    expect(run.standards[0]?.clauses.length).toBeGreaterThan(0);

    const listed = await call(auditor, 'GET', '/api/v1/compliance/runs?limit=5');
    expect(listed.statusCode, listed.body).toBe(200);
    const page = contracts.listRuns.response[200].strict().parse(listed.json());
    expect(page.runs.map((r) => r.id)).toEqual(['run-1']);
    const times = page.trend.map((p) => p.finishedAt);
    expect(times).toEqual([...times].sort((a, b) => a - b));

    const shown = await call(auditor, 'GET', '/api/v1/compliance/runs/run-1');
    expect(contracts.getRun.response[200].parse(shown.json()).id).toBe('run-1');
    const missing = await call(auditor, 'GET', '/api/v1/compliance/runs/nope');
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toMatch(/application\/problem\+json/);
  });

  it('lists the checks with their clauses and the standards', async () => {
    expect((await call(operator, 'GET', '/api/v1/compliance/checks')).statusCode).toBe(403);
    const checks = z
      .array(contracts.checkDefinition.strict())
      .parse((await call(auditor, 'GET', '/api/v1/compliance/checks')).json());
    expect(checks.find((c) => c.id === 'accounts.dormant')).toMatchObject({
      needs: null,
      reads: ['users'],
      clauses: { 'etsi-en-303-645': ['5.1-1'] },
    });
    expect(checks.find((c) => c.id === 'net.unauthenticated-listener')?.needs).toBe('operator');
    const standards = z
      .array(contracts.framework)
      .parse((await call(auditor, 'GET', '/api/v1/compliance/standards')).json());
    expect(standards.map((s) => s.id)).toEqual(['etsi-en-303-645']);
  });

  it('serves reports as attachments: HTML with its CSP, JSON and OSCAL as JSON', async () => {
    await call(admin, 'POST', '/api/v1/compliance/runs');
    const html = await call(auditor, 'GET', '/api/v1/compliance/reports/etsi-en-303-645');
    expect(html.statusCode, html.body).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers['content-security-policy']).toBe(HTML_REPORT_CSP);
    expect(html.headers['content-disposition']).toMatch(
      /^attachment; filename="bulwark-etsi-en-303-645-run-\d+\.html"$/,
    );
    expect(html.body).toMatch(/^<!doctype html>/i);

    const json = await call(
      auditor,
      'GET',
      '/api/v1/compliance/reports/etsi-en-303-645?format=json&run=run-1',
    );
    expect(json.headers['content-type']).toMatch(/^application\/json/);
    expect(json.headers['content-disposition']).toContain('bulwark-etsi-en-303-645-run-1.json');
    expect(json.json()).toMatchObject({ standard: { id: 'etsi-en-303-645' }, run: { id: 'run-1' } });

    const oscal = await call(auditor, 'GET', '/api/v1/compliance/reports/etsi-en-303-645?format=oscal');
    expect(oscal.headers['content-disposition']).toMatch(/\.oscal\.json"$/);
    expect(oscal.json()).toHaveProperty('assessment-results');

    const unknown = await call(auditor, 'GET', '/api/v1/compliance/reports/iso-9001');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.body).toMatch(/iso-9001 \(known: etsi-en-303-645/);
    expect((await call(auditor, 'GET', '/api/v1/compliance/reports/ISO_9001')).statusCode).toBe(400);
    expect((await call(auditor, 'GET', '/api/v1/compliance/reports/gdpr?format=pdf')).statusCode).toBe(400);
    expect((await call(operator, 'GET', '/api/v1/compliance/reports/gdpr')).statusCode).toBe(403);
  });

  it('records, lists and revokes attestations and serves their evidence files', async () => {
    const body = {
      standard: 'etsi-en-303-645',
      clause: '5.2-1',
      statement: 'The policy is published.',
      owner: 'Security team',
      files: [
        { name: 'policy.txt', mediaType: 'text/plain', content: Buffer.from('policy').toString('base64') },
      ],
      reviewAt: new Date(Date.now() + 30 * DAY).toISOString(),
      expiresAt: Date.now() + 365 * DAY,
    };
    expect((await call(auditor, 'POST', '/api/v1/compliance/attestations', body)).statusCode).toBe(403);
    const made = await call(officer, 'POST', '/api/v1/compliance/attestations', body);
    expect(made.statusCode, made.body).toBe(201);
    const attestation = contracts.recordAttestation.response[201].strict().parse(made.json());
    const sha = createHash('sha256').update('policy').digest('hex');
    expect(attestation.files).toEqual([
      { name: 'policy.txt', sha256: sha, size: 6, mediaType: 'text/plain' },
    ]);

    const automated = await call(officer, 'POST', '/api/v1/compliance/attestations', {
      ...body,
      clause: '5.1-1',
    });
    expect(automated.statusCode).toBe(400);
    expect(automated.json<{ detail: string }>().detail).toMatch(/^clause: .*automated/);
    const badDate = await call(officer, 'POST', '/api/v1/compliance/attestations', {
      ...body,
      expiresAt: 'soon',
    });
    expect(badDate.statusCode).toBe(400);

    const file = await call(auditor, 'GET', `/api/v1/compliance/evidence/${sha}`);
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-type']).toMatch(/^text\/plain/);
    expect(file.headers['content-disposition']).toBe(`attachment; filename="${sha}"`);
    expect(file.headers['content-security-policy']).toContain('sandbox');
    expect(file.body).toBe('policy');
    expect((await call(auditor, 'GET', `/api/v1/compliance/evidence/${'0'.repeat(64)}`)).statusCode).toBe(
      404,
    );
    expect((await call(auditor, 'GET', '/api/v1/compliance/evidence/xyz')).statusCode).toBe(400);

    const list = z
      .array(contracts.attestationRecord.strict())
      .parse((await call(auditor, 'GET', '/api/v1/compliance/attestations')).json());
    expect(list.map((a) => a.id)).toEqual([attestation.id]);
    const revoked = await call(officer, 'DELETE', `/api/v1/compliance/attestations/${attestation.id}`, {
      reason: 'superseded',
    });
    expect(revoked.statusCode, revoked.body).toBe(200);
    expect(revoked.json<{ revokedAt: number | null }>().revokedAt).not.toBeNull();
    expect((await call(auditor, 'GET', '/api/v1/compliance/attestations')).json()).toEqual([]);
    expect(
      (await call(auditor, 'GET', '/api/v1/compliance/attestations?includeRevoked=true')).json(),
    ).toHaveLength(1);
  });

  it('takes evidence files up to the contract maximum (2 MiB each); larger ones are refused naming files', async () => {
    const body = (bytes: number, name = 'scan.bin') => ({
      standard: 'etsi-en-303-645',
      clause: '5.2-1',
      statement: 'The penetration test report.',
      owner: 'Security team',
      files: [{ name, mediaType: 'application/pdf', content: Buffer.alloc(bytes, 7).toString('base64') }],
      reviewAt: Date.now() + 30 * DAY,
      expiresAt: Date.now() + 365 * DAY,
    });
    const full = await call(officer, 'POST', '/api/v1/compliance/attestations', body(2 * 1024 * 1024));
    expect(full.statusCode, full.body.slice(0, 300)).toBe(201);
    expect(contracts.attestationRecord.parse(full.json()).files[0]?.size).toBe(2 * 1024 * 1024);

    const over = await call(officer, 'POST', '/api/v1/compliance/attestations', body(2 * 1024 * 1024 + 1));
    expect(over.statusCode).toBe(400);
    expect(over.json<{ detail: string }>().detail).toMatch(
      /^files\[0\] \(scan\.bin\): 2097153 bytes, more than/,
    );
    const tooLong = await call(officer, 'POST', '/api/v1/compliance/attestations', body(2 * 1024 * 1024 + 6));
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.body).toMatch(/files/);
  });

  it('lists attestations and waivers up to limit (default 100, at most 1000)', async () => {
    for (const path of ['attestations', 'waivers']) {
      const url = `/api/v1/compliance/${path}?includeRevoked=true`;
      const all = (await call(auditor, 'GET', url)).json<unknown[]>();
      const one = await call(auditor, 'GET', `${url}&limit=1`);
      expect(one.statusCode, one.body).toBe(200);
      expect(one.json()).toEqual(all.slice(0, 1));
      expect((await call(auditor, 'GET', `${url}&limit=1001`)).statusCode).toBe(400);
      expect((await call(auditor, 'GET', `${url}&limit=0`)).statusCode).toBe(400);
    }
  });

  it('asks for waivers pending the approver named, lists and revokes them', async () => {
    const body = {
      check: 'accounts.dormant',
      reason: 'Seasonal staff accounts stay until spring.',
      approver: officer.username,
      expiresAt: new Date(Date.now() + 30 * DAY).toISOString(),
    };
    expect((await call(auditor, 'POST', '/api/v1/compliance/waivers', body)).statusCode).toBe(403);
    const own = await call(officer, 'POST', '/api/v1/compliance/waivers', body);
    expect(own.statusCode).toBe(400);
    expect(own.json<{ detail: string }>().detail).toMatch(/^approver: another user must approve/);
    const notApprover = await call(admin, 'POST', '/api/v1/compliance/waivers', {
      ...body,
      approver: auditor.username,
    });
    expect(notApprover.json<{ detail: string }>().detail).toMatch(
      /is not an enabled user allowed to approve/,
    );
    const unknownCheck = await call(admin, 'POST', '/api/v1/compliance/waivers', { ...body, check: 'x.y' });
    expect(unknownCheck.json<{ detail: string }>().detail).toMatch(/^check: no automated check/);

    const granted = await call(admin, 'POST', '/api/v1/compliance/waivers', body);
    expect(granted.statusCode, granted.body).toBe(201);
    const waiver = contracts.grantWaiver.response[201].strict().parse(granted.json());
    expect(waiver).toMatchObject({ approver: officer.username, status: 'pending', approvedAt: null });
    expect(waiver.createdBy).toMatch(new RegExp(`^user:${admin.username}/token:`));
    const list = z
      .array(contracts.waiverRecord.strict())
      .parse((await call(auditor, 'GET', '/api/v1/compliance/waivers')).json());
    expect(list.map((w) => w.id)).toEqual([waiver.id]);
    expect(
      (await call(auditor, 'DELETE', `/api/v1/compliance/waivers/${waiver.id}`, { reason: 'x' })).statusCode,
    ).toBe(403);
    const revoked = await call(admin, 'DELETE', `/api/v1/compliance/waivers/${waiver.id}`, {
      reason: 'fixed',
    });
    expect(revoked.statusCode, revoked.body).toBe(200);
    expect(
      (await call(admin, 'DELETE', `/api/v1/compliance/waivers/${waiver.id}`, { reason: 'again' }))
        .statusCode,
    ).toBe(409);
  });

  it('a waiver is approved only by the approver it names (compliance:approve), never by its creator', async () => {
    const asked = await call(admin, 'POST', '/api/v1/compliance/waivers', {
      check: 'accounts.dormant',
      reason: 'Seasonal staff accounts stay until spring.',
      approver: officer.username,
      expiresAt: day(Date.now() + 30 * DAY),
    });
    expect(asked.statusCode, asked.body).toBe(201);
    const { id, expiresAt } = contracts.waiverRecord.parse(asked.json());
    // A date-only expiry is the end of that day, UTC.
    expect(new Date(expiresAt).toISOString()).toMatch(/T23:59:59\.999Z$/);
    const approve = (who: TestCredentials, waiver = id) =>
      call(who, 'POST', `/api/v1/compliance/waivers/${waiver}/approve`);

    expect((await approve(auditor)).statusCode).toBe(403); // no compliance:approve
    const byCreator = await approve(admin); // holds compliance:approve, but asked for it and is not named
    expect(byCreator.statusCode).toBe(403);
    expect(byCreator.json<{ detail: string }>().detail).toMatch(/names .* to approve it, not/);
    expect((await approve(officer, 'missing')).statusCode).toBe(404);
    const pending = z
      .array(contracts.waiverRecord.strict())
      .parse((await call(auditor, 'GET', '/api/v1/compliance/waivers')).json())
      .find((w) => w.id === id);
    expect(pending?.status).toBe('pending');

    const approved = await approve(officer);
    expect(approved.statusCode, approved.body).toBe(200);
    const record = contracts.approveWaiver.response[200].strict().parse(approved.json());
    expect(record).toMatchObject({ id, status: 'approved' });
    expect(record.approvedBy).toMatch(new RegExp(`^user:${officer.username}/token:`));
    expect((await approve(officer)).statusCode).toBe(409);
    const event = (await t.platform.audit.readAfter(0)).find(
      (e) => e.type === 'compliance.waiver_approved' && e.subject === `waiver:${id}`,
    );
    expect(event?.actor).toBe(record.approvedBy);
  });
});
