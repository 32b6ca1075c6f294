import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import { epssCsv, kevCatalog } from './feeds.fixtures.ts';
import { riskRoutes } from './risk.routes.ts';

const MiB = 1024 * 1024;

/** The feeds API in-process: imports by risk:write, status by risk:read, bodies bounded, refusals named. */
describe('offline feeds API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
  let officer: TestCredentials;
  let auditor: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    app = await routeTestApp(t);
    await app.register(
      riskRoutes({
        risk: t.platform.risk,
        releaseId: async (ref) => (await t.platform.firmware.releases.get(ref)).id,
      }),
    );
    officer = await t.signIn('security-officer');
    auditor = await t.signIn('auditor');
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const postKev = (payload: unknown, headers = officer.headers) =>
    app.inject({ method: 'POST', url: '/api/v1/risk/feeds/kev', headers, payload: JSON.stringify(payload) });
  const postEpss = (payload: string | Buffer, contentType: string, headers = officer.headers) =>
    app.inject({
      method: 'POST',
      url: '/api/v1/risk/feeds/epss',
      headers: { ...headers, 'content-type': contentType },
      payload,
    });
  const status = async () => {
    const r = await app.inject({ method: 'GET', url: '/api/v1/risk/feeds', headers: auditor.headers });
    expect(r.statusCode).toBe(200);
    return api.risk.feedsStatus.response[200].parse(r.json());
  };

  it('imports the KEV catalog as JSON; a refused one names the field and stores nothing', async () => {
    const r = await postKev(kevCatalog(), { ...officer.headers, 'content-type': 'application/json' });
    expect(r.statusCode, r.body).toBe(200);
    expect(api.risk.importKev.response[200].parse(r.json())).toEqual({ entries: 3, version: '2024.09.21' });

    const bad = await postKev(kevCatalog(undefined, { count: 2 }), {
      ...officer.headers,
      'content-type': 'application/json',
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({
      code: 'validation_failed',
      detail: 'count: says 2 vulnerabilities, the catalog lists 3',
    });
    expect((await status()).kev.entries).toBe(3);
  });

  it('imports EPSS as text/csv or as the gzipped file; other bodies are refused', async () => {
    const csv = epssCsv(['CVE-2021-44228,0.97565,0.99996', 'CVE-2019-10744,0.01243,0.85178']);
    const plain = await postEpss(csv, 'text/csv');
    expect(plain.statusCode, plain.body).toBe(200);
    expect(api.risk.importEpss.response[200].parse(plain.json())).toEqual({
      entries: 2,
      version: 'v2023.03.01',
      scoreDate: '2024-03-01',
    });
    const gzipped = await postEpss(gzipSync(epssCsv(['CVE-2021-44228,0.5,0.9'])), 'application/gzip');
    expect(gzipped.statusCode, gzipped.body).toBe(200);
    expect((await status()).epss).toMatchObject({ entries: 1, scoreDate: '2024-03-01' });

    const bad = await postEpss(epssCsv(['CVE-2021-44228,0.5,0.9', 'CVE-2021-44228,0.5,0.9']), 'text/csv');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ detail: 'line 4: cve CVE-2021-44228 is scored twice' });
    expect((await postEpss(csv, 'text/plain')).statusCode).toBe(415);
    expect((await postEpss(JSON.stringify({ csv }), 'application/json')).statusCode).toBe(415);
    expect((await status()).epss.entries).toBe(1);
  });

  it('bounds the bodies: a KEV catalog over 8 MiB, an EPSS body that gunzips past 32 MiB', async () => {
    const padded = kevCatalog(undefined, { notes: 'x'.repeat(8 * MiB) });
    const tooLarge = await postKev(padded, { ...officer.headers, 'content-type': 'application/json' });
    expect(tooLarge.statusCode).toBe(413);
    const bomb = gzipSync(Buffer.alloc(33 * MiB, 0x61));
    const inflated = await postEpss(bomb, 'application/gzip');
    expect(inflated.statusCode).toBe(400);
    expect(inflated.json()).toMatchObject({
      detail: 'the request body: gunzipped, larger than the limit of 32 MiB',
    });
  });

  it('lets risk:write import and risk:read see the status, nobody else', async () => {
    const kev = await postKev(kevCatalog(), { ...auditor.headers, 'content-type': 'application/json' });
    expect(kev.statusCode).toBe(403);
    expect(
      (await postEpss(epssCsv(['CVE-2021-44228,0.5,0.9']), 'text/csv', auditor.headers)).statusCode,
    ).toBe(403);
    const viewer = await t.signIn('viewer');
    const r = await app.inject({ method: 'GET', url: '/api/v1/risk/feeds', headers: viewer.headers });
    expect(r.statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/api/v1/risk/feeds' })).statusCode).toBe(401);
  });
});
