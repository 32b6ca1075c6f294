import type { Baseline, FrameworkId } from '@bulwark/protocol';
import type { CheckDefinition, CheckId, CheckOutcome, Evidence } from './checks/types.ts';
import {
  everySource,
  type ComplianceFacts,
  type ComplianceSources,
  type FactContext,
  type FactSource,
} from './facts.ts';
import { clausesByCheck, securityLevelRequirements } from './frameworks.ts';
import type {
  AttestationView,
  CheckResult,
  CheckStatus,
  ClauseResult,
  ClauseStatus,
  Framework,
  FrameworkClause,
  StandardResult,
  WaiverView,
} from './model.ts';

/**
 * The compliance engine: gathers the facts once (every source in parallel), runs the checks (phase 1, then
 * phase 2 reading phase 1's outcomes), and judges every clause of every framework from the check results,
 * the waivers and the attestations. Pure apart from the fact sources: the service stores what it returns.
 */

/** Evidence entries kept per check; one more entry says how many were left out. */
export const EVIDENCE_CAP = 200;

/** A fact source that has not answered by then fails (its checks are `error`), so a run always ends. */
export const SOURCE_TIMEOUT_MS = 60_000;

export interface EvaluateInput {
  sources: ComplianceSources;
  checks: readonly CheckDefinition[];
  frameworks: readonly Framework[];
  baseline: Baseline;
  now: number;
  /** Waivers not revoked (expired ones are ignored here). */
  waivers: readonly WaiverView[];
  /**
   * Attestations not revoked, expired ones included (they make their clause fail when none is in force).
   * A `revokedAt` set, if the caller passes stored records, excludes the attestation.
   */
  attestations: readonly (AttestationView & { revokedAt?: number | null })[];
  /** Default SOURCE_TIMEOUT_MS. */
  sourceTimeoutMs?: number | undefined;
}

export interface Evaluation {
  checks: CheckResult[];
  standards: StandardResult[];
}

type Outcome = Omit<CheckOutcome, 'status'> & { status: CheckStatus };

