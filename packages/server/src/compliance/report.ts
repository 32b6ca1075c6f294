import { BulwarkError, type FrameworkId } from '@bulwark/protocol';
import type { CheckId, CheckSeverity } from './checks/types.ts';
import type {
  CheckResult,
  ClauseResult,
  ClauseStatus,
  RunResult,
  StandardResult,
  TrendPoint,
} from './model.ts';

/**
 * One standard's report for one run: the JSON form (served as is), and the model the HTML and OSCAL renderings
 * read. Pure: everything comes from the run and the trend.
 */

/** A clause with the results of its checks inline (evidence and waiver included). */
export interface ReportClause extends Omit<ClauseResult, 'checks'> {
  checks: CheckResult[];
}

/** One check mapped to a clause of this standard, in short (the evidence is in the clauses). */
export interface ReportCheckSummary {
  id: CheckId;
  title: string;
  severity: CheckSeverity;
  status: CheckResult['status'];
  summary: string;
  examined: number;
  needs: 'operator' | null;
  waived: boolean;
  evidenceCount: number;
  /** The clauses of this standard the check evidences. */
  clauses: string[];
}

/** Clause statuses per clause group (section, family, foundational requirement). */
export interface ReportGroup {
  name: string;
  counts: Record<ClauseStatus, number>;
}

export interface StandardReport {
  standard: { id: FrameworkId; title: string; version: string };
  run: {
    id: string;
    startedAt: number;
    finishedAt: number;
    trigger: RunResult['trigger'];
    createdBy: string;
    baseline: { version: number; name: string };
  };
  /** Applicable clauses satisfied ÷ applicable clauses; null when none is applicable. */
  score: number | null;
  counts: StandardResult['counts'];
  /** Failing (fail, error) first, then manual, pass, not applicable; the standard's order within each. */
  clauses: ReportClause[];
  /** The checks this standard's clauses map, failing first, then by severity and id. */
  checks: ReportCheckSummary[];
  groups: ReportGroup[];
  /** Failing checks not waived, by severity. */
  failingBySeverity: Record<CheckSeverity, number>;
  /** This standard's score over runs, oldest first (the run reported on included). */
  trend: { runId: string; finishedAt: number; score: number | null }[];
  generatedAt: number;
}

export const clauseStatusOrder: readonly ClauseStatus[] = [
  'fail',
  'error',
  'manual',
  'pass',
  'not_applicable',
];
export const severityOrder: readonly CheckSeverity[] = ['critical', 'high', 'medium', 'low'];
const checkStatusRank: Record<CheckResult['status'], number> = { fail: 0, error: 1, pass: 2 };

function emptyStatusCounts(): Record<ClauseStatus, number> {
  return { fail: 0, error: 0, manual: 0, pass: 0, not_applicable: 0 };
}

/** Failing first; a stable sort keeps the standard's order within each status. */
function orderClauses(clauses: readonly ReportClause[]): ReportClause[] {
  const rank = (c: ReportClause) => clauseStatusOrder.indexOf(c.status);
  return [...clauses].sort((a, b) => rank(a) - rank(b));
}

function inlineChecks(clause: ClauseResult, byId: ReadonlyMap<string, CheckResult>): ReportClause {
  const checks = clause.checks.flatMap((id) => {
    const result = byId.get(id);
    return result ? [result] : [];
  });
  return { ...clause, checks };
}

function summarizeChecks(clauses: readonly ReportClause[]): ReportCheckSummary[] {
  const found = new Map<CheckId, ReportCheckSummary>();
  for (const clause of clauses) {
    for (const check of clause.checks) {
      const known = found.get(check.id);
      if (known) {
        if (!known.clauses.includes(clause.id)) known.clauses.push(clause.id);
        continue;
      }
      found.set(check.id, {
        id: check.id,
        title: check.title,
        severity: check.severity,
        status: check.status,
        summary: check.summary,
        examined: check.examined,
        needs: check.needs,
        waived: check.status === 'fail' && check.waiver !== null,
        evidenceCount: check.evidence.length,
        clauses: [clause.id],
      });
    }
  }
  const severityRank = (c: ReportCheckSummary) => severityOrder.indexOf(c.severity);
  return [...found.values()].sort(
    (a, b) =>
      checkStatusRank[a.status] - checkStatusRank[b.status] ||
      severityRank(a) - severityRank(b) ||
      a.id.localeCompare(b.id),
  );
}

function groupCounts(clauses: readonly ReportClause[]): ReportGroup[] {
  const groups = new Map<string, Record<ClauseStatus, number>>();
  for (const clause of clauses) {
    const counts = groups.get(clause.group) ?? emptyStatusCounts();
    counts[clause.status] += 1;
    groups.set(clause.group, counts);
  }
  return [...groups.entries()]
    .map(([name, counts]) => ({ name, counts }))
    .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}

function failingBySeverity(checks: readonly ReportCheckSummary[]): Record<CheckSeverity, number> {
  const counts: Record<CheckSeverity, number> = { critical: 0, high: 0, medium: 0, low: 0 };
  for (const check of checks) if (check.status === 'fail' && !check.waived) counts[check.severity] += 1;
  return counts;
}

function standardTrend(
  run: RunResult,
  standard: StandardResult,
  trend: readonly TrendPoint[],
): StandardReport['trend'] {
  const points = trend.map((p) => ({
    runId: p.runId,
    finishedAt: p.finishedAt,
    score: p.scores[standard.id] ?? null,
  }));
  if (!points.some((p) => p.runId === run.id)) {
    points.push({ runId: run.id, finishedAt: run.finishedAt, score: standard.score });
  }
  return points.sort((a, b) => a.finishedAt - b.finishedAt);
}

/** The report of `standard` in `run`; the trend is this standard's score in the given runs (any order). */
export function buildStandardReport(
  run: RunResult,
  standardId: FrameworkId,
  trend: readonly TrendPoint[],
): StandardReport {
  const standard = run.standards.find((s) => s.id === standardId);
  if (!standard) {
    throw new BulwarkError(
      'not_found',
      `run ${run.id} has no results for standard ${standardId} (known: ${run.standards.map((s) => s.id).join(', ')})`,
    );
  }
  const byId = new Map<string, CheckResult>(run.checks.map((c) => [c.id, c]));
  const clauses = orderClauses(standard.clauses.map((c) => inlineChecks(c, byId)));
  const checks = summarizeChecks(clauses);
  return {
    standard: { id: standard.id, title: standard.title, version: standard.version },
    run: {
      id: run.id,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
      trigger: run.trigger,
      createdBy: run.createdBy,
      baseline: { version: run.baseline.version, name: run.baseline.name },
    },
    score: standard.score,
    counts: { ...standard.counts },
    clauses,
    checks,
    groups: groupCounts(clauses),
    failingBySeverity: failingBySeverity(checks),
    trend: standardTrend(run, standard, trend),
    generatedAt: Date.now(),
  };
}
