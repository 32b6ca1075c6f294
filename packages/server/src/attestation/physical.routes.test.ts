import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import { physicalRoutes } from './physical.routes.ts';
import { createPhysicalSites } from './physical.service.ts';

/** `/api/v1/physical/sites` in-process: answers shaped by the contracts, access by role, errors as problems. */
describe('physical sites API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
  let officer: TestCredentials;
  let auditor: TestCredentials;
  let operator: TestCredentials;
  let scoped: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    app = await routeTestApp(t);
    const { store, events, now } = t.platform;
    await app.register(physicalRoutes(createPhysicalSites({ db: store.db, events, now })));
    officer = await t.signIn('security-officer');
    auditor = await t.signIn('auditor');
    operator = await t.signIn('operator');
    scoped = await t.signIn('security-officer', { username: 'plant-officer', groups: ['plant-floor'] });
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const call = (
    who: TestCredentials,
    method: 'GET' | 'PUT' | 'POST' | 'DELETE',
    url: string,
    payload?: object,
  ) => app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });

  it('records a site, grants and revokes access, and lists them', async () => {
    const put = await call(officer, 'PUT', '/api/v1/physical/sites/plant-1', {
      owner: 'Facilities',
      description: 'North gate',
      groups: ['plant-floor'],
    });
    expect(put.statusCode, put.body).toBe(200);
    const site = api.attestation.putSite.response[200].strict().parse(put.json());
    expect(site).toMatchObject({ name: 'plant-1', owner: 'Facilities', groups: ['plant-floor'], access: [] });
    expect(site.updatedBy).toMatch(/^user:/);

    const granted = await call(officer, 'POST', '/api/v1/physical/sites/plant-1/access', {
      person: 'Grace Hopper',
      role: 'maintenance',
      reviewAt: '90d',
    });
    expect(granted.statusCode, granted.body).toBe(201);
    const access = api.attestation.grantAccess.response[201].strict().parse(granted.json());
    expect(access).toMatchObject({ site: 'plant-1', person: 'Grace Hopper', expiresAt: null });

    const listed = await call(auditor, 'GET', '/api/v1/physical/sites');
    expect(listed.statusCode, listed.body).toBe(200);
    const { sites } = api.attestation.listSites.response[200].strict().parse(listed.json());
    expect(sites.map((s) => [s.name, s.access.map((a) => a.id)])).toEqual([['plant-1', [access.id]]]);

    const url = `/api/v1/physical/sites/plant-1/access/${access.id}`;
    const revoked = await call(officer, 'DELETE', url, { reason: 'left the company' });
    expect(api.attestation.revokeAccess.response[200].parse(revoked.json())).toEqual({ removed: true });
    expect((await call(officer, 'DELETE', url, { reason: 'again' })).json()).toEqual({ removed: false });
  });

  it('refuses bad input and unknown sites as problems', async () => {
    const badName = await call(officer, 'PUT', '/api/v1/physical/sites/-x', { owner: 'Facilities' });
    expect(badName.statusCode).toBe(400);
    expect(badName.json()).toMatchObject({ code: 'validation_failed' });
    const noSite = await call(officer, 'POST', '/api/v1/physical/sites/nowhere/access', {
      person: 'Grace',
      reviewAt: '30d',
    });
    expect(noSite.statusCode).toBe(404);
    expect(noSite.json()).toMatchObject({ code: 'not_found', detail: 'no site "nowhere"' });
    await call(officer, 'PUT', '/api/v1/physical/sites/plant-2', { owner: 'Facilities' });
    const past = await call(officer, 'POST', '/api/v1/physical/sites/plant-2/access', {
      person: 'Grace',
      reviewAt: 1000,
    });
    expect(past.statusCode).toBe(400);
    expect(past.json()).toMatchObject({
      code: 'validation_failed',
      detail: 'reviewAt: must be in the future',
    });
  });

  it('reads with compliance:read, changes with compliance:write, fleet-wide users only', async () => {
    expect((await call(operator, 'GET', '/api/v1/physical/sites')).statusCode).toBe(403);
    const auditorPut = await call(auditor, 'PUT', '/api/v1/physical/sites/plant-3', { owner: 'x' });
    expect(auditorPut.statusCode).toBe(403);
    const scopedRead = await call(scoped, 'GET', '/api/v1/physical/sites');
    expect(scopedRead.statusCode).toBe(403);
    expect(scopedRead.json()).toMatchObject({ code: 'forbidden' });
    expect((await call(scoped, 'PUT', '/api/v1/physical/sites/plant-3', { owner: 'x' })).statusCode).toBe(
      403,
    );
    const listed = api.attestation.listSites.response[200].parse(
      (await call(auditor, 'GET', '/api/v1/physical/sites')).json(),
    );
    expect(listed.sites.map((s) => s.name)).not.toContain('plant-3');
  });
});
