import { BulwarkError, severities, severityRank, type Severity } from '@bulwark/protocol';

/**
 * The severity of an advisory: the platform's one scale (`@bulwark/protocol`), plus two states only an advisory
 * has: `none` (CVSS rates it 0.0) and `unknown` (no rating given). Highest first, as advisories are listed.
 */
export type AdvisorySeverity = Severity | 'none' | 'unknown';
export const advisorySeverities: readonly [AdvisorySeverity, ...AdvisorySeverity[]] = [
  ...([...severities].reverse() as [Severity, ...Severity[]]),
  'none',
  'unknown',
];

/** Orders advisory severities: unknown < none < low < … < critical. */
export function advisoryRank(severity: AdvisorySeverity): number {
  if (severity === 'unknown') return 0;
  if (severity === 'none') return 1;
  return severityRank(severity) + 2;
}

/** Parses an advisory severity as a person types it (any case); anything else names the choices. */
export function parseAdvisorySeverity(text: string, field = 'severity'): AdvisorySeverity {
  const value = text.trim().toLowerCase();
  const found = advisorySeverities.find((s) => s === value);
  if (!found)
    throw new BulwarkError(
      'validation_failed',
      `${field} "${text}" is not one of ${advisorySeverities.join(', ')}`,
    );
  return found;
}
