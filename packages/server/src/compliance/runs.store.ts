import { BulwarkError, type FrameworkId } from '@bulwark/protocol';
import { subjectOf, type EventBus, type TxEmit } from '../events/index.ts';
import type { ComplianceResultsTable, ComplianceRunsTable, Db, Tx } from '../store/index.ts';
import { checkCounts, scoresOf } from './engine.ts';
import { checkIds, type CheckId, type Evidence } from './checks/types.ts';
import type { CheckResult, RunResult, StandardResult, TrendPoint } from './model.ts';

/**
 * Compliance runs as stored: one compliance_runs row per run (its summary JSON: counts, scores, the standards'
 * clause results and what each check was at the time) and one compliance_results row per check with its
 * evidence snapshot. A run is committed with `compliance.run_completed` and the regression / recovery events
 * of the checks whose status changed since their last decisive result (see `changes`), or not at all.
 *
 * Bound: the newest KEEP_RESULTS runs keep their results; older runs keep only their row with counts and
 * scores (the trend), and `getRun` says their results were pruned. Hourly runs keep about three weeks.
 */
export const KEEP_RESULTS = 500;

/** A run in a list: who, when, against which baseline, the counts and the score per standard. */
export interface RunSummary {
  id: string;
  trigger: RunResult['trigger'];
  startedAt: number;
  finishedAt: number;
  createdBy: string;
  baseline: { version: number; name: string };
  /** Checks passing, failing (not waived), in error, failing but waived. */
  counts: { pass: number; fail: number; error: number; waived: number };
  scores: Record<FrameworkId, number | null>;
  /** False once the run's results were pruned (only the newest KEEP_RESULTS runs keep them). */
  hasResults: boolean;
}

/** What a check was at the run (the results row holds its outcome). */
type CheckMeta = Pick<
  CheckResult,
  'title' | 'severity' | 'rationale' | 'remediation' | 'needs' | 'waiver' | 'clauses'
>;

interface StoredSummary {
  counts: RunSummary['counts'];
  scores: RunSummary['scores'];
  baselineName: string;
  /** Absent once pruned. */
  standards?: StandardResult[];
  /** Per check, in the catalog's order; absent once pruned. */
  checks?: Record<string, CheckMeta>;
}

export interface SavedRun {
  regressions: CheckId[];
  recoveries: CheckId[];
}

type RunRow = ComplianceRunsTable;

const isCheckId = (value: string): value is CheckId => (checkIds as readonly string[]).includes(value);

// The summary and evidence columns hold JSON this module wrote.
const parseSummary = (text: string) => JSON.parse(text) as StoredSummary;
const parseEvidence = (text: string) => JSON.parse(text) as Evidence[];

function summaryOf(run: RunResult): StoredSummary {
  const checks: Record<string, CheckMeta> = {};
  for (const c of run.checks) {
    const { title, severity, rationale, remediation, needs, waiver, clauses } = c;
    checks[c.id] = { title, severity, rationale, remediation, needs, waiver, clauses };
  }
  return {
    counts: checkCounts(run.checks),
    scores: scoresOf(run.standards),
    baselineName: run.baseline.name,
    standards: run.standards,
    checks,
  };
}

function toSummary(row: RunRow): RunSummary {
  const summary = parseSummary(row.summary);
  return {
    id: row.id,
    trigger: row.trigger,
    startedAt: Number(row.started_at),
    finishedAt: Number(row.finished_at),
    createdBy: row.created_by,
    baseline: { version: Number(row.baseline_version), name: summary.baselineName },
    counts: summary.counts,
    scores: summary.scores,
    hasResults: summary.standards !== undefined,
  };
}

/** Runs, newest first (by finish time, then id); callers pick the columns. */
function newest(db: Db | Tx) {
  return db.selectFrom('compliance_runs').orderBy('finished_at', 'desc').orderBy('id', 'desc');
}

/**
 * What regressions and recoveries compare: a check is `fail` while it fails and no waiver covers it, `pass`
 * while it passes or a waiver in force accepts its failure (an accepted risk is no regression), and nothing
 * (not decisive) while it is in `error`.
 */
type Decisive = 'pass' | 'fail';

function decisive(status: CheckResult['status'], waived: boolean): Decisive | undefined {
  if (status === 'error') return undefined;
  return status === 'fail' && !waived ? 'fail' : 'pass';
}

/**
 * Per check, its newest decisive status in the runs that keep their results (one query; an `error` between
 * two runs neither hides a regression nor leaves a regression open). Whether a failure was waived is read
 * from the summaries of the runs that decided a failure (in general only the last run).
 */
