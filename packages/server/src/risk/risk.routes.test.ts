import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import { riskRoutes } from './risk.routes.ts';

/** `POST /api/v1/risk/cvss` in-process: scores shaped by the contract, refusals named, access by role. */
describe('CVSS API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
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
    auditor = await t.signIn('auditor');
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const score = (payload: object, headers: Record<string, string> = auditor.headers) =>
    app.inject({ method: 'POST', url: '/api/v1/risk/cvss', headers, payload });

  it('scores each vector and names the ones it refuses', async () => {
    const r = await score({
      vectors: [
        'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H/MAV:A',
        'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N',
        'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Z',
      ],
    });
    expect(r.statusCode).toBe(200);
    const body = api.risk.scoreCvss.response[200].parse(r.json());
    expect(body).toEqual({
      scores: [
        expect.objectContaining({
          index: 0,
          base: 9.8,
          temporal: 8.8,
          environmental: 7.9,
          score: 7.9,
          severity: 'high',
        }),
        expect.objectContaining({
          index: 1,
          version: '4.0',
          score: 9.3,
          kind: 'CVSS-B',
          severity: 'critical',
        }),
        {
          index: 2,
          vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Z',
          error: expect.stringMatching(/A:Z: A takes N, L, H$/) as unknown,
        },
      ],
      refused: 1,
    });
  });

  it('refuses a body without vectors, naming the field, and a caller without a session', async () => {
    const empty = await score({ vectors: [] });
    expect(empty.statusCode).toBe(400);
    expect(empty.body).toMatch(/vectors/);
    const anonymous = await score({ vectors: ['CVSS:3.1/AV:N'] }, {});
    expect(anonymous.statusCode).toBe(401);
  });
});
