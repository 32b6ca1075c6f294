import type { FrameworkId } from '@bulwark/protocol';
import type { CheckId, CheckSeverity, Evidence } from './checks/types.ts';

/**
 * The shapes shared by the compliance engine, its store, its reports and its API: frameworks (the mapping of
 * clauses to checks, as data), and a run's results per check, per clause and per standard.
 */

export type ClauseMode = 'automated' | 'manual' | 'not_applicable';

/** One clause of a standard, as its framework file maps it (compliance/frameworks/<standard>.json). */
export interface FrameworkClause {
  /** The standard's own id: `5.1-1`, `CR 1.1`, `SR 5.1 RE(1)`, `AC-2`, `Art. 32`, `15.5`. */
  id: string;
  /** A paraphrased title (never the standard's text). */
  title: string;
  /** The clause's section or family (`5.1 No universal default passwords`, `FR1 …`, `AC`). */
  group: string;
  /** IEC 62443: the lowest security level (1..4) the requirement or enhancement belongs to. */
  level?: number;
  mode: ClauseMode;
  /** automated: the checks that evidence it (all must pass). */
  checks?: CheckId[];
  /** automated: how the checks evidence the clause (one or two sentences). */
  note?: string;
  /** manual: what an attestation must show. */
  guidance?: string;
  /** not_applicable: why (ETSI EN 303 645 provision 4-1 / 5.0-1). */
  justification?: string;
}

export interface Framework {
  id: FrameworkId;
  title: string;
  version: string;
  clauses: FrameworkClause[];
}

/** The checks an IEC 62443 security level needs (cumulative: level 2 includes level 1's). */
export interface SecurityLevelRequirement {
  level: 1 | 2 | 3 | 4;
  checks: CheckId[];
}

export type CheckStatus = 'pass' | 'fail' | 'error';

export interface WaiverView {
  id: string;
  check: CheckId;
  reason: string;
  approver: string;
  /** pending: awaiting its approver (never in force); approved: in force until it expires. */
  status: 'pending' | 'approved';
  approvedAt: number | null;
  expiresAt: number;
  createdAt: number;
  createdBy: string;
}

export interface AttestationView {
  id: string;
  standard: FrameworkId;
  clause: string;
  statement: string;
  owner: string;
  files: { name: string; sha256: string; size: number; mediaType: string }[];
  reviewAt: number;
  expiresAt: number;
  createdAt: number;
  createdBy: string;
}

/** One check's outcome in a run. */
export interface CheckResult {
  id: CheckId;
  title: string;
  severity: CheckSeverity;
  rationale: string;
  remediation: string;
  needs: 'operator' | null;
  status: CheckStatus;
  summary: string;
  examined: number;
  /** Failing objects (or, for `error`, none). Capped at 200 with a last entry saying how many more. */
  evidence: Evidence[];
  /** A waiver in force for this failing check at the run. */
  waiver: WaiverView | null;
  /** Clause ids per standard this check evidences (from the frameworks). */
  clauses: Record<FrameworkId, string[]>;
}

/**
 * pass: every check passes (or a manual clause has an attestation in force); fail: a check fails (or the
 * attestation expired); manual: no attestation yet; not_applicable: justified, excluded from the score;
 * error: a check could not read its facts (counts as not satisfied).
 */
export type ClauseStatus = 'pass' | 'fail' | 'manual' | 'not_applicable' | 'error';

export interface ClauseResult {
  id: string;
  title: string;
  group: string;
  level: number | null;
  mode: ClauseMode;
  status: ClauseStatus;
  /** True when the clause passes only because failing checks are waived. */
  waived: boolean;
  checks: CheckId[];
  note: string | null;
  guidance: string | null;
  /** Where the justification came from: the framework file or the baseline (compliance.notApplicable). */
  justification: { text: string; source: 'framework' | 'baseline' } | null;
  attestation: (AttestationView & { expired: boolean }) | null;
}

export interface StandardResult {
  id: FrameworkId;
  title: string;
  version: string;
  /** Applicable clauses satisfied ÷ applicable clauses (waived counts as satisfied); null: none applicable. */
  score: number | null;
  counts: Record<ClauseStatus, number> & { waived: number };
  /** Failing (fail, error) first, then manual, pass, not applicable; in the standard's order within each. */
  clauses: ClauseResult[];
}

export interface RunResult {
  id: string;
  trigger: 'manual' | 'schedule' | 'baseline';
  startedAt: number;
  finishedAt: number;
  createdBy: string;
  baseline: { version: number; name: string };
  checks: CheckResult[];
  standards: StandardResult[];
}

/** One point of the trend: a run's score per standard. */
export interface TrendPoint {
  runId: string;
  finishedAt: number;
  scores: Record<FrameworkId, number | null>;
  failing: number;
}
