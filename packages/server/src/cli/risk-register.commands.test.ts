import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import type { Risk } from '../risk/index.ts';
import { createTestStore, type TestStore } from '../test-support/dialects.ts';
import { plantWorld, riskTestbed, type RegisterWorld, type RiskTestbed } from '../test-support/risk.ts';
import { commandInProcess } from '../test-support/cli-in-process.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import type { CommonOptions } from './context.ts';
import type { OpenRegister } from './risk-register.commands.ts';
import { riskCommands } from './risk.commands.ts';

const SAMPLE = fileURLToPath(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url));
const DAY = 86_400_000;
const c = api.riskRegister;

interface TaraDoc {
  assets: { id: string; ref?: string }[];
}

/**
 * `bulwark risk assets|asset|tara --save|taras|register|show|update|review|reassess|zones` in process over a real
 * register (a SQLite store, the real firmware service, the inventory and compliance reads of a world the test
 * sets): tables, --json against the contracts, refusals as one line with exit code 1 and nothing changed.
 */
describe('bulwark risk (the register)', { timeout: 60_000 }, () => {
  let t: TestStore;
  let risk: Risk;
  let world: RegisterWorld;
  let dir: string;
  let clock: RiskTestbed['clock'];

  beforeAll(async () => {
    t = await createTestStore('sqlite');
    dir = mkdtempSync(path.join(testTmpDir(), 'bulwark-cli-register-'));
    const bed = await riskTestbed(t, { world: plantWorld() });
    ({ risk, clock, world } = bed);
    await bed.release('1.0.0', ['pkg:npm/lodash@4.17.21']);
  });
  afterAll(async () => {
    await risk?.register.stop();
    await t?.cleanup();
  });

  const opened: CommonOptions[] = [];
  const open: OpenRegister = (options, work) => {
    opened.push(options);
    return work(risk.register);
  };

  /** Runs `bulwark risk …args` as runCli does: one line `bulwark: reason` and exit 1 on error. */
  const bulwark = (...args: string[]) => commandInProcess(riskCommands(open), ['risk', ...args]);
  const json = async (...args: string[]): Promise<unknown> => {
    const r = await bulwark(...args, '--json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };
  /** A refusal: exit 1, nothing on stdout, one line on stderr. */
  const refused = async (...args: string[]): Promise<string> => {
    const r = await bulwark(...args);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toMatch(/^[^\n]+\n$/);
    return r.stderr;
  };
  const lines = (text: string) => text.trimEnd().split('\n');

  it('lists the assets as a table and as JSON (the contract), filtered by kind', async () => {
    const r = await bulwark('assets');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([
      expect.stringMatching(/^ID\s+OWNER\s+C\/I\/A\/AUTH\s+DEVICES\s+DETAIL$/),
      expect.stringMatching(/^firmware:pump-fw\s+unassigned\s+M\/M\/M\/M\s+0\s+1 version; 0 devices run it$/),
      expect.stringMatching(/^model:PC-200\s+unassigned\s+M\/M\/M\/M\s+2\s+2 devices$/),
      expect.stringMatching(/^zone:plant\s+unassigned\s+M\/M\/M\/M\s+2\s+zone security level 2; 2 devices$/),
    ]);
    const { assets } = c.assets.response[200].strict().parse(await json('assets'));
    expect(assets.map((a) => a.id)).toEqual(['firmware:pump-fw', 'model:PC-200', 'zone:plant']);
    expect(assets.every((a) => c.asset.strict().safeParse(a).success)).toBe(true);
    const zones = c.assets.response[200].parse(await json('assets', '--kind', 'zone')).assets;
    expect(zones.map((a) => a.id)).toEqual(['zone:plant']);
  });

  it("sets an asset's owner and requirements; an unknown level is refused naming --integrity", async () => {
    const r = await bulwark('asset', 'set', 'zone:plant', '--owner', 'Plant security', '--integrity', 'High');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('asset zone:plant: owner Plant security; zone security level 2; 2 devices\n');
    const [zone] = await risk.register.assets({ kind: 'zone' });
    expect(zone).toMatchObject({
      owner: 'Plant security',
      requirements: {
        confidentiality: 'medium',
        integrity: 'high',
        availability: 'medium',
        authenticity: 'medium',
      },
    });
    expect(await refused('asset', 'set', 'zone:plant', '--owner', 'Mallory', '--integrity', 'extreme')).toBe(
      'bulwark: --integrity "extreme" is not one of low, medium, high\n',
    );
    expect(await refused('asset', 'set', 'zone:nowhere', '--owner', 'x')).toMatch(
      /^bulwark: no zone nowhere in the inventory/,
    );
    expect(await refused('asset', 'set', 'zone:plant', '--groups', 'pumps')).toBe(
      'bulwark: groups: only a manual asset names device groups (zone:plant is derived)\n',
    );
    expect(await risk.register.assets({ kind: 'zone' })).toEqual([zone]);
    expect((await bulwark('assets')).stdout).toMatch(/zone:plant\s+Plant security\s+M\/H\/M\/M\s+2\s/);
  });

  it('creates a manual asset covering device groups, and deletes it', async () => {
    const set = await bulwark('asset', 'set', 'manual:historian', '--groups', 'pumps');
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toBe('asset manual:historian: owner unassigned; groups pumps; 2 devices\n');
    const asset = c.putAsset.response[200]
      .strict()
      .parse(await json('asset', 'set', 'manual:historian', '--owner', 'IT'));
    expect(asset).toMatchObject({ kind: 'manual', owner: 'IT', groups: ['pumps'], devices: 2 });
    expect((await risk.register.assets({ kind: 'manual' })).map((a) => [a.id, a.owner])).toEqual([
      ['manual:historian', 'IT'],
    ]);

    const deleted = await bulwark('asset', 'delete', 'manual:historian');
    expect(deleted).toEqual({ code: 0, stdout: 'asset manual:historian deleted\n', stderr: '' });
    expect(await risk.register.assets({ kind: 'manual' })).toEqual([]);
    expect(await refused('asset', 'delete', 'manual:historian')).toBe(
      'bulwark: no annotated or manual asset manual:historian\n',
    );
  });

  it('saves a TARA file into the register; one naming what the inventory lacks is refused and stores nothing', async () => {
    const doc = parseYaml(readFileSync(SAMPLE, 'utf8')) as TaraDoc;
    const wrong = path.join(dir, 'wrong.tara.yaml');
    writeFileSync(
      wrong,
      stringify({
        ...doc,
        assets: doc.assets.map((a) => (a.id === 'firmware' ? { ...a, ref: 'firmware:nope' } : a)),
      }),
    );
    const bad = await bulwark('tara', wrong, '--save', 'pc-200');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^bulwark: assets\.2\.ref: firmware:nope is not in the inventory/);
    expect(await risk.register.taras()).toEqual([]);
    expect(await risk.register.list()).toEqual([]);

    const file = path.join(dir, 'pc-200.tara.yaml');
    writeFileSync(
      file,
      stringify({
        ...doc,
        assets: doc.assets.map((a) => (a.id === 'firmware' ? { ...a, ref: 'firmware:pump-fw' } : a)),
      }),
    );
    const r = await bulwark('tara', file, '--save', 'pc-200');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+ASSET\s+THREAT\s+FEASIBILITY\s+IMPACT\s+RISK\s+TREATMENT\n/);
    expect(lines(r.stdout).at(-1)).toBe(
      'saved as TARA pc-200 version 1: 3 risks created, 0 updated, 0 closed (bulwark risk register)',
    );
    expect((await risk.register.taras()).map((x) => [x.id, x.version, x.savedBy])).toEqual([
      ['pc-200', 1, 'cli'],
    ]);
    expect((await risk.register.list()).map((x) => x.id)).toEqual(['R-3', 'R-1', 'R-2']);
  });

  it('lists the saved TARAs', async () => {
    const r = await bulwark('taras');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([
      expect.stringMatching(/^ID\s+ITEM\s+VERSION\s+THREATS\s+SAVED$/),
      expect.stringMatching(
        /^pc-200\s+PC-200 dosing-pump controller\s+1\s+3\s+2026-01-01T00:00:00\.000Z by cli$/,
      ),
    ]);
    const { taras } = c.taras.response[200].strict().parse(await json('taras'));
    expect(taras).toEqual([
      {
        id: 'pc-200',
        item: 'PC-200 dosing-pump controller',
        version: 1,
        savedAt: clock.now,
        savedBy: 'cli',
        threats: 3,
        risks: { '1': 0, '2': 1, '3': 0, '4': 1, '5': 1 },
      },
    ]);
  });

  it('lists the register: a table with ids and values, --json, --status, --min-risk (checked)', async () => {
    const r = await bulwark('register');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([
      expect.stringMatching(/^ID\s+RISK\s+STATUS\s+OWNER\s+TREATMENT\s+DUE\s+TITLE$/),
      expect.stringMatching(
        /^R-3\s+5\s+open\s+Device engineering\s+reduce\s+Installing a rolled-back, vulnerable firmware image over the air$/,
      ),
      expect.stringMatching(
        /^R-1\s+4\s+open\s+Process engineering\s+reduce\s+Tampering with the set-point over the maintenance port$/,
      ),
      expect.stringMatching(
        /^R-2\s+2\s+open\s+Operations\s+reduce\s+Reading telemetry by spoofing the broker$/,
      ),
    ]);
    const { risks } = c.register.response[200].strict().parse(await json('register'));
    expect(risks.map((x) => [x.id, x.risk, x.baseRisk, x.status])).toEqual([
      ['R-3', 5, 5, 'open'],
      ['R-1', 4, 4, 'open'],
      ['R-2', 2, 2, 'open'],
    ]);
    const high = c.register.response[200].parse(await json('register', '--min-risk', '4')).risks;
    expect(high.map((x) => x.id)).toEqual(['R-3', 'R-1']);
    expect((await bulwark('register', '--status', 'closed')).stdout).toBe('(none)\n');
    expect(await refused('register', '--min-risk', '9')).toBe('bulwark: --min-risk must be 1-5, not "9"\n');
    const badStatus = await bulwark('register', '--status', 'done');
    expect(badStatus.code).toBe(1);
    expect(badStatus.stderr).toMatch(/--status <status>.*'done' is invalid/);
  });

  it('writes the register report with --html', async () => {
    const out = path.join(dir, 'register.html');
    const r = await bulwark('register', '--html', out);
    expect(r).toEqual({ code: 0, stdout: `register report (3 risks) written to ${out}\n`, stderr: '' });
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<table');
    expect(html).toContain('<table id="register">');
    for (const id of ['R-1', 'R-2', 'R-3']) expect(html).toContain(`id="risk-${id}"`);
    expect(await refused('register', '--html', path.join(dir, 'no-such-dir', 'r.html'))).toMatch(
      /^bulwark: --html .*no-such-dir.*: ENOENT/,
    );
  });

  it('shows one risk with its history, as text and as JSON', async () => {
    const r = await bulwark('show', 'R-1');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)).toEqual([
      'R-1  Tampering with the set-point over the maintenance port',
      'status open; owner Process engineering; treatment reduce; due none',
      'assessed: impact severe, feasibility medium, risk 4',
      'live: feasibility medium, risk 4',
      'review due 2027-01-01',
      'history:',
      '  2026-01-01T00:00:00.000Z cli created –→4',
    ]);
    const shown = c.getRisk.response[200].strict().parse(await json('show', 'R-1'));
    expect(shown.risk).toMatchObject({ id: 'R-1', owner: 'Process engineering', risk: 4 });
    expect(shown.history.map((h) => [h.change, h.actor, h.from, h.to])).toEqual([
      ['created', 'cli', null, 4],
    ]);
    expect(await refused('show', 'R-99')).toBe('bulwark: no risk R-99\n');
  });

  it('updates a risk; a due date that is not YYYY-MM-DD is refused naming due and changes nothing', async () => {
    const r = await bulwark(
      'update',
      'R-1',
      '--owner',
      'Maria',
      '--due',
      '2026-03-01',
      '--status',
      'treating',
      '--note',
      'why',
    );
    expect(r).toEqual({ code: 0, stdout: 'R-1: treating, owner Maria, risk 4\n', stderr: '' });
    const { risk: updated, history } = await risk.register.get('R-1');
    expect(updated).toMatchObject({ owner: 'Maria', due: '2026-03-01', status: 'treating' });
    expect(history.map((h) => [h.change, h.detail])).toEqual([
      ['updated', { status: 'treating', note: 'why' }],
      ['updated', { owner: 'Maria', due: '2026-03-01', note: 'why' }],
      ['created', { source: 'tara:pc-200/TS1' }],
    ]);
    const before = await risk.register.get('R-1');
    expect(await refused('update', 'R-1', '--due', '1 March')).toBe('bulwark: due: a date, YYYY-MM-DD\n');
    expect(await refused('update', 'R-1', '--note', 'only a note')).toMatch(/nothing to change/);
    expect(await refused('update', 'R-99', '--owner', 'x')).toBe('bulwark: no risk R-99\n');
    expect(await risk.register.get('R-1')).toEqual(before);
    const json1 = c.updateRisk.response[200].strict().parse(await json('update', 'R-1', '--due', 'none'));
    expect(json1.due).toBeNull();
    expect((await bulwark('register', '--status', 'treating')).stdout).toMatch(
      /^ID.*\nR-1\s+4\s+treating\s+Maria\s/,
    );
  });

  it('records a review', async () => {
    const r = await bulwark('review', 'R-1', '--note', 'port disabled in production builds');
    expect(r).toEqual({ code: 0, stdout: 'R-1 reviewed; next review due 2027-01-01\n', stderr: '' });
    const { history } = await risk.register.get('R-1');
    expect(history[0]).toMatchObject({
      change: 'reviewed',
      actor: 'cli',
      detail: { note: 'port disabled in production builds', reviewDueAt: clock.now + 365 * DAY },
    });
    expect(await refused('review', 'R-1', '--note', '   ')).toMatch(/^bulwark: note: /);
  });

  it('re-assesses: prints the counts, or JSON', async () => {
    const r = await bulwark('reassess');
    expect(r).toEqual({ code: 0, stdout: '3 risks examined: 0 changed, 0 raised, 0 lowered\n', stderr: '' });
    world.measured = {
      runId: 'cr_1',
      measuredAt: clock.now,
      achieved: 2,
      blocking: { 1: [], 2: [], 3: ['net.tls-version'], 4: ['net.tls-version'] },
      statuses: { 'net.tls-version': 'fail' },
    };
    expect(c.reassess.response[200].strict().parse(await json('reassess'))).toEqual({
      examined: 3,
      changed: 1,
      raised: 1,
      lowered: 0,
    });
    expect((await risk.register.get('R-2')).risk).toMatchObject({ risk: 3, raised: true });
    expect((await bulwark('register', '--min-risk', '3')).stdout).toMatch(/\nR-2\s+2→3 ↑\s+open\s/);
    expect(lines((await bulwark('show', 'R-2')).stdout)).toContain(
      "  failing-check net.tls-version: the treatment's check net.tls-version fails → high",
    );
  });

  it('shows the zones: target, achieved and the gap', async () => {
    world.measured = null;
    expect(lines((await bulwark('zones')).stdout)).toEqual([
      expect.stringMatching(/^ZONE\s+DEVICES\s+SL-T\s+SL-A\s+GAP\s+BLOCKING$/),
      expect.stringMatching(/^plant\s+2\s+2\s+not measured$/),
    ]);
    world.zones = [{ name: 'plant', securityLevel: 3 }];
    world.measured = {
      runId: 'cr_2',
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
    const r = await bulwark('zones');
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout)[1]).toMatch(
      /^plant\s+2\s+3\s+1\s+2\s+zones\.conduit-rate-caps, net\.tls-version$/,
    );
    expect(c.zones.response[200].strict().parse(await json('zones')).zones).toEqual([
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
  });

  it('opens the register of the data directory the command names', async () => {
    const r = await bulwark('taras', '--data', '/srv/bulwark', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(opened.at(-1)).toEqual({ data: '/srv/bulwark', json: true });
  });
});
