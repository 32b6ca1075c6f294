import { randomBytes } from 'node:crypto';
import { BulwarkError, type FrameworkId } from '@bulwark/protocol';
import { subjectOf, type EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import {
  createAttestations,
  type AttestationInput,
  type AttestationRecord,
  type Attestations,
  type EvidenceFile,
} from './attestations.ts';
import type { BaselineService } from './baseline.service.ts';
import { achievedLevel, checkCatalog } from './checks/index.ts';
import type { CheckDefinition, CheckId } from './checks/types.ts';
import { evaluate } from './engine.ts';
import type { ComplianceSources } from './facts.ts';
import { loadFrameworks, securityLevelRequirements } from './frameworks.ts';
import type { CheckStatus, Framework, RunResult, TrendPoint } from './model.ts';
import { buildStandardReport } from './report.ts';
import { renderHtml } from './report.html.ts';
import { toOscal } from './report.oscal.ts';
import * as runs from './runs.store.ts';
import { createWaivers, type WaiverInput, type WaiverRecord, type Waivers } from './waivers.ts';

/**
 * The compliance service: runs every check against the live fleet (on demand, on the schedule, after a
 * baseline is applied), stores the runs, and holds attestations, waivers and reports.
 *
 * Runs never overlap: they run one after another in this process. A manual or baseline run asked while
 * another runs waits for it and then runs afresh (the state may have changed since that run began), so its
 * caller always gets a run that started after it asked; several baseline changes while one waits share
 * that one pending run (it reads the baseline when it starts). A scheduled tick while a run is running or
 * waiting is skipped. `stop()` waits for the run in progress; runs still waiting are refused.
 */

export type RunTrigger = RunResult['trigger'];
export type ReportFormat = 'html' | 'json' | 'oscal';

export interface ComplianceDeps {
  db: Db;
  events: Pick<EventBus, 'atomically' | 'on'>;
  now: () => number;
  sources: ComplianceSources;
  baseline: BaselineService;
  /** config compliance.frameworksDir: framework files replacing the built-in ones. */
  frameworksDir?: string | undefined;
  settings: { intervalMs: number; scheduled: boolean };
  approvers: { canApprove(username: string): Promise<boolean> };
  /** A background run (schedule, baseline change) failed. */
  onError: (err: unknown) => void;
  /** Test seam: the checks to run (default: the whole catalog). */
  checks?: readonly CheckDefinition[];
  /** Test seam: the delay of the first scheduled run after start (default min(10 s, interval)). */
  firstRunDelayMs?: number;
}

export interface MeasuredLevel {
  runId: string;
  measuredAt: number;
  achieved: number;
  /** The checks (not passing) that block each level 1-4. */
  blocking: Record<1 | 2 | 3 | 4, CheckId[]>;
  /** Check statuses of the run, by check id. */
  statuses: Record<string, CheckStatus>;
}

export interface Compliance {
  baseline: BaselineService;
  frameworks(): Framework[];
  /** The checks a run runs (the catalog), in its order. */
  checks(): readonly CheckDefinition[];
  run(options: { trigger: RunTrigger; actor: string }): Promise<RunResult>;
  /**
   * The measured IEC 62443 security level (SL-A) of the latest run: the highest level whose required checks all
   * passed, and what blocks each level; null before the first run. Targets per zone: `zoneTarget`.
   */
  measuredLevel(): Promise<MeasuredLevel | null>;
  /** The newest run, null before the first. */
  latestRun(): Promise<RunResult | null>;
  /** A run with its results (not_found when unknown or pruned). */
  getRun(id: string): Promise<RunResult>;
  /** Runs, newest first. */
  listRuns(options: { limit: number }): Promise<runs.RunSummary[]>;
  /** Scores of the newest `limit` runs, oldest first. */
  trend(options: { limit: number }): Promise<TrendPoint[]>;
  attest(input: AttestationInput, actor: string): Promise<AttestationRecord>;
  /** Attestations not revoked, newest first (revoked too with includeRevoked). */
  attestations(options?: { includeRevoked?: boolean; limit?: number }): Promise<AttestationRecord[]>;
  revokeAttestation(id: string, reason: string, actor: string): Promise<AttestationRecord>;
  evidenceFile(sha256: string): Promise<EvidenceFile>;
  waive(input: WaiverInput, actor: string): Promise<WaiverRecord>;
  /** Waivers not revoked, newest first (revoked too with includeRevoked). */
  waivers(options?: { includeRevoked?: boolean; limit?: number }): Promise<WaiverRecord[]>;
  revokeWaiver(id: string, reason: string, actor: string): Promise<WaiverRecord>;
  /** The approver a pending waiver names approves it (four eyes); only then is it in force. */
  approveWaiver(id: string, actor: string): Promise<WaiverRecord>;
  /**
   * A standard's report of a run (default the latest; none yet is a `conflict`, NO_RUN_YET: a report never
   * starts a run), as self-contained HTML, JSON or OSCAL assessment results; emits compliance.report_generated.
   */
  report(
    options: { standard: FrameworkId; format: ReportFormat; runId?: string | undefined },
    actor: string,
  ): Promise<{ contentType: string; body: string; runId: string }>;
  /** The schedule (when settings.scheduled) and runs after baseline changes from any process. */
  start(): void;
  stop(): Promise<void>;
}

/** Runs in the report's trend. */
const REPORT_TREND_RUNS = 50;

interface Parts {
  deps: ComplianceDeps;
  frameworks: Framework[];
  checks: readonly CheckDefinition[];
  attestations: Attestations;
  waivers: Waivers;
}

/** One run: the baseline, waivers and attestations as they are now, the checks, stored with its events. */
async function runOnce(parts: Parts, trigger: RunTrigger, actor: string): Promise<RunResult> {
  const { deps } = parts;
  const startedAt = deps.now();
  const [current, waivers, attestations] = await Promise.all([
    deps.baseline.current(),
    parts.waivers.inForce(startedAt),
    parts.attestations.list(),
  ]);
  const result = await evaluate({
    sources: deps.sources,
    checks: parts.checks,
    frameworks: parts.frameworks,
    baseline: current.baseline,
    now: startedAt,
    waivers,
    attestations,
  });
  const run: RunResult = {
    id: `cr_${randomBytes(10).toString('hex')}`,
    trigger,
    startedAt,
    finishedAt: Math.max(startedAt, deps.now()),
    createdBy: actor,
    baseline: { version: current.version, name: current.name },
    ...result,
  };
  await runs.saveRun(deps.events, run);
  return run;
}

/** Runs one at a time (see the module comment). */
function createRunner(parts: Parts) {
  let tail: Promise<unknown> = Promise.resolve();
  let running = 0;
  let pendingBaseline: Promise<RunResult> | undefined;
  let stopped = false;

  const enqueue = (trigger: RunTrigger, actor: string): Promise<RunResult> => {
    running++;
    const job = tail.then(async () => {
      if (stopped) throw new BulwarkError('unavailable', 'compliance runs are stopping');
      if (trigger === 'baseline') pendingBaseline = undefined;
      return runOnce(parts, trigger, actor);
    });
    const settled = job.finally(() => running--);
    tail = settled.catch(() => undefined);
    return settled;
  };

  const background = (work: Promise<RunResult>) =>
    work.catch((err: unknown) => {
      if (!(err instanceof BulwarkError && err.code === 'unavailable' && stopped)) parts.deps.onError(err);
    });

  return {
    run: enqueue,
    /** A scheduled tick: skipped while a run runs or waits. */
    tick() {
      if (running === 0 && !stopped) void background(enqueue('schedule', 'system'));
    },
    /** A baseline was applied: one pending baseline run covers every change made while it waits. */
    baselineApplied(actor: string) {
      if (stopped || pendingBaseline) return;
      pendingBaseline = enqueue('baseline', actor);
      void background(pendingBaseline);
    },
    async stop() {
      stopped = true;
      await tail;
    },
    restart() {
      stopped = false;
    },
  };
}

type Runner = ReturnType<typeof createRunner>;

/** The schedule and the baseline subscription; `stop` ends both and waits for the runner. */
function createSchedule(deps: ComplianceDeps, runner: Runner) {
  let timers: NodeJS.Timeout[] = [];
  let unsubscribe: (() => void) | undefined;
  return {
    start() {
      if (unsubscribe) return;
      runner.restart();
      unsubscribe = deps.events.on('compliance.baseline_applied', (entry) => {
        runner.baselineApplied(entry.actor);
      });
      const { intervalMs, scheduled } = deps.settings;
      if (!scheduled || intervalMs <= 0) return;
      const first = setTimeout(
        () => {
          runner.tick();
          const every = setInterval(() => runner.tick(), intervalMs);
          every.unref();
          timers.push(every);
        },
        deps.firstRunDelayMs ?? Math.min(10_000, intervalMs),
      );
      first.unref();
      timers.push(first);
    },
    async stop() {
      unsubscribe?.();
      unsubscribe = undefined;
      for (const t of timers) {
        clearTimeout(t);
        clearInterval(t);
      }
      timers = [];
      await runner.stop();
    },
  };
}

const contentTypes: Record<ReportFormat, string> = {
  html: 'text/html; charset=utf-8',
  json: 'application/json',
  oscal: 'application/json',
};

/** The message when a report is asked before any run. */
export const NO_RUN_YET =
  'no compliance run yet: run `bulwark compliance run` or POST /api/v1/compliance/runs first';

/**
 * The newest run; none yet is a `conflict`: reading a report never starts a run (a read-only auditor must not
 * make runs, which read every module and write the audit log).
 */
async function latestOrRefuse(db: Db): Promise<RunResult> {
  const latest = await runs.latestRun(db);
  if (!latest) throw new BulwarkError('conflict', NO_RUN_YET);
  return latest;
}

async function report(
  parts: Parts,
  options: Parameters<Compliance['report']>[0],
  actor: string,
): ReturnType<Compliance['report']> {
  const { db, events } = parts.deps;
  const run = options.runId !== undefined ? await runs.getRun(db, options.runId) : await latestOrRefuse(db);
  const built = buildStandardReport(
    run,
    options.standard,
    await runs.trend(db, { limit: REPORT_TREND_RUNS }),
  );
  const body =
    options.format === 'html'
      ? renderHtml(built)
      : JSON.stringify(options.format === 'json' ? built : toOscal(built, run), null, 2);
  await events.atomically((_tx, emit) => {
    emit({
      type: 'compliance.report_generated',
      actor,
      subject: subjectOf.compliance_run(run.id),
      data: { standard: options.standard, format: options.format, runId: run.id },
    });
    return Promise.resolve();
  });
  return { contentType: contentTypes[options.format], body, runId: run.id };
}

function parts(deps: ComplianceDeps): Parts {
  const frameworks = loadFrameworks(deps.frameworksDir === undefined ? {} : { dir: deps.frameworksDir });
  const clauseExists = (standard: FrameworkId, clause: string) =>
    frameworks.find((f) => f.id === standard)?.clauses.find((c) => c.id === clause)?.mode;
  const { db, events, now, approvers } = deps;
  return {
    deps,
    frameworks,
    checks: deps.checks ?? checkCatalog,
    attestations: createAttestations({
      db,
      events,
      now,
      clauseExists,
      standards: frameworks.map((f) => f.id),
    }),
    waivers: createWaivers({ db, events, now, approvers }),
  };
}

export function createCompliance(deps: ComplianceDeps): Compliance {
  const p = parts(deps);
  const runner = createRunner(p);
  const schedule = createSchedule(deps, runner);
  const { db } = deps;
  return {
    baseline: deps.baseline,
    frameworks: () => p.frameworks,
    checks: () => p.checks,
    run: ({ trigger, actor }) => runner.run(trigger, actor),
    latestRun: () => runs.latestRun(db),
    measuredLevel: async () => {
      const run = await runs.latestRun(db);
      if (!run) return null;
      const results = new Map(run.checks.map((c) => [c.id, { status: c.status }]));
      const { achieved, blocking } = achievedLevel({
        results,
        securityLevels: securityLevelRequirements(p.frameworks),
      });
      return {
        runId: run.id,
        measuredAt: run.finishedAt,
        achieved,
        blocking: { 1: blocking(1), 2: blocking(2), 3: blocking(3), 4: blocking(4) },
        statuses: Object.fromEntries(run.checks.map((c) => [c.id, c.status])),
      };
    },
    getRun: (id) => runs.getRun(db, id),
    listRuns: (options) => runs.listRuns(db, options),
    trend: (options) => runs.trend(db, options),
    attest: (input, actor) => p.attestations.record(input, actor),
    attestations: (options) => p.attestations.list(options),
    revokeAttestation: (id, reason, actor) => p.attestations.revoke(id, reason, actor),
    evidenceFile: (sha256) => p.attestations.file(sha256),
    waive: (input, actor) => p.waivers.grant(input, actor),
    waivers: (options) => p.waivers.list(options),
    revokeWaiver: (id, reason, actor) => p.waivers.revoke(id, reason, actor),
    approveWaiver: (id, actor) => p.waivers.approve(id, actor),
    report: (options, actor) => report(p, options, actor),
    start: () => schedule.start(),
    stop: () => schedule.stop(),
  };
}
