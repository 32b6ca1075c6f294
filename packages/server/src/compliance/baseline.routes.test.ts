import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, DEFAULT_BASELINE_NAME } from '@bulwark/protocol';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import { baselineRoutes } from './baseline.routes.ts';
import { createBaselineService } from './baseline.service.ts';

const ACME = `name: acme-fleet
accounts: { dormantAfter: 30d }
disclosure: { contact: 'mailto:security@acme.example' }
`;

/** `/api/v1/baseline` in-process: answers shaped by the contracts, access by role, errors as problems. */
describe('baseline API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
  let admin: TestCredentials;
  let officer: TestCredentials;
  let auditor: TestCredentials;
  let operator: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    app = await routeTestApp(t);
    const { store, events, now } = t.platform;
    await app.register(baselineRoutes(createBaselineService({ db: store.db, events, now })));
    admin = await t.signIn('admin');
    officer = await t.signIn('security-officer');
    auditor = await t.signIn('auditor');
    operator = await t.signIn('operator');
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const call = (who: TestCredentials, method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) =>
    app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });

  it('shows the built-in baseline, validates, diffs and applies a document, and lists the versions', async () => {
    const shown = api.baseline.getBaseline.response[200]
      .strict()
      .parse((await call(auditor, 'GET', '/api/v1/baseline')).json());
    expect(shown).toMatchObject({ version: 0, name: DEFAULT_BASELINE_NAME, appliedAt: null });
    expect(shown.document).toContain('dormantAfter: 90d');

    const valid = await call(auditor, 'POST', '/api/v1/baseline/validate', { document: ACME });
    expect(api.baseline.validateBaseline.response[200].strict().parse(valid.json())).toEqual({
      valid: true,
      name: 'acme-fleet',
      errors: [],
    });

    const diff = await call(auditor, 'POST', '/api/v1/baseline/diff', { document: ACME });
    expect(api.baseline.diffBaseline.response[200].strict().parse(diff.json()).changes).toContainEqual({
      path: 'accounts.dormantAfter',
      before: 90 * 86_400_000,
      after: 30 * 86_400_000,
    });

    const applied = await call(admin, 'PUT', '/api/v1/baseline', { document: ACME });
    expect(applied.statusCode, applied.body).toBe(200);
    const body = api.baseline.applyBaseline.response[200].strict().parse(applied.json());
    expect(body).toMatchObject({ version: 1, name: 'acme-fleet' });
    expect(body.changes.map((c) => c.path)).toEqual(['accounts.dormantAfter', 'disclosure.contact', 'name']);

    const again = await call(admin, 'PUT', '/api/v1/baseline', { document: ACME });
    expect(again.json()).toEqual({ version: 1, name: 'acme-fleet', changes: [] });

    const current = (await call(officer, 'GET', '/api/v1/baseline')).json<{ version: number }>();
    expect(current).toMatchObject({
      version: 1,
      document: ACME,
      appliedBy: expect.stringMatching(new RegExp(`^user:${admin.username}\\b`)) as string,
    });
    const history = api.baseline.baselineHistory.response[200]
      .strict()
      .parse((await call(auditor, 'GET', '/api/v1/baseline/history')).json());
    expect(history.versions.map((v) => [v.version, v.appliedBy.split('/')[0]])).toEqual([
      [1, `user:${admin.username}`],
    ]);
  });

  it('answers an invalid document with a 400 problem listing every error, and changes nothing', async () => {
    const before = (await call(auditor, 'GET', '/api/v1/baseline/history')).json<{ versions: unknown[] }>();
    const bad = 'name: acme-fleet\nsessions:\n  maxIdle: forever\n  colour: blue\n';
    const refused = await call(admin, 'PUT', '/api/v1/baseline', { document: bad });
    expect(refused.statusCode).toBe(400);
    expect(refused.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(refused.json()).toMatchObject({
      code: 'validation_failed',
      status: 400,
      detail: expect.stringMatching(/line 3: sessions\.maxIdle/) as string,
      errors: [
        { path: 'sessions.maxIdle', line: 3, message: expect.stringMatching(/not a duration/) as string },
        { path: 'sessions.colour', line: 4, message: 'unknown setting' },
      ],
    });
    const diff = await call(auditor, 'POST', '/api/v1/baseline/diff', { document: bad });
    expect(diff.statusCode).toBe(400);
    expect(diff.json<{ errors: unknown[] }>().errors).toHaveLength(2);
    const validated = await call(auditor, 'POST', '/api/v1/baseline/validate', { document: bad });
    expect(validated.json()).toMatchObject({ valid: false, name: null, errors: [{ line: 3 }, { line: 4 }] });
    expect((await call(auditor, 'GET', '/api/v1/baseline/history')).json()).toEqual(before);
  });

  it('lets compliance readers read and only admins apply', async () => {
    for (const who of [officer, auditor]) {
      const put = await call(who, 'PUT', '/api/v1/baseline', { document: ACME });
      expect(put.statusCode, who.username).toBe(403);
    }
    for (const url of ['/api/v1/baseline', '/api/v1/baseline/history']) {
      expect((await call(operator, 'GET', url)).statusCode).toBe(403);
    }
    expect((await call(operator, 'POST', '/api/v1/baseline/validate', { document: ACME })).statusCode).toBe(
      403,
    );
    const anonymous = await app.inject({ method: 'GET', url: '/api/v1/baseline' });
    expect(anonymous.statusCode).toBe(401);
  });
});
