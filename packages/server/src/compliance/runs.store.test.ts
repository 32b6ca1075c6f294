import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, type AuditEntry, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import type { CheckId } from './checks/types.ts';
import type { CheckResult, RunResult, WaiverView } from './model.ts';
import { saveRun } from './runs.store.ts';

const T = 1_800_000_000_000;
const WATCHED: CheckId = 'pki.ca-expiry';
const STEADY: CheckId = 'pki.shared-keys';

// Assigned through a variable: the fields a waiver view has, whichever version of it the model holds.
const waiverFields = {
  id: 'w-1',
  check: WATCHED,
  reason: 'the new CA is being rolled out',
  approver: 'olga',
  status: 'approved',
  approvedAt: T,
  expiresAt: T + 86_400_000,
  createdAt: T,
  createdBy: 'user:alice',
} as const;
const waiver: WaiverView = waiverFields;

type Step = CheckResult['status'] | 'waived';

function check(id: CheckId, step: Step): CheckResult {
  return {
    id,
    title: id,
    severity: 'high',
    rationale: 'why',
    remediation: 'what to do',
    needs: null,
    status: step === 'waived' ? 'fail' : step,
    summary: step,
    examined: 1,
    evidence: step === 'pass' ? [] : [{ kind: 'certificate', id: 'ca-1', detail: 'expires soon' }],
    waiver: step === 'waived' ? waiver : null,
    clauses: {},
  };
}

/** Stores one run per step of WATCHED (STEADY passes throughout); the regressions and recoveries of each. */
async function runSteps(bus: EventBus, steps: Step[]) {
  const out: [CheckId[], CheckId[]][] = [];
  for (const [i, step] of steps.entries()) {
    const run: RunResult = {
      id: `cr_${i}`,
      trigger: 'schedule',
      startedAt: T + i * 60_000,
      finishedAt: T + i * 60_000 + 1,
      createdBy: 'system',
      baseline: { version: 0, name: 'bulwark-default' },
      checks: [check(WATCHED, step), check(STEADY, 'pass')],
      standards: [],
    };
    const saved = await saveRun(bus, run);
    out.push([saved.regressions, saved.recoveries]);
  }
  return out;
}

const none: [CheckId[], CheckId[]] = [[], []];
const regressed: [CheckId[], CheckId[]] = [[WATCHED], []];
const recovered: [CheckId[], CheckId[]] = [[], [WATCHED]];

/** Regressions and recoveries compare each check with its last decisive (pass or fail) status. */
describe.each(testDialects)('compliance runs: regressions and recoveries (%s)', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let entries: AuditEntry[];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    const log = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => T,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await log.ensureAnchor();
    bus = createEventBus({ log, db: t.store.db });
    entries = [];
    bus.subscribe((e) => entries.push(e));
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  it('pass → error → fail regresses (the error hides nothing)', async () => {
    expect(await runSteps(bus, ['pass', 'error', 'fail', 'error', 'fail'])).toEqual([
      none,
      none,
      regressed,
      none,
      none,
    ]);
    await bus.flush();
    const events = entries.filter((e) => e.type === 'compliance.check_regressed');
    expect(events.map((e) => [e.subject, e.type === 'compliance.check_regressed' && e.data.runId])).toEqual([
      ['check:pki.ca-expiry', 'cr_2'],
    ]);
  });

  it('fail → error → pass recovers (an open regression is closed)', async () => {
    expect(await runSteps(bus, ['pass', 'fail', 'error', 'error', 'pass', 'error', 'pass'])).toEqual([
      none,
      regressed,
      none,
      none,
      recovered,
      none,
      none,
    ]);
  });

  it('a first result, or errors only before it, is neither', async () => {
    expect(await runSteps(bus, ['error', 'fail', 'error', 'fail'])).toEqual([none, none, none, none]);
  });

  it('a waived failure raises nothing; once the waiver ends and it still fails, it regresses', async () => {
    expect(await runSteps(bus, ['pass', 'waived', 'error', 'waived', 'fail', 'fail', 'pass'])).toEqual([
      none,
      none,
      none,
      none,
      regressed,
      none,
      recovered,
    ]);
  });

  it('a waiver accepting a regressed failure ends the regression; a pass after it is nothing new', async () => {
    expect(await runSteps(bus, ['pass', 'fail', 'waived', 'pass'])).toEqual([
      none,
      regressed,
      recovered,
      none,
    ]);
  });
});
