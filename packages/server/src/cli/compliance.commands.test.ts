import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import {
  createBaselineService,
  createCompliance,
  type Compliance,
  type ComplianceSources,
} from '../compliance/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, type TestStore } from '../test-support/dialects.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import { commandInProcess } from '../test-support/cli-in-process.ts';
import { complianceCommands, dateOption, type OpenCompliance } from './compliance.commands.ts';

const DAY = 86_400_000;
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** No facts in this test: the commands are about the adapter, not the checks (every source fails). */
const noFacts = () => Promise.reject(new Error('no facts in this test'));
const sources: ComplianceSources = {
  pki: noFacts,
  listeners: noFacts,
  devices: noFacts,
  users: noFacts,
  audit: noFacts,
  monitor: noFacts,
  access: noFacts,
  firewall: noFacts,
  firmware: noFacts,
  vulnerabilities: noFacts,
  privacy: noFacts,
  apps: noFacts,
};

/**
 * `bulwark compliance …` in process over the compliance service on a SQLite store (every fact source failing,
 * so the checks are in error; the real frameworks, attestations and waivers): output, --json against the
 * contracts, refusals as one line with exit code 1 and nothing changed.
 */
describe('bulwark compliance', { timeout: 60_000 }, () => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let compliance: Compliance;
  let dir: string;
  let lastRun = '';

  beforeAll(async () => {
    t = await createTestStore('sqlite');
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: Date.now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    compliance = createCompliance({
      db: t.store.db,
      events: bus,
      now: Date.now,
      sources,
      baseline: createBaselineService({ db: t.store.db, events: bus, now: Date.now }),
      settings: { intervalMs: 3_600_000, scheduled: false },
      approvers: { canApprove: (name) => Promise.resolve(name === 'olga') },
      onError: (err) => {
        throw err;
      },
    });
    dir = mkdtempSync(path.join(testTmpDir(), 'bulwark-cli-compliance-'));
  });
  afterAll(async () => {
    await compliance?.stop();
    await bus?.close();
    await t?.cleanup();
  });

  const open: OpenCompliance = (_options, work) => work(compliance);

  /** Runs `bulwark compliance …args` as runCli does: one line `bulwark: reason` and exit 1 on error. */
  const bulwark = (...args: string[]) => commandInProcess(complianceCommands(open), ['compliance', ...args]);
  const json = async (...args: string[]): Promise<unknown> => {
    const r = await bulwark(...args, '--json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  it('refuses a report before any run in one line (exit 1) and starts none', async () => {
    const r = await bulwark('report', '--standard', 'etsi-en-303-645', '--format', 'json');
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(
      'bulwark: no compliance run yet: run `bulwark compliance run` or POST /api/v1/compliance/runs first\n',
    );
    expect(await compliance.listRuns({ limit: 10 })).toEqual([]);
  });

  it('runs the checks: a table per standard and the failing checks; --json is the run', async () => {
    const r = await bulwark('run');
    expect(r.code, r.stderr).toBe(0);
    const first = /^run (\S+) \(manual, baseline v0 \S+\) finished /.exec(r.stdout)?.[1] ?? '';
    expect(first).not.toBe('');
    expect(r.stdout).toMatch(/STANDARD\s+SCORE\s+FAILING\s+MANUAL\s+PASS\s+WAIVED\s+N\/A/);
    expect(r.stdout).toMatch(/etsi-en-303-645\s+\d+(\.\d)?%\s+\d+/);
    expect(r.stdout).toMatch(/failing checks \(61 of 61\):/);
    expect(r.stdout).toMatch(/pki\.ca-expiry\s+error\s+\w+\s+could not read pki: no facts in this test/);
    const run = api.compliance.runCompliance.response[200].strict().parse(await json('run'));
    expect(run).toMatchObject({ createdBy: 'cli', trigger: 'manual' });
    lastRun = run.id;

    const runs = api.compliance.listRuns.response[200].strict().parse(await json('runs'));
    expect(runs.runs.map((x) => x.id)).toEqual([run.id, first]);
    expect(runs.trend.map((x) => x.runId)).toEqual([first, run.id]);
    expect((await bulwark('runs')).stdout).toMatch(new RegExp(`${run.id}\\s+\\S+\\s+manual\\s+v0\\s+61\\s`));

    const shown = await bulwark('show', first);
    expect(shown.stdout).toMatch(new RegExp(`^run ${first} `));
    expect(api.compliance.getRun.response[200].parse(await json('show', first)).id).toBe(first);
    const missing = await bulwark('show', 'run-9');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^bulwark: .*run-9.*\n$/);

    const checks = z.array(api.compliance.checkDefinition.strict()).parse(await json('checks'));
    expect(checks).toHaveLength(61);
    expect(checks.find((c) => c.id === 'org.disclosure-contact')).toMatchObject({ needs: 'operator' });
    expect(checks.find((c) => c.id === 'pki.ca-expiry')?.clauses['etsi-en-303-645']?.length).toBeGreaterThan(
      0,
    );
    expect((await bulwark('checks')).stdout).toMatch(/org\.disclosure-contact\s+\w+\s+operator/);
  });

  it('writes a report to a file and says where, or to standard output', async () => {
    const out = path.join(dir, 'etsi.html');
    const r = await bulwark('report', '--standard', 'etsi-en-303-645', '--format', 'html', '--out', out);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^wrote the etsi-en-303-645 report \\(html, run \\S+\\) to ${out}`));
    expect(r.stdout).toContain(`run ${lastRun}`);
    expect(readFileSync(out, 'utf8')).toMatch(/^<!doctype html>/i);

    const oscal = await bulwark(
      'report',
      '--standard',
      'etsi-en-303-645',
      '--format',
      'oscal',
      '--run',
      lastRun,
    );
    expect(oscal.code, oscal.stderr).toBe(0);
    expect(JSON.parse(oscal.stdout)).toHaveProperty('assessment-results');

    const bad = await bulwark('report', '--standard', 'iso-9001');
    expect(bad).toMatchObject({ code: 1 });
    expect(bad.stderr).toMatch(/no results for standard iso-9001 \(known: etsi-en-303-645, /);
    const notAnId = await bulwark('report', '--standard', 'ISO 9001');
    expect(notAnId).toMatchObject({ code: 1 });
    expect(notAnId.stderr).toMatch(/--standard must be a framework id .*not "ISO 9001"/);
    expect((await bulwark('report', '--standard', 'gdpr', '--format', 'pdf')).code).toBe(1);
  });

  it('attests a manual clause with files, lists and revokes it; refusals change nothing', async () => {
    const file = path.join(dir, 'policy.pdf');
    writeFileSync(file, '%PDF-1.4 disclosure policy');
    const review = day(Date.now() + 30 * DAY);
    const expires = day(Date.now() + 365 * DAY);
    const args = ['--standard', 'etsi-en-303-645', '--clause', '5.2-2', '--statement', 'Published.'];
    const r = await bulwark(
      'attest',
      ...args,
      '--owner',
      'PSIRT',
      '--file',
      file,
      '--review-by',
      review,
      '--expires',
      expires,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^attestation \S+ recorded for etsi-en-303-645 5\.2-2 \(1 files, review by /);

    const list = z.array(api.compliance.attestationRecord.strict()).parse(await json('attestations'));
    expect(list).toHaveLength(1);
    expect(list[0]?.files[0]).toMatchObject({ name: 'policy.pdf', mediaType: 'application/pdf' });

    const refusals: [string[], RegExp][] = [
      [['--clause', '5.2-1'], /^bulwark: clause: .*automated/],
      [['--expires', '2020-01-01'], /^bulwark: expiresAt: must be in the future/],
      [['--expires', '2027-02-30'], /^bulwark: --expires must be a date as YYYY-MM-DD, not "2027-02-30"/],
      [['--file', path.join(dir, 'missing.pdf')], /^bulwark: cannot read .*missing\.pdf/],
    ];
    for (const [over, message] of refusals) {
      const base = ['--standard', 'etsi-en-303-645', '--clause', '5.2-2', '--statement', 'S', '--owner', 'O'];
      const dates = ['--review-by', review, '--expires', expires];
      const bad = await bulwark('attest', ...base, ...dates, ...over);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(message);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(await compliance.attestations()).toHaveLength(1);

    const id = list[0]?.id ?? '';
    const revoked = await bulwark('revoke-attestation', id, '--reason', 'replaced');
    expect(revoked.stdout).toBe(`attestation ${id} (etsi-en-303-645 5.2-2) revoked\n`);
    expect(await json('attestations')).toEqual([]);
    expect(await json('attestations', '--all')).toHaveLength(1);
  });

  it('asks for a waiver (pending: the CLI cannot approve), lists and revokes it; refusals change nothing', async () => {
    const expires = day(Date.now() + 30 * DAY);
    const reason = 'Cellar pumps offline until March.';
    const r = await bulwark(
      'waive',
      '--check',
      'devices.not-seen',
      '--reason',
      reason,
      '--approver',
      'olga',
      '--expires',
      expires,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^waiver (\\S+) for devices.not-seen until ${expires} is pending: it awaits approval by olga through the API \\(POST /api/v1/compliance/waivers/\\1/approve\\) or the console\n$`,
      ),
    );
    const help = await bulwark('waive', '--help');
    expect(help.stdout).toMatch(/pending, not in force, until the approver approves it/);
    expect(help.stdout).toMatch(/cannot approve/);
    expect(help.stdout).toMatch(/end of this day, UTC/);

    const refusals: [string[], RegExp][] = [
      [['--check', 'nope'], /^bulwark: check: no automated check "nope"/],
      [['--reason', 'short'], /^bulwark: reason: at least 10 characters/],
      [['--approver', 'mallory'], /^bulwark: approver: mallory is not/],
      [['--expires', day(Date.now() + 400 * DAY)], /^bulwark: expiresAt: at most 365 days/],
    ];
    for (const [over, message] of refusals) {
      const base = [
        '--check',
        'devices.not-seen',
        '--reason',
        reason,
        '--approver',
        'olga',
        '--expires',
        expires,
      ];
      // commander keeps the last value of a repeated option: the override wins.
      const bad = await bulwark('waive', ...base, ...over);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(message);
    }
    const list = z.array(api.compliance.waiverRecord.strict()).parse(await json('waivers'));
    expect(list.map((w) => w.check)).toEqual(['devices.not-seen']);
    // Created from the CLI it stays pending: not in force in a run.
    expect(list[0]).toMatchObject({ status: 'pending', approvedAt: null, createdBy: 'cli' });
    expect(
      await compliance
        .run({ trigger: 'manual', actor: 'cli' })
        .then((run) => run.checks.filter((c) => c.waiver)),
    ).toEqual([]);
    expect((await bulwark('waivers')).stdout).toMatch(/devices\.not-seen\s+olga\s+pending\s+\S+\s+cli/);
    expect(await json('waivers', '--limit', '1')).toHaveLength(1);
    const badLimit = await bulwark('waivers', '--limit', '1001');
    expect(badLimit).toMatchObject({ code: 1 });
    expect(badLimit.stderr).toMatch(/--limit must be a whole number from 1 to 1000/);

    const id = list[0]?.id ?? '';
    expect((await bulwark('revoke-waiver', id, '--reason', 'fixed')).stdout).toBe(
      `waiver ${id} (devices.not-seen) revoked\n`,
    );
    const again = await bulwark('revoke-waiver', id, '--reason', 'fixed');
    expect(again).toMatchObject({ code: 1, stderr: `bulwark: waiver ${id} is already revoked\n` });
  });

  it('parses dates as YYYY-MM-DD only, meaning the end of that day in UTC', () => {
    expect(dateOption('--expires')('2027-03-31')).toBe(Date.UTC(2027, 2, 31, 23, 59, 59, 999));
    expect(() => dateOption('--expires')('2027-02-29')).toThrow(/YYYY-MM-DD/);
    expect(() => dateOption('--expires')('31.03.2027')).toThrow(/--expires must be a date as YYYY-MM-DD/);
    expect(() => dateOption('--expires')('2027-13-01')).toThrow(/YYYY-MM-DD/);
  });
});