async function lastDecisive(tx: Tx): Promise<Map<string, Decisive>> {
  const ranked = tx
    .selectFrom('compliance_results as r')
    .innerJoin('compliance_runs as c', 'c.id', 'r.run_id')
    .where('r.status', 'in', ['pass', 'fail'])
    .select((eb) => [
      'r.check_id',
      'r.status',
      'r.run_id',
      eb.fn
        .agg<number>('row_number')
        .over((ob) => ob.partitionBy('r.check_id').orderBy('c.finished_at', 'desc').orderBy('c.id', 'desc'))
        .as('rank'),
    ]);
  const rows = await tx
    .selectFrom(ranked.as('d'))
    .select(['d.check_id', 'd.status', 'd.run_id'])
    .where('d.rank', '=', 1)
    .execute();
  const waivedIn = await waivedFailures(
    tx,
    rows.filter((r) => r.status === 'fail').map((r) => r.run_id),
  );
  const out = new Map<string, Decisive>();
  for (const r of rows) {
    const status = decisive(r.status, waivedIn.get(r.run_id)?.has(r.check_id) ?? false);
    if (status) out.set(r.check_id, status);
  }
  return out;
}

/** Per run, the checks a waiver covered at that run (their summaries hold the waiver of each check). */
async function waivedFailures(tx: Tx, runIds: string[]): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  const ids = [...new Set(runIds)];
  if (ids.length === 0) return out;
  const rows = await tx
    .selectFrom('compliance_runs')
    .select(['id', 'summary'])
    .where('id', 'in', ids)
    .execute();
  for (const row of rows) {
    const checks = parseSummary(row.summary).checks ?? {};
    const waived = Object.entries(checks).filter(([, meta]) => meta.waiver !== null);
    out.set(row.id, new Set(waived.map(([id]) => id)));
  }
  return out;
}

/**
 * Against each check's last decisive status (`decisive`): pass → fail is a regression, fail → pass a
 * recovery. So pass → error → fail regresses and fail → error → pass recovers; a failure a waiver accepts
 * raises nothing, and ends a regression (recovered: its alert closes, the report shows the waiver); when the
 * waiver ends and the check still fails, it regresses then. New checks and errors are neither.
 */
function changes(run: RunResult, before: Map<string, Decisive>): SavedRun {
  const regressions: CheckId[] = [];
  const recoveries: CheckId[] = [];
  for (const c of run.checks) {
    const was = before.get(c.id);
    const now = decisive(c.status, c.waiver !== null);
    if (was === 'pass' && now === 'fail') regressions.push(c.id);
    if (was === 'fail' && now === 'pass') recoveries.push(c.id);
  }
  return { regressions, recoveries };
}

function resultRows(run: RunResult): ComplianceResultsTable[] {
  return run.checks.map((c) => ({
    run_id: run.id,
    check_id: c.id,
    status: c.status,
    severity: c.severity,
    summary: c.summary,
    examined: c.examined,
    evidence: JSON.stringify(c.evidence),
  }));
}

function emitRunEvents(emit: TxEmit, run: RunResult, saved: SavedRun) {
  const byId = new Map(run.checks.map((c) => [c.id, c]));
  const subject = subjectOf.check;
  for (const id of saved.regressions) {
    const c = byId.get(id);
    if (!c) continue;
    emit({
      type: 'compliance.check_regressed',
      actor: run.createdBy,
      subject: subject(id),
      data: {
        runId: run.id,
        check: id,
        title: c.title,
        severity: c.severity,
        summary: c.summary,
        clauses: Object.fromEntries(Object.entries(c.clauses).filter(([, ids]) => ids !== undefined)),
        evidence: c.evidence.length,
      },
    });
  }
  for (const id of saved.recoveries) {
    emit({
      type: 'compliance.check_recovered',
      actor: run.createdBy,
      subject: subject(id),
      data: { runId: run.id, check: id, title: byId.get(id)?.title ?? id },
    });
  }
  emit({
    type: 'compliance.run_completed',
    actor: run.createdBy,
    subject: subjectOf.compliance_run(run.id),
    data: {
      runId: run.id,
      trigger: run.trigger,
      baselineVersion: run.baseline.version,
      checks: checkCounts(run.checks),
      scores: scoresOf(run.standards),
      regressions: saved.regressions,
      recoveries: saved.recoveries,
    },
  });
}

