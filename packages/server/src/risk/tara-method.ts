import { readFileSync } from 'node:fs';
import cvssCalculator from 'ae-cvss-calculator';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import { scoreCvss } from './cvss.ts';

/**
 * The rating rules of an ISO/SAE 21434 TARA (clause 15; Annexes F, G, H): impact ratings of damage scenarios,
 * attack feasibility by attack potential (ISO/IEC 18045 factors), by CVSS exploitability or by attack vector,
 * and the risk value from the impact × feasibility matrix. The tables are data (tara-method.json, from the
 * project's standards catalog); the risk matrix is Annex H's informative example.
 */

const level = z.string().min(1);
const methodSchema = z.object({
  source: z.string(),
  impactCategories: z.record(z.string(), z.string()),
  impactLevels: z.array(level).length(4),
  feasibilityLevels: z.array(level).length(4),
  attackPotential: z.object({
    factors: z.record(z.string(), z.record(z.string(), z.number().int().min(0))),
    bands: z.array(
      z.object({ from: z.number(), to: z.number().nullable(), category: z.string(), feasibility: level }),
    ),
  }),
  cvssExploitability: z.array(z.object({ from: z.number(), to: z.number(), feasibility: level })),
  attackVector: z.record(z.string(), level),
  riskMatrix: z.record(z.string(), z.array(z.number().int().min(1).max(5)).length(4)),
  treatments: z.array(z.string()),
});
const method = methodSchema.parse(
  JSON.parse(readFileSync(new URL('./tara-method.json', import.meta.url), 'utf8')) as unknown,
);

export type ImpactCategory = 'safety' | 'financial' | 'operational' | 'privacy';
export type ImpactLevel = 'severe' | 'major' | 'moderate' | 'negligible';
export type Feasibility = 'high' | 'medium' | 'low' | 'very low';
export type Treatment = 'avoid' | 'reduce' | 'share' | 'retain';
export type AttackPotentialFactor =
  | 'elapsed_time'
  | 'specialist_expertise'
  | 'knowledge_of_item_or_component'
  | 'window_of_opportunity'
  | 'equipment';

export const impactCategories = Object.keys(method.impactCategories) as ImpactCategory[];
export const impactLevels = method.impactLevels as ImpactLevel[];
export const feasibilityLevels = method.feasibilityLevels as Feasibility[];
export const treatments = method.treatments as Treatment[];
export const attackPotentialFactors = Object.fromEntries(
  Object.entries(method.attackPotential.factors).map(([factor, values]) => [factor, Object.keys(values)]),
) as Record<AttackPotentialFactor, string[]>;

const invalid = (message: string) => new BulwarkError('validation_failed', message);

/**
 * A damage scenario's impact: the highest of its ratings (Annex F). Every rating must be a known category and
 * level; at least one category must be rated.
 */
export function impactOf(ratings: Partial<Record<string, string>>): ImpactLevel {
  const given = Object.entries(ratings).filter(([, v]) => v !== undefined) as [string, string][];
  if (given.length === 0)
    throw invalid(`rate at least one of ${impactCategories.join(', ')} (${impactLevels.join(', ')})`);
  let worst = impactLevels.length;
  for (const [category, rating] of given) {
    if (!impactCategories.includes(category as ImpactCategory))
      throw invalid(`${category}: not an impact category (${impactCategories.join(', ')})`);
    const index = impactLevels.indexOf(rating as ImpactLevel);
    if (index < 0) throw invalid(`${category}: "${rating}" is not one of ${impactLevels.join(', ')}`);
    worst = Math.min(worst, index);
  }
  return impactLevels[worst] as ImpactLevel;
}

export interface AttackPotentialRating {
  points: number;
  /** ISO/IEC 18045's name for the attack potential the points reach (Basic … Beyond High). */
  category: string;
  feasibility: Feasibility;
}

