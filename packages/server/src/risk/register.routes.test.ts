import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import type { SecurityEvent } from '../events/index.ts';
import { createTestStore, type TestStore } from '../test-support/dialects.ts';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import { plantWorld, riskTestbed, type RegisterWorld, type RiskTestbed } from '../test-support/risk.ts';
import { registerRoutes } from './register.routes.ts';
import type { Risk } from './index.ts';

const SAMPLE = fileURLToPath(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url));
const DAY = 86_400_000;
const c = api.riskRegister;
/** An item name a report must escape. */
const ITEM = 'PC-200 <dosing-pump> controller & "co"';
const CSP = /^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'/;

/** The parts of a TARA document the tests change. */
interface TaraDoc {
  item: string;
  description?: string;
  assets: { id: string; ref?: string }[];
  damageScenarios: { impact: Record<string, string> }[];
  threatScenarios: { id: string; treatment: { checks: string[] } }[];
}

/** The sample TARA (its firmware asset linked to the inventory's `firmware:pump-fw`), as JSON. */
function sampleTara(edit: (doc: TaraDoc) => void = () => undefined): TaraDoc {
  const doc = parseYaml(readFileSync(SAMPLE, 'utf8')) as TaraDoc;
  doc.item = ITEM;
  for (const a of doc.assets) if (a.id === 'firmware') a.ref = 'firmware:pump-fw';
  edit(doc);
  return doc;
}

interface Problem {
  code: string;
  detail: string;
  status: number;
}

/** A refusal: the status, problem+json with a code, and the detail. */
function problem(r: LightMyRequestResponse, status: number): Problem {
  expect(r.statusCode, r.body).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/problem\+json/);
  const p = r.json<Problem>();
  expect(p.status).toBe(status);
  expect(typeof p.code).toBe('string');
  return p;
}

/**
 * `/api/v1/risk` (api.riskRegister) in-process: the routes on an app of their own (the platform's guard and
 * users) over a real register — a SQLite store, the real firmware service, the inventory and compliance reads
 * of a world the test sets. Answers against the contracts, refusals as problems naming the field with nothing
 * stored, access by role.
 */