interface LoadedFacts {
  facts: Partial<ComplianceFacts>;
  /** Sources that could not be read, with the reason. */
  failures: Map<FactSource, string>;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** `work`, or a rejection once `ms` have passed without an answer. */
async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(ms / 1000)} s`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads every source the checks need, in parallel; a rejected source is recorded, never thrown. */
export async function gatherFacts(
  sources: ComplianceSources,
  wanted: Iterable<FactSource>,
  options: { context: FactContext; timeoutMs?: number | undefined },
): Promise<LoadedFacts> {
  const timeoutMs = options.timeoutMs ?? SOURCE_TIMEOUT_MS;
  const facts: Partial<ComplianceFacts> = {};
  const failures = new Map<FactSource, string>();
  const readers = everySource(sources);
  const load = async <K extends FactSource>(source: K) => {
    try {
      facts[source] = await within(readers[source](options.context), timeoutMs);
    } catch (err) {
      failures.set(source, messageOf(err));
    }
  };
  await Promise.all([...new Set(wanted)].map((source) => load(source)));
  return { facts, failures };
}

const errorOutcome = (summary: string): Outcome => ({ status: 'error', summary, examined: 0, evidence: [] });

/** At most EVIDENCE_CAP entries, and a last one saying how many more there were. */
export function capEvidence(evidence: readonly Evidence[]): Evidence[] {
  if (evidence.length <= EVIDENCE_CAP) return [...evidence];
  const kept = evidence.slice(0, EVIDENCE_CAP);
  const more = evidence.length - EVIDENCE_CAP;
  return [...kept, { kind: kept[kept.length - 1]?.kind ?? 'setting', id: '…', detail: `…and ${more} more` }];
}

interface RunContext {
  loaded: LoadedFacts;
  baseline: Baseline;
  now: number;
  securityLevels: ReturnType<typeof securityLevelRequirements>;
}

/** One check: `error` when a source it reads failed or when it throws (a run never crashes on a check). */
function runCheck(check: CheckDefinition, ctx: RunContext, results: ReadonlyMap<string, Outcome>): Outcome {
  const failed = check.reads.find((source) => ctx.loaded.failures.has(source));
  if (failed !== undefined)
    return errorOutcome(`could not read ${failed}: ${ctx.loaded.failures.get(failed) ?? 'unknown error'}`);
  try {
    const outcome = check.run({
      // Every source a check declares in `reads` is loaded (a failed one made it `error` above).
      facts: ctx.loaded.facts as ComplianceFacts,
      baseline: ctx.baseline,
      now: ctx.now,
      results,
      securityLevels: ctx.securityLevels,
    });
    return { ...outcome, evidence: capEvidence(outcome.evidence) };
  } catch (err) {
    return errorOutcome(`the check could not run: ${messageOf(err)}`);
  }
}

/** Phase 1, then phase 2 with phase 1's outcomes. */
function runPhases(checks: readonly CheckDefinition[], ctx: RunContext): Map<CheckId, Outcome> {
  const results = new Map<CheckId, Outcome>();
  for (const phase of [1, 2] as const) {
    const before: ReadonlyMap<string, Outcome> = new Map(results);
    for (const check of checks) {
      if ((check.phase ?? 1) === phase) results.set(check.id, runCheck(check, ctx, before));
    }
  }
  return results;
}

/** The waiver in force for a check at `now`: the one that lasts longest. */
function waiverFor(waivers: readonly WaiverView[], check: CheckId, now: number): WaiverView | null {
  let best: WaiverView | null = null;
  for (const w of waivers) {
    if (w.check !== check || w.expiresAt <= now) continue;
    if (!best || w.expiresAt > best.expiresAt) best = w;
  }
  return best;
}

function checkResults(input: EvaluateInput, outcomes: Map<CheckId, Outcome>): CheckResult[] {
  const byCheck = clausesByCheck(input.frameworks);
  return input.checks.map((check) => {
    const outcome = outcomes.get(check.id) ?? errorOutcome('the check did not run');
    const waiver = outcome.status === 'fail' ? waiverFor(input.waivers, check.id, input.now) : null;
    return {
      id: check.id,
      title: check.title,
      severity: check.severity,
      rationale: check.rationale,
      remediation: check.remediation,
      needs: check.needs ?? null,
      status: outcome.status,
      summary: outcome.summary,
      examined: outcome.examined,
      evidence: outcome.evidence,
      waiver,
      clauses: byCheck.get(check.id) ?? {},
    };
  });
}

interface ClauseContext {
  standard: FrameworkId;
  checks: ReadonlyMap<CheckId, CheckResult>;
  baseline: Baseline;
  now: number;
  attestations: EvaluateInput['attestations'];
}

type Judgement = Pick<ClauseResult, 'status' | 'waived' | 'justification' | 'attestation'>;

const judged = (status: ClauseStatus, extra: Partial<Judgement> = {}): Judgement => ({
  status,
  waived: false,
  justification: null,
  attestation: null,
  ...extra,
});

/** Every mapped check must pass; a waived failure passes (waived); an error wins over a failure. */
function judgeAutomated(clause: FrameworkClause, ctx: ClauseContext): Judgement {
  let error = false;
  let fail = false;
  let waived = false;
  for (const id of clause.checks ?? []) {
    const result = ctx.checks.get(id);
    if (!result || result.status === 'error') error = true;
    else if (result.status === 'fail') {
      if (result.waiver) waived = true;
      else fail = true;
    }
  }
  if (error) return judged('error');
  if (fail) return judged('fail');
  return judged('pass', { waived });
}

/**
 * An attestation in force (not expired, reviewed within the baseline's attestationMaxAge) satisfies the
 * clause; one that lapsed, with none in force, fails it; none leaves it `manual`.
 */
function judgeManual(clause: FrameworkClause, ctx: ClauseContext): Judgement {
  const maxAge = ctx.baseline.compliance.attestationMaxAge;
  const candidates = ctx.attestations
    .filter((a) => a.standard === ctx.standard && a.clause === clause.id && (a.revokedAt ?? null) === null)
    .sort((a, b) => b.createdAt - a.createdAt);
  const inForce = candidates.find((a) => a.expiresAt > ctx.now && a.createdAt + maxAge > ctx.now);
  const view = (a: ClauseContext['attestations'][number], expired: boolean) => {
    const { revokedAt: _revoked, ...rest } = a;
    return { ...rest, expired };
  };
  if (inForce) return judged('pass', { attestation: view(inForce, false) });
  const lapsed = candidates[0];
  if (lapsed) return judged('fail', { attestation: view(lapsed, true) });
  return judged('manual');
}

function judgeClause(clause: FrameworkClause, ctx: ClauseContext): Judgement {
  const byBaseline = ctx.baseline.compliance.notApplicable[ctx.standard]?.[clause.id];
  if (byBaseline !== undefined)
    return judged('not_applicable', { justification: { text: byBaseline, source: 'baseline' } });
  switch (clause.mode) {
    case 'not_applicable':
      return judged('not_applicable', {
        justification: { text: clause.justification ?? '', source: 'framework' },
      });
    case 'manual':
      return judgeManual(clause, ctx);
    case 'automated':
      return judgeAutomated(clause, ctx);
  }
}

/** Failing (fail, error) first, then manual, pass, not applicable. */
const clauseRank: Record<ClauseStatus, number> = { fail: 0, error: 1, manual: 2, pass: 3, not_applicable: 4 };

function emptyCounts(): StandardResult['counts'] {
  return { pass: 0, fail: 0, manual: 0, not_applicable: 0, error: 0, waived: 0 };
}

function standardResult(framework: Framework, ctx: ClauseContext): StandardResult {
  const clauses: ClauseResult[] = framework.clauses.map((clause) => ({
    id: clause.id,
    title: clause.title,
    group: clause.group,
    level: clause.level ?? null,
    mode: clause.mode,
    checks: clause.checks ?? [],
    note: clause.note ?? null,
    guidance: clause.guidance ?? null,
    ...judgeClause(clause, ctx),
  }));
  const counts = emptyCounts();
  for (const c of clauses) {
    counts[c.status]++;
    if (c.waived) counts.waived++;
  }
  const applicable = clauses.length - counts.not_applicable;
  // Array.prototype.sort is stable: the standard's order holds within each status.
  const ordered = clauses
    .map((c, i) => ({ c, i }))
    .sort((a, b) => clauseRank[a.c.status] - clauseRank[b.c.status] || a.i - b.i)
    .map(({ c }) => c);
  return {
    id: framework.id,
    title: framework.title,
    version: framework.version,
    score: applicable === 0 ? null : counts.pass / applicable,
    counts,
    clauses: ordered,
  };
}

/** Gathers the facts, runs every check and judges every clause of every framework. */
export async function evaluate(input: EvaluateInput): Promise<Evaluation> {
  const loaded = await gatherFacts(
    input.sources,
    input.checks.flatMap((c) => c.reads),
    { context: { baseline: input.baseline }, timeoutMs: input.sourceTimeoutMs },
  );
  const outcomes = runPhases(input.checks, {
    loaded,
    baseline: input.baseline,
    now: input.now,
    securityLevels: securityLevelRequirements(input.frameworks),
  });
  const checks = checkResults(input, outcomes);
  const byId = new Map(checks.map((c) => [c.id, c]));
  const standards = input.frameworks.map((framework) =>
    standardResult(framework, {
      standard: framework.id,
      checks: byId,
      baseline: input.baseline,
      now: input.now,
      attestations: input.attestations,
    }),
  );
  return { checks, standards };
}

/** A run's check counts: fail excludes waived failures (counted as waived). */
export function checkCounts(checks: readonly CheckResult[]) {
  const counts = { pass: 0, fail: 0, error: 0, waived: 0 };
  for (const c of checks) {
    if (c.status === 'fail' && c.waiver) counts.waived++;
    else counts[c.status]++;
  }
  return counts;
}

/** Score per standard. */
export function scoresOf(standards: readonly StandardResult[]): Record<FrameworkId, number | null> {
  return Object.fromEntries(standards.map((s) => [s.id, s.score]));
}
