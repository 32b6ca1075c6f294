import type { CheckSeverity, CheckOutcome, Evidence } from './types.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const MINUTE = 60_000;

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

const units = [
  [DAY, 'day'],
  [HOUR, 'hour'],
  [MINUTE, 'minute'],
  [1000, 'second'],
] as const;

/**
 * A duration for people: the largest unit that counts it whole in under 100 (`14 days`, `36 hours`,
 * `90 minutes`), else the largest unit rounded to a tenth (`1 day` for a day and a minute, `1.5 seconds`).
 */
export function humanDuration(ms: number): string {
  for (const [size, unit] of units)
    if (ms >= size && ms % size === 0 && (ms / size < 100 || unit === 'day')) return plural(ms / size, unit);
  for (const [size, unit] of units) if (ms >= size) return plural(Math.round((ms / size) * 10) / 10, unit);
  return `${ms} ms`;
}

/** An instant as an ISO date (yyyy-mm-dd), as evidence shows it. */
export const isoDate = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** `expired 2026-01-03` or `expires 2026-01-03`. */
export const expiry = (notAfter: number, now: number) =>
  `${notAfter <= now ? 'expired' : 'expires'} ${isoDate(notAfter)}`;

export const count = plural;

const severityRanks: Record<string, number> = { low: 1, medium: 2, high: 3, critical: 4 };

/** critical 4 … low 1; anything else (`unknown`, `info`) 0, below every threshold. */
export const severityRank = (severity: string) => severityRanks[severity] ?? 0;

export const atLeast = (severity: string, threshold: CheckSeverity) =>
  severityRank(severity) >= severityRank(threshold);

/**
 * The one outcome rule: a check fails exactly when it found evidence. `pass` and `fail` are the summaries
 * (the fail summary is a function of the evidence so it can count offenders).
 */
export function outcome(found: {
  evidence: Evidence[];
  examined: number;
  pass: string;
  fail: (evidence: Evidence[]) => string;
}): CheckOutcome {
  const failed = found.evidence.length > 0;
  return {
    status: failed ? 'fail' : 'pass',
    summary: failed ? found.fail(found.evidence) : found.pass,
    examined: found.examined,
    evidence: found.evidence,
  };
}

/** How many distinct evidence ids (several findings may name one object). */
export const distinct = (evidence: Evidence[]) => new Set(evidence.map((e) => `${e.kind}:${e.id}`)).size;