/** Attack feasibility by attack potential (Annex G.2): the five factors' points summed and banded. */
export function feasibilityFromAttackPotential(
  factors: Partial<Record<string, string>>,
): AttackPotentialRating {
  const table = method.attackPotential.factors;
  let points = 0;
  for (const factor of Object.keys(table)) {
    const value = Object.hasOwn(factors, factor) ? factors[factor] : undefined;
    const values = table[factor] ?? {};
    if (value === undefined)
      throw invalid(`attack potential: ${factor} missing (${Object.keys(values).join(', ')})`);
    const p = Object.hasOwn(values, value) ? values[value] : undefined;
    if (p === undefined)
      throw invalid(`attack potential: ${factor} "${value}" is not one of ${Object.keys(values).join(', ')}`);
    points += p;
  }
  for (const factor of Object.keys(factors))
    if (!Object.hasOwn(table, factor))
      throw invalid(`attack potential: ${factor} is not a factor (${Object.keys(table).join(', ')})`);
  const band = method.attackPotential.bands.find(
    (b) => points >= b.from && (b.to === null || points <= b.to),
  );
  if (!band) throw invalid(`attack potential: ${points} points fall in no band`);
  return { points, category: band.category, feasibility: band.feasibility as Feasibility };
}

interface WeightedValue {
  shortName: string;
  value?: unknown;
  changedValue?: unknown;
}
type Vector = { getComponents(): Map<{ shortName: string }, WeightedValue> };
const { Cvss3P0, Cvss3P1 } = cvssCalculator as unknown as Record<
  'Cvss3P0' | 'Cvss3P1',
  new (v: string) => Vector
>;

/**
 * Attack feasibility by CVSS 3.x exploitability (Annex G.3): 8.22 × AV × AC × PR × UI with the calculator's own
 * weights (PR as the scope says), banded. A 4.0 vector has no such sub-score: refused.
 */
export function feasibilityFromCvss(vector: string): { exploitability: number; feasibility: Feasibility } {
  const scored = scoreCvss(vector);
  if (scored.version === '4.0')
    throw invalid(
      'feasibility by CVSS exploitability needs a CVSS 3.x vector (4.0 has no exploitability sub-score)',
    );
  // Exploitability is rated from the base metrics: a modified one (MAV, …) would be silently ignored.
  const modified = scored.vector.split('/').filter((part) => /^M[A-Z]+:/.test(part));
  if (modified.length > 0)
    throw invalid(
      `rate the path with base metrics only: ${modified.join(', ')} would not change its exploitability`,
    );
  const parsed = new (scored.version === '3.0' ? Cvss3P0 : Cvss3P1)(scored.vector);
  const weights = new Map([...parsed.getComponents()].map(([c, v]) => [c.shortName, v]));
  const changed = weights.get('S')?.value === true;
  const weight = (name: string) => {
    const v = weights.get(name);
    const w = name === 'PR' && changed ? v?.changedValue : v?.value;
    if (typeof w !== 'number') throw new Error(`the calculator gave no weight for ${name}`);
    return w;
  };
  const exploitability = 8.22 * weight('AV') * weight('AC') * weight('PR') * weight('UI');
  const rounded = Math.round(exploitability * 100) / 100;
  // Bands by their lower bounds, highest first (the published bands are two-decimal ranges).
  const bands = [...method.cvssExploitability].sort((a, b) => b.from - a.from);
  const band = bands.find((b) => rounded >= b.from) ?? bands.at(-1);
  return { exploitability: rounded, feasibility: (band?.feasibility ?? 'very low') as Feasibility };
}

/** Attack feasibility by attack vector (Annex G.4): the coarse method of the concept phase. */
export function feasibilityFromAttackVector(vector: string): Feasibility {
  const names: Record<string, string> = { network: 'N', adjacent: 'A', local: 'L', physical: 'P' };
  const key = names[vector.toLowerCase()] ?? vector.toUpperCase();
  const feasibility = method.attackVector[key];
  if (!feasibility)
    throw invalid(`attack vector "${vector}" is not one of network, adjacent, local, physical`);
  return feasibility as Feasibility;
}

/** The risk value (1-5) of an impact and a feasibility (the matrix, Annex H). */
export function riskValue(impact: ImpactLevel, feasibility: Feasibility): number {
  const row = method.riskMatrix[impact];
  const column = feasibilityLevels.indexOf(feasibility);
  const value = row?.[column];
  if (value === undefined) throw invalid(`no risk value for impact ${impact} and feasibility ${feasibility}`);
  return value;
}
