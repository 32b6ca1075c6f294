import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createAuditLog,
  createEventBus,
  type AuditEntry,
  type AuditLog,
  type EventBus,
} from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { waitFor } from '../test-support/wait.ts';
import { rmSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { createBaselineService } from './baseline.service.ts';
import { checkCatalog } from './checks/index.ts';
import { FIXTURE_NOW, healthyFacts } from './checks/fixtures.ts';
import type { CheckDefinition } from './checks/types.ts';
import { createCompliance, NO_RUN_YET, type Compliance, type ComplianceDeps } from './compliance.service.ts';
import { acmeFrameworksDir } from './frameworks.fixture.ts';
import type { ComplianceApi } from './compliance.routes.ts';
import type { ComplianceSources } from './facts.ts';
import type { RunResult } from './model.ts';
import { getRun, listRuns, saveRun, trend } from './runs.store.ts';

// The service is what the routes and the CLI call.
const _api: (c: Compliance) => ComplianceApi = (c) => c;

interface Ctx {
  t: TestStore;
  log: AuditLog;
  bus: EventBus;
  clock: { now: number };
  /** The fleet state the fixture check reads: the CA expires soon when true. */
  state: { caExpiring: boolean; slowMs: number; running: number; maxRunning: number };
  entries: AuditEntry[];
  errors: unknown[];
  make(over?: Partial<ComplianceDeps>): Compliance;
  close(): Promise<void>;
}

/** The real catalog, with pki.ca-expiry driven by `state` (so a test flips it pass → fail → pass). */
function checksOf(state: Ctx['state']): CheckDefinition[] {
  return checkCatalog.map((c) =>
    c.id !== 'pki.ca-expiry'
      ? c
      : {
          ...c,
          run: (input) =>
            state.caExpiring
              ? {
                  status: 'fail',
                  summary: '1 of 1 CA certificates expires within 180 days',
                  examined: 1,
                  evidence: [{ kind: 'certificate', id: 'ca-1', detail: 'expires soon' }],
                }
              : c.run(input),
        },
  );
}

function sourcesOf(state: Ctx['state'], now: () => number): ComplianceSources {
  const facts = () => healthyFacts(now());
  const slow = async <T>(value: T): Promise<T> => {
    state.running++;
    state.maxRunning = Math.max(state.maxRunning, state.running);
    await new Promise((r) => setTimeout(r, state.slowMs));
    state.running--;
    return value;
  };
  return {
    pki: () => slow(facts().pki),
    listeners: () => Promise.resolve(facts().listeners),
    devices: () => Promise.resolve(facts().devices),
    users: () => Promise.resolve(facts().users),
    audit: () => Promise.resolve(facts().audit),
    monitor: () => Promise.resolve(facts().monitor),
    access: () => Promise.resolve(facts().access),
    firewall: () => Promise.resolve(facts().firewall),
    firmware: () => Promise.resolve(facts().firmware),
    vulnerabilities: () => Promise.resolve(facts().vulnerabilities),
    privacy: () => Promise.resolve(facts().privacy),
    apps: () => Promise.resolve(facts().apps),
    attestation: () => Promise.resolve(facts().attestation),
    physical: () => Promise.resolve(facts().physical),
  };
}

async function context(dialect: TestStore['location']['dialect']): Promise<Ctx> {
  const t = await createTestStore(dialect);
  const clock = { now: FIXTURE_NOW };
  const now = () => clock.now;
  const log = createAuditLog({
    db: t.store.db,
    mac: createSecretBox(randomBytes(32)),
    now,
    isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
  });
  await log.ensureAnchor();
  const errors: unknown[] = [];
  const bus = createEventBus({ log, db: t.store.db, onError: (err) => errors.push(err) });
  const entries: AuditEntry[] = [];
  bus.subscribe((e) => entries.push(e));
  const state = { caExpiring: false, slowMs: 0, running: 0, maxRunning: 0 };
  const made: Compliance[] = [];
  return {
    t,
    log,
    bus,
    clock,
    state,
    entries,
    errors,
    make(over = {}) {
      const deps: ComplianceDeps = {
        db: t.store.db,
        events: bus,
        now,
        sources: sourcesOf(state, now),
        baseline: createBaselineService({ db: t.store.db, events: bus, now }),
        settings: { intervalMs: 3_600_000, scheduled: false },
        approvers: { canApprove: (u) => Promise.resolve(u === 'olga') },
        onError: (err) => errors.push(err),
        checks: checksOf(state),
        ...over,
      };
      const c = createCompliance(deps);
      made.push(c);
      return c;
    },
    async close() {
      for (const c of made) await c.stop();
      await bus.close();
      await t.cleanup();
    },
  };
}

const ofType = <T extends AuditEntry['type']>(entries: AuditEntry[], type: T) =>
  entries.filter((e): e is AuditEntry<T> => e.type === type);

describe.each(testDialects)('the compliance service (%s)', (dialect) => {
  let ctx: Ctx;
  beforeEach(async () => {
    ctx = await context(dialect);
  });
  afterEach(async () => {
    await ctx.close();
    expect(ctx.errors).toEqual([]);
  });

  it('stores a run and reads it back as it was, with its run_completed event', async () => {
    const c = ctx.make();
    expect(await c.latestRun()).toBeNull();
    const run = await c.run({ trigger: 'manual', actor: 'user:alice' });
    expect(run).toMatchObject({
      trigger: 'manual',
      createdBy: 'user:alice',
      startedAt: FIXTURE_NOW,
      baseline: { version: 0, name: 'bulwark-default' },
    });
    expect(run.checks).toHaveLength(checkCatalog.length);
    expect(run.standards.map((s) => s.id)).toEqual([
      'etsi-en-303-645',
      'iec-62443-4-2',
      'iec-62443-3-3',
      'nist-800-82',
      'iso-21434',
      'gdpr',
    ]);
    expect(await c.getRun(run.id)).toEqual(run);
    expect(await c.latestRun()).toEqual(run);
    const [listed] = await c.listRuns({ limit: 10 });
    expect(listed).toMatchObject({ id: run.id, trigger: 'manual', hasResults: true });
    const completed = ofType(ctx.entries, 'compliance.run_completed');
    expect(completed).toHaveLength(1);
    expect(completed[0]).toMatchObject({
      actor: 'user:alice',
      subject: `compliance_run:${run.id}`,
      data: { runId: run.id, trigger: 'manual', baselineVersion: 0, regressions: [], recoveries: [] },
    });
    expect(completed[0]?.data.checks).toEqual(listed?.counts);
    await expect(c.getRun('cr_nope')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('emits check_regressed when a passing check fails, check_recovered when it passes again', async () => {
    const c = ctx.make();
    await c.run({ trigger: 'manual', actor: 'user:alice' });
    ctx.state.caExpiring = true;
    ctx.clock.now += 60_000;
    const second = await c.run({ trigger: 'schedule', actor: 'system' });
    expect(second.checks.find((x) => x.id === 'pki.ca-expiry')?.status).toBe('fail');
    // The zones' measured security level needs pki.ca-expiry (phase 2): it regresses with it.
    const regressed = ofType(ctx.entries, 'compliance.check_regressed');
    expect(regressed.map((e) => e.data.check).sort()).toEqual(['pki.ca-expiry', 'zones.security-level']);
    expect(regressed[0]).toMatchObject({
      subject: 'check:pki.ca-expiry',
      data: {
        runId: second.id,
        check: 'pki.ca-expiry',
        severity: checkCatalog.find((x) => x.id === 'pki.ca-expiry')?.severity,
        summary: '1 of 1 CA certificates expires within 180 days',
        evidence: 1,
      },
    });
    expect(Object.keys(regressed[0]?.data.clauses ?? {}).length).toBeGreaterThan(0);
    // Still failing: no new event.
    ctx.clock.now += 60_000;
    await c.run({ trigger: 'schedule', actor: 'system' });
    expect(ofType(ctx.entries, 'compliance.check_regressed')).toHaveLength(2);
    ctx.state.caExpiring = false;
    ctx.clock.now += 60_000;
    const fourth = await c.run({ trigger: 'manual', actor: 'user:alice' });
    const recovered = ofType(ctx.entries, 'compliance.check_recovered');
    expect(recovered.map((e) => e.data.check).sort()).toEqual(['pki.ca-expiry', 'zones.security-level']);
    expect(recovered[0]).toMatchObject({
      subject: 'check:pki.ca-expiry',
      data: { runId: fourth.id, check: 'pki.ca-expiry' },
    });
    const completed = ofType(ctx.entries, 'compliance.run_completed').map((e) => e.data);
    const both = ['pki.ca-expiry', 'zones.security-level'];
    expect(completed.map((d) => [d.regressions, d.recoveries])).toEqual([
      [[], []],
      [both, []],
      [[], []],
      [[], both],
    ]);
    // The trend: oldest first, the failing count per run.
    // (The built-in baseline names no disclosure contact nor support period: those fail throughout.)
    const points = await c.trend({ limit: 3 });
    const before = fourth.checks.filter((x) => x.status === 'fail').length;
    expect(points.map((p) => p.failing)).toEqual([before + 2, before + 2, before]);
    expect(points[2]?.runId).toBe(fourth.id);
    expect(points[0]?.scores['etsi-en-303-645']).toBeTypeOf('number');
  });

  it('a waiver shows on the failing check of the runs while it is in force', async () => {
    const c = ctx.make();
    ctx.state.caExpiring = true;
    const w = await c.waive(
      {
        check: 'pki.ca-expiry',
        reason: 'the new CA is being rolled out',
        approver: 'olga',
        expiresAt: FIXTURE_NOW + 86_400_000,
      },
      'user:alice',
    );
    // Pending until its approver approves it (four eyes): not in force yet.
    const pending = await c.run({ trigger: 'manual', actor: 'user:alice' });
    expect(pending.checks.find((x) => x.id === 'pki.ca-expiry')?.waiver).toBeNull();
    await c.approveWaiver(w.id, 'user:olga');
    const run = await c.run({ trigger: 'manual', actor: 'user:alice' });
    const result = run.checks.find((x) => x.id === 'pki.ca-expiry');
    expect(result?.waiver?.id).toBe(w.id);
    expect((await c.getRun(run.id)).checks.find((x) => x.id === 'pki.ca-expiry')?.waiver?.id).toBe(w.id);
    expect((await c.listRuns({ limit: 2 })).find((r) => r.id === run.id)?.counts.waived).toBe(1);
  });

  it('runs one at a time: runs asked together wait and each runs afresh', async () => {
    const c = ctx.make();
    ctx.state.slowMs = 30;
    const runs = await Promise.all([
      c.run({ trigger: 'manual', actor: 'user:a' }),
      c.run({ trigger: 'manual', actor: 'user:b' }),
      c.run({ trigger: 'manual', actor: 'user:c' }),
    ]);
    expect(ctx.state.maxRunning).toBe(1);
    expect(new Set(runs.map((r) => r.id)).size).toBe(3);
    expect(runs.map((r) => r.createdBy)).toEqual(['user:a', 'user:b', 'user:c']);
  });

  it('runs on the schedule once started, and stop() waits for the run in progress', async () => {
    const c = ctx.make({ settings: { intervalMs: 40, scheduled: true }, firstRunDelayMs: 5 });
    c.start();
    await waitFor('two scheduled runs', async () => (await c.listRuns({ limit: 10 })).length >= 2, 10_000);
    await c.stop();
    const count = (await c.listRuns({ limit: 100 })).length;
    expect((await c.listRuns({ limit: 100 })).every((r) => r.trigger === 'schedule')).toBe(true);
    await new Promise((r) => setTimeout(r, 120));
    expect((await c.listRuns({ limit: 100 })).length).toBe(count);
  });

  it('does not run on the schedule when scheduled is off', async () => {
    const c = ctx.make({ settings: { intervalMs: 20, scheduled: false }, firstRunDelayMs: 1 });
    c.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(await c.listRuns({ limit: 10 })).toEqual([]);
  });

  it('runs after a baseline is applied (trigger baseline, the new version)', async () => {
    const c = ctx.make();
    c.start();
    const applied = await c.baseline.apply('name: acme-fleet\naccounts: { maxAdmins: 3 }\n', 'user:alice');
    expect(applied.version).toBe(1);
    await waitFor('the baseline run', async () => (await c.listRuns({ limit: 10 })).length >= 1, 10_000);
    const [run] = await c.listRuns({ limit: 10 });
    expect(run).toMatchObject({
      trigger: 'baseline',
      createdBy: 'user:alice',
      baseline: { version: 1, name: 'acme-fleet' },
    });
  });

  it('a report before any run is refused (conflict) and starts no run', async () => {
    const c = ctx.make();
    await expect(c.report({ standard: 'gdpr', format: 'json' }, 'user:audrey')).rejects.toMatchObject({
      code: 'conflict',
      message: NO_RUN_YET,
    });
    expect(await c.listRuns({ limit: 10 })).toEqual([]);
    expect(ofType(ctx.entries, 'compliance.report_generated')).toEqual([]);
  });

  it('a report of the latest run in each format, with compliance.report_generated', async () => {
    const c = ctx.make();
    const run = await c.run({ trigger: 'manual', actor: 'user:alice' });
    const html = await c.report({ standard: 'etsi-en-303-645', format: 'html' }, 'user:alice');
    expect(html).toMatchObject({ runId: run.id, contentType: 'text/html; charset=utf-8' });
    expect(html.body).toContain('<html');
    const json = await c.report({ standard: 'gdpr', format: 'json', runId: run.id }, 'user:bob');
    expect(JSON.parse(json.body)).toMatchObject({ standard: { id: 'gdpr' } });
    const oscal = await c.report({ standard: 'gdpr', format: 'oscal' }, 'user:bob');
    expect(JSON.parse(oscal.body)).toHaveProperty('assessment-results');
    expect(ofType(ctx.entries, 'compliance.report_generated').map((e) => [e.actor, e.data])).toEqual([
      ['user:alice', { standard: 'etsi-en-303-645', format: 'html', runId: run.id }],
      ['user:bob', { standard: 'gdpr', format: 'json', runId: run.id }],
      ['user:bob', { standard: 'gdpr', format: 'oscal', runId: run.id }],
    ]);
  });

  it('runs and reports a framework added in frameworksDir beside the built-in ones', async () => {
    const dir = acmeFrameworksDir();
    try {
      const c = ctx.make({ frameworksDir: dir });
      const healthy = await c.run({ trigger: 'manual', actor: 'user:alice' });
      const acme = healthy.standards.find((s) => s.id === 'acme-internal');
      expect(acme?.clauses.map((cl) => cl.id).sort()).toEqual(['ACME-1', 'ACME-2', 'ACME-3']);
      expect(acme?.score).toEqual(expect.any(Number));
      ctx.state.caExpiring = true;
      const failing = await c.run({ trigger: 'manual', actor: 'user:alice' });
      const summary = (await c.listRuns({ limit: 10 })).find((r) => r.id === failing.id);
      expect(summary?.scores['acme-internal']).toBe(
        failing.standards.find((s) => s.id === 'acme-internal')?.score,
      );
      expect(summary?.scores['acme-internal']).toBeLessThan(acme?.score ?? 0);

      const oscal = await c.report({ standard: 'acme-internal', format: 'oscal' }, 'user:bob');
      const schema = JSON.parse(
        readFileSync(new URL('./oscal/oscal_assessment-results_schema.json', import.meta.url), 'utf8'),
      ) as object;
      const ajv = new Ajv({ allErrors: true, strict: true });
      addFormats.default(ajv);
      const validate = ajv.compile(schema);
      expect(validate(JSON.parse(oscal.body)), JSON.stringify(validate.errors?.slice(0, 3))).toBe(true);
      const json = await c.report({ standard: 'acme-internal', format: 'json' }, 'user:bob');
      expect(JSON.parse(json.body)).toMatchObject({ standard: { id: 'acme-internal', version: '2026.1' } });
      await expect(c.report({ standard: 'iso-9001', format: 'json' }, 'user:bob')).rejects.toMatchObject({
        code: 'not_found',
        message: expect.stringMatching(
          /standard iso-9001 \(known: etsi-en-303-645, .*gdpr, acme-internal\)/,
        ) as unknown,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the results of the newest runs only; older runs stay in the list and the trend', async () => {
    const c = ctx.make();
    const base = await c.run({ trigger: 'manual', actor: 'user:alice' });
    const stored: RunResult[] = [];
    for (let i = 1; i <= 3; i++) {
      const run: RunResult = { ...base, id: `cr_test${i}`, finishedAt: base.finishedAt + i };
      await saveRun(ctx.bus, run, 2);
      stored.push(run);
    }
    const db = ctx.t.store.db;
    await expect(getRun(db, base.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(getRun(db, 'cr_test1')).rejects.toThrow(/pruned/);
    expect(await getRun(db, 'cr_test3')).toEqual(stored[2]);
    const listed = await listRuns(db, { limit: 10 });
    expect(listed.map((r) => [r.id, r.hasResults])).toEqual([
      ['cr_test3', true],
      ['cr_test2', true],
      ['cr_test1', false],
      [base.id, false],
    ]);
    expect((await trend(db, { limit: 10 })).map((p) => p.runId)).toEqual([
      base.id,
      'cr_test1',
      'cr_test2',
      'cr_test3',
    ]);
    expect(listed[3]?.scores).toEqual(listed[0]?.scores);
  });
});
