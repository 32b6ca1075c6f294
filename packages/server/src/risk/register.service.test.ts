import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import type { SecurityEvent } from '../events/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { plantWorld, riskTestbed, type RegisterWorld, type RiskTestbed } from '../test-support/risk.ts';
import { epssCsv, kevCatalog, kevEntry } from './feeds.fixtures.ts';
import type { Risk } from './index.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/osv', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url));
const DAY = 86_400_000;

/** The parts of a TARA document the tests change. */
interface TaraDoc {
  assets: { id: string; ref?: string }[];
  damageScenarios: { impact: Record<string, string> }[];
  threatScenarios: { id: string; attackPaths: unknown[] }[];
}

/** The sample TARA with its firmware asset linked to the inventory's `firmware:pump-fw`. */
function sampleTara(edit: (doc: TaraDoc) => void = () => undefined): TaraDoc {
  const doc = parseYaml(readFileSync(SAMPLE, 'utf8')) as TaraDoc;
  for (const a of doc.assets) if (a.id === 'firmware') a.ref = 'firmware:pump-fw';
  edit(doc);
  return doc;
}

async function refusal(work: Promise<unknown>): Promise<BulwarkError> {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BulwarkError);
  return err as BulwarkError;
}

describe.each(testDialects)('the risk register (%s)', (dialect) => {
  let t: TestStore;
  let risk: Risk;
  let events: SecurityEvent[];
  let clock: RiskTestbed['clock'];
  let world: RegisterWorld;
  let release: RiskTestbed['release'];
  let runs: RiskTestbed['runs'];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    ({ risk, events, clock, world, release, runs } = await riskTestbed(t, { world: plantWorld() }));
  });
  afterEach(async () => t.cleanup());

  const byThreat = async () =>
    Object.fromEntries(
      (await risk.register.list()).map((r) => [
        r.source.kind === 'tara' ? r.source.threat : r.source.kind,
        r,
      ]),
    );
  const typesOf = (type: string) => events.filter((e) => e.type === type);

  it('lists assets from the inventory with owners and requirements; manual assets cover their groups', async () => {
    await release('1.0.0', ['pkg:npm/lodash@4.17.11']);
    world.dataCategories = [{ category: 'user.location', schemas: ['pump-telemetry'] }];
    world.conduits = [{ name: 'plant-to-cloud', from: 'plant', to: 'cloud' }];
    const ids = (await risk.register.assets()).map((a) => `${a.id} ${a.devices}`);
    expect(ids).toEqual([
      'conduit:plant-to-cloud 2',
      'data:user.location 0',
      'firmware:pump-fw 0',
      'model:PC-200 2',
      'zone:plant 2',
    ]);
    const zone = await risk.register.putAsset(
      'zone:plant',
      { owner: 'Plant security', requirements: { confidentiality: 'high', availability: 'high' } },
      'user:ana',
    );
    expect(zone).toMatchObject({
      owner: 'Plant security',
      requirements: {
        confidentiality: 'high',
        integrity: 'medium',
        availability: 'high',
        authenticity: 'medium',
      },
      present: true,
    });
    const manual = await risk.register.putAsset(
      'manual:historian',
      { owner: 'IT', groups: ['pumps'] },
      'user:ana',
    );
    expect(manual).toMatchObject({ kind: 'manual', devices: 2, detail: 'groups pumps; 2 devices' });
    expect(typesOf('risk.asset_updated').map((e) => [e.subject, e.data])).toEqual([
      ['asset:zone:plant', { kind: 'zone', created: true, changes: ['owner', 'requirements'] }],
      ['asset:manual:historian', { kind: 'manual', created: true, changes: ['groups', 'owner'] }],
    ]);
    // Bad input: a clear error, nothing stored.
    expect(
      (await refusal(risk.register.putAsset('zone:nowhere', { owner: 'x' }, 'user:ana'))).message,
    ).toMatch(/no zone nowhere in the inventory/);
    expect(
      (
        await refusal(
          risk.register.putAsset('zone:plant', { requirements: { integrity: 'extreme' as 'high' } }, 'u'),
        )
      ).message,
    ).toMatch(/^requirements\.integrity: /);
    expect((await refusal(risk.register.putAsset('zone:plant', { groups: ['x'] }, 'u'))).message).toMatch(
      /only a manual asset names device groups/,
    );
    expect((await refusal(risk.register.putAsset('thing:plant', {}, 'u'))).message).toMatch(/^asset id: /);
    expect(typesOf('risk.asset_updated')).toHaveLength(2);
    await risk.register.deleteAsset('manual:historian', 'user:ana');
    expect((await risk.register.assets({ kind: 'manual' })).length).toBe(0);
  });

  it('saves a TARA into the register; a re-save re-assesses, keeps what people set and closes dropped threats', async () => {
    await release('1.0.0', ['pkg:npm/lodash@4.17.21']);
    const saved = await risk.register.saveTara('pc-200', sampleTara(), 'user:ana');
    expect(saved.risks).toEqual({ created: 3, updated: 0, closed: 0 });
    expect(saved.tara).toMatchObject({ id: 'pc-200', version: 1, threats: 3 });
    let r = await byThreat();
    expect([r.TS1?.risk, r.TS2?.risk, r.TS3?.risk]).toEqual([4, 2, 5]);
    expect(r.TS3).toMatchObject({
      assets: ['firmware:pump-fw'],
      owner: 'Device engineering',
      treatment: 'reduce',
      checks: ['firmware.staged-rollouts', 'firmware.known-vulnerabilities'],
      status: 'open',
      raised: false,
      reviewDueAt: clock.now + 365 * DAY,
    });
    const ts1 = r.TS1?.id ?? '';
    await risk.register.update(
      ts1,
      { owner: 'Maria', due: '2026-03-01', status: 'treating', note: 'port to be disabled' },
      'user:ana',
    );

    clock.now += DAY;
    const again = await risk.register.saveTara(
      'pc-200',
      sampleTara((doc) => {
        doc.threatScenarios = doc.threatScenarios.filter((t) => t.id !== 'TS2');
      }),
      'user:ana',
    );
    expect(again.risks).toEqual({ created: 0, updated: 2, closed: 1 });
    r = await byThreat();
    expect(r.TS1).toMatchObject({ owner: 'Maria', due: '2026-03-01', status: 'treating' });
    expect(r.TS2?.status).toBe('closed');
    const { history } = await risk.register.get(ts1);
    expect(history.map((h) => h.change)).toEqual(['assessed', 'updated', 'updated', 'created']);
    expect(typesOf('risk.tara_saved').map((e) => e.data)).toEqual([
      { item: 'PC-200 dosing-pump controller', version: 1, threats: 3, created: 3, updated: 0, closed: 0 },
      { item: 'PC-200 dosing-pump controller', version: 2, threats: 2, created: 0, updated: 2, closed: 1 },
    ]);
  });

  it('refuses a TARA naming what the inventory lacks, or with a missing rating, and stores nothing', async () => {
    const bad = sampleTara((doc) => {
      const first = doc.assets[0];
      if (first) first.ref = 'zone:nowhere';
    });
    expect((await refusal(risk.register.saveTara('pc-200', bad, 'user:ana'))).message).toMatch(
      /^assets\.0\.ref: zone:nowhere is not in the inventory/,
    );
    const unrated = sampleTara((doc) => {
      const first = doc.damageScenarios[0];
      if (first) first.impact = {};
    });
    expect((await refusal(risk.register.saveTara('pc-200', unrated, 'user:ana'))).message).toMatch(
      /^damageScenarios\.0\.impact/,
    );
    expect((await refusal(risk.register.saveTara('PC 200', sampleTara(), 'user:ana'))).message).toMatch(
      /^TARA id/,
    );
    expect(await risk.register.taras()).toEqual([]);
    expect(await risk.register.list()).toEqual([]);
    expect(events.filter((e) => e.type.startsWith('risk.'))).toEqual([]);
  });

  it('a critical advisory on deployed firmware raises the linked risk; the fixed release lowers it', async () => {
    const vulnerable = await release('1.0.0', ['pkg:npm/lodash@4.17.11']);
    const fixed = await release('1.2.0', ['pkg:npm/lodash@4.17.21']);
    await runs('dev-1', vulnerable.targetPath, '1.0.0');
    await runs('dev-2', vulnerable.targetPath, '1.0.0');
    await risk.register.saveTara(
      'pc-200',
      sampleTara((d) => {
        // TS3 rated low feasibility (physical attack vector) so the advisory can raise it.
        const ts3 = d.threatScenarios[2];
        if (ts3) ts3.attackPaths = [{ description: 'Replay over JTAG', attackVector: 'physical' }];
      }),
      'user:ana',
    );
    expect((await byThreat()).TS3).toMatchObject({ baseRisk: 2, risk: 2 });
    await risk.register.putAsset(
      'zone:plant',
      { requirements: { integrity: 'high', availability: 'high' } },
      'u',
    );

    await risk.vulnerabilities.importFrom(FIXTURES, 'test');
    const counts = await risk.register.reassess();
    expect(counts).toMatchObject({ changed: 1, raised: 1, lowered: 0 });
    const raised = (await byThreat()).TS3;
    expect(raised).toMatchObject({ baseRisk: 2, feasibility: 'high', risk: 5, raised: true });
    expect(raised?.factors).toEqual([
      {
        kind: 'vulnerability',
        ref: 'GHSA-jf85-cpcp-j695',
        // CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:H with IR:H AR:H (CR:H is moot, C:N).
        detail: 'critical 9.1 (environmental 9.8 in zone plant); on pump-fw@1.0.0: 2 devices',
        feasibility: 'high',
      },
    ]);
    expect(typesOf('risk.raised').map((e) => [e.subject, e.data])).toEqual([
      [
        `risk:${raised?.id}`,
        {
          title: 'Installing a rolled-back, vulnerable firmware image over the air',
          from: 2,
          to: 5,
          base: 2,
          factors: ['vulnerability GHSA-jf85-cpcp-j695'],
        },
      ],
    ]);
    // Nothing changed: no new events.
    const before = events.length;
    expect(await risk.register.reassess()).toMatchObject({ changed: 0, raised: 0 });
    expect(events.length).toBe(before);

    await runs('dev-1', fixed.targetPath, '1.2.0');
    await risk.register.reassess();
    expect((await byThreat()).TS3?.factors[0]?.detail).toMatch(/: 1 device$/);
    await runs('dev-2', fixed.targetPath, '1.2.0');
    expect(await risk.register.reassess()).toMatchObject({ changed: 1, lowered: 1 });
    expect((await byThreat()).TS3).toMatchObject({ risk: 2, raised: false, factors: [] });
    expect(typesOf('risk.lowered').map((e) => e.data)).toEqual([
      { title: 'Installing a rolled-back, vulnerable firmware image over the air', from: 5, to: 2, base: 2 },
    ]);
    const { history } = await risk.register.get(raised?.id ?? '');
    expect(history.map((h) => [h.change, h.from, h.to])).toEqual([
      ['lowered', 5, 2],
      ['raised', 2, 5],
      ['created', null, 2],
    ]);
  });

  it('a high advisory on deployed firmware moves nothing until CISA lists it as known exploited', async () => {
    const mid = await release('1.1.0', ['pkg:npm/lodash@4.17.15']); // GHSA-35jh-r3h4-6jhm (high 7.2) only
    await runs('dev-1', mid.targetPath, '1.1.0');
    await risk.register.saveTara(
      'pc-200',
      sampleTara((d) => {
        const ts3 = d.threatScenarios[2];
        if (ts3) ts3.attackPaths = [{ description: 'Replay over JTAG', attackVector: 'physical' }];
      }),
      'user:ana',
    );
    await risk.vulnerabilities.importFrom(FIXTURES, 'test');
    await risk.register.reassess();
    expect((await byThreat()).TS3).toMatchObject({ risk: 2, factors: [] });
    await risk.feeds.importKevJson(kevCatalog([kevEntry('CVE-2021-23337')]), 'test', 'kev.json');
    await risk.feeds.importEpssText(epssCsv(['CVE-2021-23337,0.01230,0.80000']), 'test', 'epss.csv');
    await risk.register.reassess();
    expect((await byThreat()).TS3).toMatchObject({
      risk: 5,
      raised: true,
      factors: [
        {
          kind: 'known-exploited',
          ref: 'GHSA-35jh-r3h4-6jhm',
          detail:
            'high 7.2 (environmental 7.2 in zone plant); on pump-fw@1.1.0: 1 device; known exploited (CISA KEV); EPSS 0.012',
          feasibility: 'high',
        },
      ],
    });
  });

  it('a failing treatment check and an open alert in scope each raise feasibility one level', async () => {
    const v = await release('1.2.0', ['pkg:npm/lodash@4.17.21']);
    await runs('dev-1', v.targetPath, '1.2.0');
    await risk.register.saveTara('pc-200', sampleTara(), 'user:ana');
    expect((await byThreat()).TS2).toMatchObject({ feasibility: 'medium', risk: 2 });
    world.measured = {
      runId: 'cr_1',
      measuredAt: clock.now,
      achieved: 1,
      blocking: { 1: [], 2: ['net.tls-version'], 3: ['net.tls-version'], 4: ['net.tls-version'] },
      statuses: { 'net.tls-version': 'fail', 'net.device-mutual-tls': 'pass' },
    };
    await risk.register.reassess();
    expect((await byThreat()).TS2).toMatchObject({
      feasibility: 'high',
      risk: 3,
      raised: true,
      factors: [
        {
          kind: 'failing-check',
          ref: 'net.tls-version',
          detail: "the treatment's check net.tls-version fails",
          feasibility: 'high',
        },
      ],
    });
    world.alerts = [
      {
        id: 'al-1',
        deviceId: 'dev-1',
        severity: 'high',
        title: 'Firmware downgrade',
        detector: 'firmware_downgrade',
      },
      { id: 'al-2', deviceId: 'dev-1', severity: 'low', title: 'New topic', detector: 'new_topic' },
      { id: 'al-3', deviceId: 'dev-9', severity: 'critical', title: 'elsewhere', detector: 'x' },
    ];
    await risk.register.reassess();
    expect((await byThreat()).TS3?.factors).toEqual([
      {
        kind: 'open-alert',
        ref: 'al-1',
        detail: 'open alert on dev-1: Firmware downgrade',
        feasibility: 'high',
      },
    ]);
  });

  it('a zone below its target level is a risk, closed when the zone achieves it (IEC 62443-3-2)', async () => {
    world.baseline = { ...world.baseline, zones: { ...world.baseline.zones, targets: { plant: 3 } } };
    world.measured = {
      runId: 'cr_1',
      measuredAt: clock.now,
      achieved: 1,
      blocking: {
        1: [],
        2: ['zones.conduit-rate-caps'],
        3: ['zones.conduit-rate-caps', 'net.tls-version'],
        4: [],
      },
      statuses: {},
    };
    expect(await risk.register.zones()).toEqual([
      {
        zone: 'plant',
        target: 3,
        achieved: 1,
        gap: 2,
        blocking: ['zones.conduit-rate-caps', 'net.tls-version'],
        devices: 2,
        measuredAt: clock.now,
      },
    ]);
    await risk.register.reassess();
    const [gap] = await risk.register.list();
    expect(gap).toMatchObject({
      source: { kind: 'zone', zone: 'plant' },
      impact: 'severe',
      baseRisk: 2,
      feasibility: 'high',
      risk: 5,
      raised: true,
      status: 'open',
    });
    expect(gap?.factors[0]?.detail).toBe(
      'target SL 3, achieved SL 1: blocked by zones.conduit-rate-caps, net.tls-version',
    );
    world.measured = { ...world.measured, achieved: 3 };
    await risk.register.reassess();
    expect((await risk.register.get(gap?.id ?? '')).risk).toMatchObject({
      status: 'closed',
      risk: 2,
      raised: false,
    });
    expect(typesOf('risk.lowered')).toHaveLength(1);
    world.measured = { ...world.measured, achieved: 2 };
    await risk.register.reassess();
    expect((await risk.register.get(gap?.id ?? '')).risk).toMatchObject({ status: 'open', risk: 4 });
    // The zone deleted: its gap risk is closed (and its alert lowered).
    world.zones = [];
    await risk.register.reassess();
    expect((await risk.register.get(gap?.id ?? '')).risk).toMatchObject({ status: 'closed', raised: false });
    expect(typesOf('risk.lowered')).toHaveLength(2);
  });

  it('reminds once when a risk is due for re-assessment; a review sets the next date', async () => {
    world.baseline = { ...world.baseline, risk: { reassessEvery: 30 * DAY, alertOnIncrease: 1 } };
    await release('1.0.0', ['pkg:npm/lodash@4.17.21']);
    await risk.register.saveTara('pc-200', sampleTara(), 'user:ana');
    clock.now += 31 * DAY;
    await risk.register.reassess();
    await risk.register.reassess();
    expect(typesOf('risk.review_due')).toHaveLength(3);
    const id = (await byThreat()).TS1?.id ?? '';
    expect((await refusal(risk.register.review(id, '  ', 'user:ana'))).message).toMatch(/^note: /);
    const reviewed = await risk.register.review(id, 'port disabled in production builds', 'user:ana');
    expect(reviewed.reviewDueAt).toBe(clock.now + 30 * DAY);
    expect(typesOf('risk.reviewed').map((e) => e.data)).toEqual([
      { reviewDueAt: clock.now + 30 * DAY, note: 'port disabled in production builds' },
    ]);
  });

  it('refuses bad changes with the field named and changes nothing', async () => {
    await release('1.0.0', ['pkg:npm/lodash@4.17.21']);
    await risk.register.saveTara('pc-200', sampleTara(), 'user:ana');
    const id = (await byThreat()).TS1?.id ?? '';
    const before = JSON.stringify(await risk.register.get(id));
    expect((await refusal(risk.register.update(id, { due: '1 March' }, 'u'))).message).toMatch(
      /^due: a date/,
    );
    expect((await refusal(risk.register.update(id, { status: 'done' as 'closed' }, 'u'))).message).toMatch(
      /^status: /,
    );
    expect((await refusal(risk.register.update(id, { note: 'only a note' }, 'u'))).message).toMatch(
      /nothing to change/,
    );
    expect((await refusal(risk.register.update('R-99', { owner: 'x' }, 'u'))).code).toBe('not_found');
    expect(JSON.stringify(await risk.register.get(id))).toBe(before);
  });
});