/** Drops the results of runs older than the newest KEEP_RESULTS; their rows keep counts and scores. */
async function prune(tx: Tx, keepResults: number) {
  const beyond = await newest(tx).select('id').offset(keepResults).limit(1).executeTakeFirst();
  if (!beyond) return;
  const keep = newest(tx).select('id').limit(keepResults);
  const stale = await tx
    .selectFrom('compliance_runs')
    .select(['id', 'summary'])
    .where('id', 'in', tx.selectFrom('compliance_results').select('run_id').distinct())
    .where('id', 'not in', keep)
    .execute();
  if (stale.length === 0) return;
  await tx
    .deleteFrom('compliance_results')
    .where(
      'run_id',
      'in',
      stale.map((r) => r.id),
    )
    .execute();
  for (const row of stale) {
    const { counts, scores, baselineName } = parseSummary(row.summary);
    await tx
      .updateTable('compliance_runs')
      .set({ summary: JSON.stringify({ counts, scores, baselineName }) })
      .where('id', '=', row.id)
      .execute();
  }
}

/**
 * Stores a finished run with its events (one transaction); returns the checks that regressed or recovered.
 * `keepResults` (default KEEP_RESULTS): how many of the newest runs keep their results.
 */
export function saveRun(
  events: Pick<EventBus, 'atomically'>,
  run: RunResult,
  keepResults = KEEP_RESULTS,
): Promise<SavedRun> {
  return events.atomically(async (tx, emit) => {
    const saved = changes(run, await lastDecisive(tx));
    await tx
      .insertInto('compliance_runs')
      .values({
        id: run.id,
        trigger: run.trigger,
        started_at: run.startedAt,
        finished_at: run.finishedAt,
        baseline_version: run.baseline.version,
        summary: JSON.stringify(summaryOf(run)),
        created_by: run.createdBy,
      })
      .execute();
    if (run.checks.length > 0) await tx.insertInto('compliance_results').values(resultRows(run)).execute();
    emitRunEvents(emit, run, saved);
    await prune(tx, keepResults);
    return saved;
  });
}

function toCheckResult(row: ComplianceResultsTable, meta: CheckMeta | undefined): CheckResult | undefined {
  if (!isCheckId(row.check_id)) return undefined;
  return {
    id: row.check_id,
    title: meta?.title ?? row.check_id,
    severity: meta?.severity ?? 'medium',
    rationale: meta?.rationale ?? '',
    remediation: meta?.remediation ?? '',
    needs: meta?.needs ?? null,
    status: row.status,
    summary: row.summary,
    examined: Number(row.examined),
    evidence: parseEvidence(row.evidence),
    waiver: meta?.waiver ?? null,
    clauses: meta?.clauses ?? {},
  };
}

async function assemble(db: Db, row: RunRow): Promise<RunResult> {
  const summary = parseSummary(row.summary);
  if (!summary.standards || !summary.checks)
    throw new BulwarkError(
      'not_found',
      `the results of compliance run ${row.id} were pruned (the newest ${KEEP_RESULTS} runs keep theirs)`,
    );
  const rows = await db.selectFrom('compliance_results').selectAll().where('run_id', '=', row.id).execute();
  const byCheck = new Map(rows.map((r) => [r.check_id, r]));
  const meta = summary.checks;
  // The catalog's order at the run (the summary's key order), then any result it does not name.
  const order = [...Object.keys(meta), ...rows.map((r) => r.check_id).filter((id) => !(id in meta))];
  const checks = order.flatMap((id) => {
    const result = byCheck.get(id);
    const check = result && toCheckResult(result, meta[id]);
    return check ? [check] : [];
  });
  const s = toSummary(row);
  return {
    id: s.id,
    trigger: s.trigger,
    startedAt: s.startedAt,
    finishedAt: s.finishedAt,
    createdBy: s.createdBy,
    baseline: s.baseline,
    checks,
    standards: summary.standards,
  };
}

export async function getRun(db: Db, id: string): Promise<RunResult> {
  const row = await db.selectFrom('compliance_runs').selectAll().where('id', '=', id).executeTakeFirst();
  if (!row) throw new BulwarkError('not_found', `no compliance run ${id}`);
  return assemble(db, row);
}

/** The newest run with its results, or null before the first run. */
export async function latestRun(db: Db): Promise<RunResult | null> {
  const row = await newest(db).selectAll().limit(1).executeTakeFirst();
  return row ? assemble(db, row) : null;
}

/** Runs, newest first. */
export async function listRuns(db: Db, options: { limit: number }): Promise<RunSummary[]> {
  const rows = await newest(db).selectAll().limit(clampLimit(options.limit)).execute();
  return rows.map(toSummary);
}

/** The newest `limit` runs' scores, oldest first (a chart's order); failing = checks failing, not waived. */
export async function trend(db: Db, options: { limit: number }): Promise<TrendPoint[]> {
  const runs = await listRuns(db, options);
  return runs.reverse().map((r) => ({
    runId: r.id,
    finishedAt: r.finishedAt,
    scores: r.scores,
    failing: r.counts.fail,
  }));
}

function clampLimit(limit: number): number {
  return Number.isSafeInteger(limit) ? Math.min(Math.max(limit, 1), 10_000) : 100;
}