describe('risk register API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
  let store: TestStore;
  let risk: Risk;
  let world: RegisterWorld;
  let clock: RiskTestbed['clock'];
  let events: SecurityEvent[];
  let officer: TestCredentials;
  let auditor: TestCredentials;
  let viewer: TestCredentials;
  let scoped: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    app = await routeTestApp(t);
    store = await createTestStore('sqlite');
    const bed = await riskTestbed(store, { world: plantWorld() });
    ({ risk, events, clock, world } = bed);
    await bed.release('1.0.0', ['pkg:npm/lodash@4.17.21']);
    await app.register(registerRoutes(risk.register));
    await app.ready();
    officer = await t.signIn('security-officer');
    auditor = await t.signIn('auditor');
    viewer = await t.signIn('viewer');
    scoped = await t.signIn('security-officer', { username: 'pumps-officer', groups: ['pumps'] });
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
    await store?.cleanup();
  });

  const call = (
    who: TestCredentials,
    method: 'GET' | 'PUT' | 'PATCH' | 'POST' | 'DELETE',
    url: string,
    payload?: object,
  ) => app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });
  const ok = (r: LightMyRequestResponse, status = 200): unknown => {
    expect(r.statusCode, r.body).toBe(status);
    return r.json();
  };
  const listRegister = async (query = '') =>
    c.register.response[200].parse(ok(await call(auditor, 'GET', `/api/v1/risk/register${query}`))).risks;
  const listTaras = async () =>
    c.taras.response[200].parse(ok(await call(auditor, 'GET', '/api/v1/risk/taras'))).taras;
  const listAssets = async (query = '') =>
    c.assets.response[200].parse(ok(await call(auditor, 'GET', `/api/v1/risk/assets${query}`))).assets;

  describe('assets', () => {
    it('lists the inventory, filtered by kind', async () => {
      const assets = await listAssets();
      expect(assets.map((a) => [a.id, a.kind, a.devices, a.present, a.owner])).toEqual([
        ['firmware:pump-fw', 'firmware', 0, true, null],
        ['model:PC-200', 'model', 2, true, null],
        ['zone:plant', 'zone', 2, true, null],
      ]);
      expect(assets.find((a) => a.id === 'zone:plant')?.detail).toBe('zone security level 2; 2 devices');
      expect((await listAssets('?kind=zone')).map((a) => a.id)).toEqual(['zone:plant']);
      expect(await listAssets('?kind=manual')).toEqual([]);
      const bad = problem(await call(auditor, 'GET', '/api/v1/risk/assets?kind=router'), 400);
      expect(bad).toMatchObject({ code: 'validation_failed' });
      expect(bad.detail).toMatch(/^querystring\/kind Invalid option/);
    });

    it("sets an inventory asset's owner and requirements; a manual asset covers its groups", async () => {
      const put = await call(officer, 'PUT', '/api/v1/risk/assets/zone:plant', {
        owner: 'Plant security',
        requirements: { integrity: 'high', availability: 'high' },
      });
      const zone = c.putAsset.response[200].strict().parse(ok(put));
      expect(zone).toEqual({
        id: 'zone:plant',
        kind: 'zone',
        name: 'plant',
        owner: 'Plant security',
        description: null,
        requirements: {
          confidentiality: 'medium',
          integrity: 'high',
          availability: 'high',
          authenticity: 'medium',
        },
        groups: [],
        devices: 2,
        detail: 'zone security level 2; 2 devices',
        present: true,
        updatedAt: clock.now,
      });
      // A second change keeps what the first set.
      const again = c.putAsset.response[200].parse(
        ok(await call(officer, 'PUT', '/api/v1/risk/assets/zone:plant', { description: 'Dosing line' })),
      );
      expect(again).toMatchObject({ owner: 'Plant security', description: 'Dosing line' });
      expect(again.requirements.integrity).toBe('high');

      const manual = c.putAsset.response[200].parse(
        ok(
          await call(officer, 'PUT', '/api/v1/risk/assets/manual:historian', {
            owner: 'IT',
            groups: ['pumps', 'pumps'],
          }),
        ),
      );
      expect(manual).toMatchObject({
        id: 'manual:historian',
        kind: 'manual',
        owner: 'IT',
        groups: ['pumps'],
        devices: 2,
        detail: 'groups pumps; 2 devices',
        present: true,
      });
      expect((await listAssets('?kind=manual')).map((a) => [a.id, a.owner])).toEqual([
        ['manual:historian', 'IT'],
      ]);
      expect((await listAssets()).find((a) => a.id === 'zone:plant')?.owner).toBe('Plant security');
    });

    it('deletes a manual asset (204), then answers 404', async () => {
      const deleted = await call(officer, 'DELETE', '/api/v1/risk/assets/manual:historian');
      expect(deleted.statusCode, deleted.body).toBe(204);
      expect(deleted.body).toBe('');
      expect(await listAssets('?kind=manual')).toEqual([]);
      const missing = problem(await call(officer, 'DELETE', '/api/v1/risk/assets/manual:historian'), 404);
      expect(missing).toMatchObject({
        code: 'not_found',
        detail: 'no annotated or manual asset manual:historian',
      });
    });

    it('refuses a bad asset id, an unknown level, groups on a derived asset, an unknown asset; nothing stored', async () => {
      const before = await listAssets();
      const badId = problem(
        await call(officer, 'PUT', '/api/v1/risk/assets/thing:plant', { owner: 'x' }),
        400,
      );
      expect(badId.code).toBe('validation_failed');
      expect(badId.detail).toBe(
        'params/id an asset id: <kind>:<name>, kind one of model, firmware, zone, conduit, data, manual',
      );
      const level = problem(
        await call(officer, 'PUT', '/api/v1/risk/assets/zone:plant', {
          requirements: { integrity: 'extreme' },
        }),
        400,
      );
      expect(level.code).toBe('validation_failed');
      expect(level.detail).toMatch(/^body\/requirements\/integrity Invalid option/);
      const groups = problem(
        await call(officer, 'PUT', '/api/v1/risk/assets/zone:plant', { groups: ['pumps'] }),
        400,
      );
      expect(groups).toMatchObject({
        code: 'validation_failed',
        detail: 'groups: only a manual asset names device groups (zone:plant is derived)',
      });
      const unknownField = problem(
        await call(officer, 'PUT', '/api/v1/risk/assets/zone:plant', { colour: 'red' }),
        400,
      );
      expect(unknownField.detail).toMatch(/Unrecognized key: "colour"/);
      const nowhere = problem(
        await call(officer, 'PUT', '/api/v1/risk/assets/zone:nowhere', { owner: 'x' }),
        404,
      );
      expect(nowhere).toMatchObject({ code: 'not_found' });
      expect(nowhere.detail).toMatch(/^no zone nowhere in the inventory/);
      expect(await listAssets()).toEqual(before);
    });
  });

  describe('TARAs', () => {
    it('saves the sample TARA: its threat scenarios become register risks', async () => {
      const saved = await call(officer, 'PUT', '/api/v1/risk/taras/pc-200', sampleTara());
      const body = c.saveTara.response[200].strict().parse(ok(saved));
      expect(body.risks).toEqual({ created: 3, updated: 0, closed: 0 });
      expect(body.tara).toMatchObject({
        id: 'pc-200',
        item: ITEM,
        version: 1,
        threats: 3,
        savedAt: clock.now,
      });
      expect(body.tara.savedBy).toMatch(new RegExp(`^user:${officer.username}`));
      expect(body.tara.risks).toEqual({ '1': 0, '2': 1, '3': 0, '4': 1, '5': 1 });
      expect(events.filter((e) => e.type === 'risk.tara_saved').map((e) => e.data)).toEqual([
        { item: ITEM, version: 1, threats: 3, created: 3, updated: 0, closed: 0 },
      ]);
    });

    it('lists and shows saved TARAs', async () => {
      const taras = await listTaras();
      expect(taras.map((x) => [x.id, x.item, x.version, x.threats])).toEqual([['pc-200', ITEM, 1, 3]]);
      const shown = c.getTara.response[200].parse(
        ok(await call(auditor, 'GET', '/api/v1/risk/taras/pc-200')),
      );
      expect(shown.tara).toEqual(taras[0]);
      expect(shown.document).toEqual(sampleTara());
      const result = shown.result as { item: string; threatScenarios: { id: string; risk: number }[] };
      expect(result.item).toBe(ITEM);
      expect(result.threatScenarios.map((x) => [x.id, x.risk])).toEqual([
        ['TS1', 4],
        ['TS2', 2],
        ['TS3', 5],
      ]);
      const missing = problem(await call(auditor, 'GET', '/api/v1/risk/taras/nope'), 404);
      expect(missing).toMatchObject({ code: 'not_found', detail: 'no TARA nope' });
    });

    it('serves the TARA report as HTML under its own CSP, the item escaped', async () => {
      const r = await call(auditor, 'GET', '/api/v1/risk/taras/pc-200/report.html');
      expect(r.statusCode, r.body).toBe(200);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-security-policy']).toMatch(CSP);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['content-disposition']).toBe('inline; filename="tara-pc-200.html"');
      expect(r.body).toContain('<h1>TARA: PC-200 &lt;dosing-pump&gt; controller &amp; &quot;co&quot;</h1>');
      expect(r.body).not.toContain('<dosing-pump>');
      expect(r.body).toContain('Installing a rolled-back, vulnerable firmware image over the air');
    });

    it('refuses a TARA with a missing rating, an unknown check, a ref the inventory lacks or a bad id; nothing stored', async () => {
      const taras = await listTaras();
      const register = await listRegister();
      const saved = events.length;
      const put = (id: string, doc: object) => call(officer, 'PUT', `/api/v1/risk/taras/${id}`, doc);

      const unrated = problem(
        await put(
          'pc-200',
          sampleTara((d) => {
            const first = d.damageScenarios[0];
            if (first) first.impact = {};
          }),
        ),
        400,
      );
      expect(unrated.code).toBe('validation_failed');
      expect(unrated.detail).toMatch(
        /^damageScenarios\.0\.impact: rate at least one of safety, financial, operational, privacy/,
      );
      const unknownCheck = problem(
        await put(
          'pc-200',
          sampleTara((d) => {
            const ts2 = d.threatScenarios[1];
            if (ts2) ts2.treatment.checks = ['net.tls-version', 'no.such-check'];
          }),
        ),
        400,
      );
      expect(unknownCheck).toMatchObject({
        code: 'validation_failed',
        detail: 'threatScenarios.1.treatment.checks.1: no.such-check is not a compliance check',
      });
      const missingRef = problem(
        await put(
          'pc-200',
          sampleTara((d) => {
            const first = d.assets[0];
            if (first) first.ref = 'zone:nowhere';
          }),
        ),
        400,
      );
      expect(missingRef.code).toBe('validation_failed');
      expect(missingRef.detail).toMatch(/^assets\.0\.ref: zone:nowhere is not in the inventory/);
      const badId = problem(await put('PC_200!', sampleTara()), 400);
      expect(badId.code).toBe('validation_failed');
      expect(badId.detail).toBe('params/id lower case letters, digits, . _ - (max 63)');
      const notAnObject = problem(
        await app.inject({
          method: 'PUT',
          url: '/api/v1/risk/taras/pc-200',
          headers: { ...officer.headers, 'content-type': 'application/json' },
          payload: '[1, 2]',
        }),
        400,
      );
      expect(notAnObject.code).toBe('validation_failed');

      expect(await listTaras()).toEqual(taras);
      expect(await listRegister()).toEqual(register);
      expect(events.length).toBe(saved);
    });

    it('refuses a TARA body over 1 MiB (413) and stores nothing', async () => {
      const big = sampleTara((d) => {
        d.description = 'x'.repeat(1024 * 1024);
      });
      const r = problem(await call(officer, 'PUT', '/api/v1/risk/taras/big', big), 413);
      expect(r.code).toBe('payload_too_large');
      expect((await listTaras()).map((x) => x.id)).toEqual(['pc-200']);
    });
  });

  describe('the register', () => {
    it('lists the risks, highest first, filtered by status and minimum risk', async () => {
      const risks = await listRegister();
      expect(
        risks.map((r) => [
          r.source.kind === 'tara' ? r.source.threat : r.source.kind,
          r.id,
          r.risk,
          r.status,
          r.owner,
        ]),
      ).toEqual([
        ['TS3', 'R-3', 5, 'open', 'Device engineering'],
        ['TS1', 'R-1', 4, 'open', 'Process engineering'],
        ['TS2', 'R-2', 2, 'open', 'Operations'],
      ]);
      expect(risks[0]).toMatchObject({
        source: { kind: 'tara', tara: 'pc-200', threat: 'TS3' },
        assets: ['firmware:pump-fw'],
        treatment: 'reduce',
        checks: ['firmware.staged-rollouts', 'firmware.known-vulnerabilities'],
        baseRisk: 5,
        raised: false,
        factors: [],
        reviewDueAt: clock.now + 365 * DAY,
      });
      expect((await listRegister('?minRisk=4')).map((r) => r.id)).toEqual(['R-3', 'R-1']);
      expect((await listRegister('?status=open')).map((r) => r.id)).toEqual(['R-3', 'R-1', 'R-2']);
      expect(await listRegister('?status=closed')).toEqual([]);
      const tooHigh = problem(await call(auditor, 'GET', '/api/v1/risk/register?minRisk=9'), 400);
      expect(tooHigh.code).toBe('validation_failed');
      expect(tooHigh.detail).toMatch(/^querystring\/minRisk /);
      const status = problem(await call(auditor, 'GET', '/api/v1/risk/register?status=done'), 400);
      expect(status.detail).toMatch(/^querystring\/status Invalid option/);
    });

    it('shows one risk with its history; an unknown one is 404', async () => {
      const shown = c.getRisk.response[200]
        .strict()
        .parse(ok(await call(auditor, 'GET', '/api/v1/risk/register/R-1')));
      expect(shown.risk).toMatchObject({
        id: 'R-1',
        title: 'Tampering with the set-point over the maintenance port',
        risk: 4,
      });
      expect(shown.history).toEqual([
        {
          at: clock.now,
          actor: expect.stringMatching(new RegExp(`^user:${officer.username}`)) as unknown,
          change: 'created',
          from: null,
          to: 4,
          detail: { source: 'tara:pc-200/TS1' },
        },
      ]);
      const missing = problem(await call(auditor, 'GET', '/api/v1/risk/register/R-99'), 404);
      expect(missing).toMatchObject({ code: 'not_found', detail: 'no risk R-99' });
    });

    it("changes a risk's owner, due date and status; the history grows and the register shows it", async () => {
      clock.now += DAY;
      const patched = await call(officer, 'PATCH', '/api/v1/risk/register/R-1', {
        owner: 'Maria',
        due: '2026-03-01',
        status: 'treating',
        note: 'port to be disabled',
      });
      const risk = c.updateRisk.response[200].strict().parse(ok(patched));
      expect(risk).toMatchObject({ id: 'R-1', owner: 'Maria', due: '2026-03-01', status: 'treating' });
      const { history } = c.getRisk.response[200].parse(
        ok(await call(auditor, 'GET', '/api/v1/risk/register/R-1')),
      );
      expect(history.map((h) => [h.change, h.detail])).toEqual([
        ['updated', { status: 'treating', note: 'port to be disabled' }],
        ['updated', { owner: 'Maria', due: '2026-03-01', note: 'port to be disabled' }],
        ['created', { source: 'tara:pc-200/TS1' }],
      ]);
      expect(history[0]?.at).toBe(clock.now);
      const row = (await listRegister()).find((r) => r.id === 'R-1');
      expect(row).toMatchObject({ owner: 'Maria', due: '2026-03-01', status: 'treating' });
      expect((await listRegister('?status=treating')).map((r) => r.id)).toEqual(['R-1']);
      // Clearing the due date.
      const cleared = c.updateRisk.response[200].parse(
        ok(await call(officer, 'PATCH', '/api/v1/risk/register/R-1', { due: null })),
      );
      expect(cleared.due).toBeNull();
      const restored = c.updateRisk.response[200].parse(
        ok(await call(officer, 'PATCH', '/api/v1/risk/register/R-1', { due: '2026-03-01' })),
      );
      expect(restored.due).toBe('2026-03-01');
    });

    it('refuses an unknown status, a bad date, only a note and an unknown risk; nothing changes', async () => {
      const before = ok(await call(auditor, 'GET', '/api/v1/risk/register/R-1'));
      const patch = (id: string, body: object) => call(officer, 'PATCH', `/api/v1/risk/register/${id}`, body);
      const status = problem(await patch('R-1', { status: 'done' }), 400);
      expect(status.code).toBe('validation_failed');
      expect(status.detail).toMatch(/^body\/status Invalid option/);
      const due = problem(await patch('R-1', { due: '1 March' }), 400);
      expect(due.code).toBe('validation_failed');
      expect(due.detail).toBe('body/due a date, YYYY-MM-DD');
      const noteOnly = problem(await patch('R-1', { note: 'only a note' }), 400);
      expect(noteOnly.code).toBe('validation_failed');
      expect(noteOnly.detail).toMatch(/nothing to change/);
      const unknownField = problem(await patch('R-1', { severity: 'high' }), 400);
      expect(unknownField.detail).toMatch(/Unrecognized key: "severity"/);
      const same = problem(await patch('R-1', { owner: 'Maria' }), 409);
      expect(same).toMatchObject({ code: 'conflict', detail: 'risk R-1 already has these values' });
      const unknown = problem(await patch('R-99', { owner: 'x' }), 404);
      expect(unknown).toMatchObject({ code: 'not_found', detail: 'no risk R-99' });
      expect(ok(await call(auditor, 'GET', '/api/v1/risk/register/R-1'))).toEqual(before);
    });

    it('records a review: the next one is due after the baseline interval', async () => {
      clock.now += DAY;
      const reviewed = await call(officer, 'POST', '/api/v1/risk/register/R-2/review', {
        note: 'mutual TLS verified on every listener',
      });
      const risk = c.reviewRisk.response[200].strict().parse(ok(reviewed));
      expect(risk).toMatchObject({ id: 'R-2', assessedAt: clock.now, reviewDueAt: clock.now + 365 * DAY });
      const { history } = c.getRisk.response[200].parse(
        ok(await call(auditor, 'GET', '/api/v1/risk/register/R-2')),
      );
      expect(history.map((h) => h.change)).toEqual(['reviewed', 'created']);
      expect(history[0]?.detail).toEqual({
        note: 'mutual TLS verified on every listener',
        reviewDueAt: clock.now + 365 * DAY,
      });
      const blank = problem(
        await call(officer, 'POST', '/api/v1/risk/register/R-2/review', { note: '  ' }),
        400,
      );
      expect(blank.detail).toMatch(/^body\/note /);
      const missing = problem(
        await call(officer, 'POST', '/api/v1/risk/register/R-99/review', { note: 'x' }),
        404,
      );
      expect(missing.code).toBe('not_found');
    });

    it('re-assesses from the live fleet: a failing treatment check raises its risk', async () => {
      const quiet = c.reassess.response[200]
        .strict()
        .parse(ok(await call(officer, 'POST', '/api/v1/risk/register/reassess')));
      expect(quiet).toEqual({ examined: 3, changed: 0, raised: 0, lowered: 0 });
      world.measured = {
        runId: 'cr_1',
        measuredAt: clock.now,
        achieved: 2,
        blocking: { 1: [], 2: [], 3: ['net.tls-version'], 4: ['net.tls-version'] },
        statuses: { 'net.tls-version': 'fail', 'net.device-mutual-tls': 'pass' },
      };
      const moved = c.reassess.response[200].parse(
        ok(await call(officer, 'POST', '/api/v1/risk/register/reassess')),
      );
      expect(moved).toEqual({ examined: 3, changed: 1, raised: 1, lowered: 0 });
      const r2 = (await listRegister()).find((r) => r.id === 'R-2');
      expect(r2).toMatchObject({
        baseRisk: 2,
        risk: 3,
        feasibility: 'high',
        raised: true,
        factors: [{ kind: 'failing-check', ref: 'net.tls-version' }],
      });
      expect((await listRegister('?minRisk=3')).map((r) => r.id)).toEqual(['R-3', 'R-1', 'R-2']);
    });

    it('shows zone levels: target from the zone, achieved from the latest compliance run', async () => {
      const zones = async () =>
        c.zones.response[200].strict().parse(ok(await call(auditor, 'GET', '/api/v1/risk/zones'))).zones;
      expect(await zones()).toEqual([
        { zone: 'plant', target: 2, achieved: 2, gap: 0, blocking: [], devices: 2, measuredAt: clock.now },
      ]);
      world.zones = [{ name: 'plant', securityLevel: 3 }];
      expect(await zones()).toEqual([
        {
          zone: 'plant',
          target: 3,
          achieved: 2,
          gap: 1,
          blocking: ['net.tls-version'],
          devices: 2,
          measuredAt: clock.now,
        },
      ]);
    });

    it('serves the register report as HTML under its own CSP', async () => {
      const r = await call(auditor, 'GET', '/api/v1/risk/register/report.html');
      expect(r.statusCode, r.body).toBe(200);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-security-policy']).toMatch(CSP);
      expect(r.headers['content-disposition']).toBe('inline; filename="risk-register.html"');
      expect(r.body).toContain('<table id="register">');
      expect(r.body).toContain('<table id="zones">');
      for (const id of ['R-1', 'R-2', 'R-3']) expect(r.body).toContain(`id="risk-${id}"`);
      expect(r.body).toContain('Maria');
      expect(r.body).toContain('mutual TLS verified on every listener');
    });

    it('serves the same report as JSON, against its contract', async () => {
      const r = await call(auditor, 'GET', '/api/v1/risk/register/report.json');
      expect(r.statusCode, r.body).toBe(200);
      const report = api.riskRegister.registerReportJson.response[200].parse(r.json());
      expect(report.risks.map((x) => x.id).sort()).toEqual(['R-1', 'R-2', 'R-3']);
      expect(report.zones.map((z) => z.zone)).toEqual(['plant']);
      expect(report.baseline).toEqual({ reassessEvery: 365 * 86_400_000, alertOnIncrease: 1 });
      expect(report.history['R-1']?.at(-1)?.change).toBe('created');
    });
  });

  describe('access', () => {
    const reads = [
      '/api/v1/risk/assets',
      '/api/v1/risk/taras',
      '/api/v1/risk/taras/pc-200',
      '/api/v1/risk/taras/pc-200/report.html',
      '/api/v1/risk/register',
      '/api/v1/risk/register/R-1',
      '/api/v1/risk/register/report.html',
      '/api/v1/risk/register/report.json',
      '/api/v1/risk/zones',
    ];
    const writes: [method: 'PUT' | 'PATCH' | 'POST' | 'DELETE', url: string, body?: object][] = [
      ['PUT', '/api/v1/risk/assets/zone:plant', { owner: 'Mallory' }],
      ['DELETE', '/api/v1/risk/assets/zone:plant'],
      ['PUT', '/api/v1/risk/taras/pc-200', sampleTara()],
      ['PATCH', '/api/v1/risk/register/R-1', { owner: 'Mallory' }],
      ['POST', '/api/v1/risk/register/R-1/review', { note: 'looked' }],
      ['POST', '/api/v1/risk/register/reassess'],
    ];

    it('a viewer (no risk:read) reads nothing; without a session it is 401', async () => {
      for (const url of reads) {
        const r = problem(await call(viewer, 'GET', url), 403);
        expect(r, url).toMatchObject({
          code: 'forbidden',
          detail: 'your role (viewer) lacks the permission risk:read',
        });
      }
      expect(problem(await app.inject({ method: 'GET', url: '/api/v1/risk/register' }), 401).code).toBe(
        'unauthenticated',
      );
    });

    it('an auditor reads everything but writes nothing', async () => {
      for (const url of reads) expect((await call(auditor, 'GET', url)).statusCode, url).toBe(200);
      const before = { register: await listRegister(), assets: await listAssets(), taras: await listTaras() };
      for (const [method, url, body] of writes) {
        const r = problem(await call(auditor, method, url, body), 403);
        expect(r, `${method} ${url}`).toMatchObject({
          code: 'forbidden',
          detail: 'your role (auditor) lacks the permission risk:write',
        });
      }
      expect({
        register: await listRegister(),
        assets: await listAssets(),
        taras: await listTaras(),
      }).toEqual(before);
    });

    it('a user limited to device groups is refused: the register covers the whole fleet', async () => {
      const before = { register: await listRegister(), assets: await listAssets(), taras: await listTaras() };
      for (const url of reads) {
        const r = problem(await call(scoped, 'GET', url), 403);
        expect(r.code, url).toBe('forbidden');
        expect(r.detail, url).toMatch(/covers the whole fleet/);
      }
      for (const [method, url, body] of writes) {
        const r = problem(await call(scoped, method, url, body), 403);
        expect(r.detail, `${method} ${url}`).toMatch(/covers the whole fleet/);
      }
      expect({
        register: await listRegister(),
        assets: await listAssets(),
        taras: await listTaras(),
      }).toEqual(before);
    });

    it('a security officer writes: a re-save of the TARA updates the register', async () => {
      const r = c.saveTara.response[200].parse(
        ok(await call(officer, 'PUT', '/api/v1/risk/taras/pc-200', sampleTara())),
      );
      expect(r.tara.version).toBe(2);
      expect(r.risks).toEqual({ created: 0, updated: 3, closed: 0 });
      expect((await listRegister()).find((x) => x.id === 'R-1')).toMatchObject({
        owner: 'Maria',
        status: 'treating',
      });
    });
  });
});
