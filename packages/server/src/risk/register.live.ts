import type { z } from 'zod';
import type { api } from '@bulwark/protocol';
import { scoreCvss } from './cvss.ts';
import {
  feasibilityFromAttackVector,
  feasibilityFromCvss,
  feasibilityLevels,
  riskValue,
  type Feasibility,
  type ImpactLevel,
} from './tara-method.ts';
import type { Requirements } from './assets.ts';

/**
 * How live facts move a risk (pure): the assessed feasibility of a risk stands unless something in the running
 * fleet makes the attack more feasible now. Each fact is a factor with the feasibility it implies; the live
 * feasibility is the highest of the assessed one and the factors', and the live risk value is the Annex H
 * matrix of the assessed impact and that feasibility. Rules (docs/risk.md):
 * - a critical or known-exploited (CISA KEV) vulnerability on firmware that devices in scope run: the
 *   feasibility of its CVSS exploitability (3.x: Annex G bands; 4.0: its attack vector), known-exploited: high;
 * - a compliance check implementing the treatment fails: one level above the assessed feasibility;
 * - an open alert (medium or worse) on a device in scope: one level above the assessed feasibility;
 * - a zone below its target security level (IEC 62443-3-2): the gap's feasibility (1: medium, 2+: high).
 */

export type RiskFactor = z.infer<typeof api.riskRegister.riskFactor>;

export interface ExposedAdvisory {
  advisory: string;
  severity: string;
  score: number | null;
  vector: string | null;
  knownExploited: boolean;
  epss: number | null;
  release: string;
}

export interface LiveFacts {
  /** The devices an asset id covers now. */
  scope(assetId: string): string[];
  /** The zone of a device (for environmental CVSS scores). */
  zoneOf(deviceId: string): string | null;
  /** Requirements per asset id (zones' for environmental scores). */
  requirements(assetId: string): Requirements;
  /** Advisories affecting the release each device runs. */
  advisoriesOf(deviceId: string): readonly ExposedAdvisory[];
  /** Check statuses of the latest compliance run (null: never run). */
  checkStatuses: Readonly<Record<string, string>> | null;
  /** Open or acknowledged alerts about a device, medium or worse. */
  alertsOf(deviceId: string): readonly { id: string; severity: string; title: string }[];
  /** Zones below their target level. */
  zoneGap(zone: string): { target: number; achieved: number; gap: number; blocking: string[] } | undefined;
}

export interface RiskInputs {
  source:
    { kind: 'tara'; tara: string; threat: string } | { kind: 'zone'; zone: string } | { kind: 'manual' };
  assets: readonly string[];
  checks: readonly string[];
  impact: ImpactLevel;
  baseFeasibility: Feasibility;
}

export interface LiveValue {
  feasibility: Feasibility;
  risk: number;
  factors: RiskFactor[];
}

const rank = (f: Feasibility) => feasibilityLevels.indexOf(f);
const higher = (a: Feasibility, b: Feasibility) => (rank(b) > rank(a) ? b : a);
const oneAbove = (f: Feasibility): Feasibility =>
  feasibilityLevels[Math.min(rank(f) + 1, feasibilityLevels.length - 1)] ?? f;

const AV_NAMES: Record<string, string> = { N: 'network', A: 'adjacent', L: 'local', P: 'physical' };

/** The feasibility an advisory's vector implies (known-exploited: high). */
export function advisoryFeasibility(
  a: Pick<ExposedAdvisory, 'vector' | 'knownExploited' | 'severity'>,
): Feasibility {
  if (a.knownExploited) return 'high';
  if (a.vector) {
    try {
      if (a.vector.startsWith('CVSS:4.0/')) {
        const av = /\/AV:([NALP])/.exec(a.vector)?.[1];
        if (av) return feasibilityFromAttackVector(AV_NAMES[av] ?? '');
      } else {
        // Exploitability is rated from the base metrics: drop temporal and environmental ones.
        const base = a.vector
          .split('/')
          .filter((p, i) => i === 0 || /^(AV|AC|PR|UI|S|C|I|A):/.test(p))
          .join('/');
        return feasibilityFromCvss(base).feasibility;
      }
    } catch {
      // An unscorable vector rates by severity below.
    }
  }
  return a.severity === 'critical' ? 'high' : 'medium';
}

const LETTER = { low: 'L', medium: 'M', high: 'H' } as const;

/**
 * The advisory's CVSS environmental score with a zone's security requirements (CR, IR, AR from the zone
 * asset's confidentiality, integrity and availability), or null when the vector cannot take them.
 */
export function environmentalScore(vector: string, req: Requirements): number | null {
  const parts = vector.split('/').filter((p) => !/^(CR|IR|AR):/.test(p));
  const is4 = vector.startsWith('CVSS:4.0/');
  // Requirements come before the modified metrics (3.x, 4.0) and the supplemental ones (4.0).
  const after = is4 ? /^(M[A-Z]+|S|AU|R|V|RE|U):/ : /^M[A-Z]+:/;
  let at = parts.findIndex((p, i) => i > 0 && after.test(p));
  if (at < 0) at = parts.length;
  const added = [
    `CR:${LETTER[req.confidentiality]}`,
    `IR:${LETTER[req.integrity]}`,
    `AR:${LETTER[req.availability]}`,
  ];
  try {
    return scoreCvss([...parts.slice(0, at), ...added, ...parts.slice(at)].join('/')).environmental;
  } catch {
    return null;
  }
}

function vulnerabilityFactors(inputs: RiskInputs, facts: LiveFacts, devices: string[]): RiskFactor[] {
  const byAdvisory = new Map<
    string,
    { a: ExposedAdvisory; devices: Set<string>; releases: Set<string>; zones: Set<string> }
  >();
  for (const id of devices)
    for (const a of facts.advisoriesOf(id)) {
      if (a.severity !== 'critical' && !a.knownExploited) continue;
      const entry = byAdvisory.get(a.advisory) ?? {
        a,
        devices: new Set(),
        releases: new Set(),
        zones: new Set(),
      };
      entry.devices.add(id);
      entry.releases.add(a.release);
      const zone = facts.zoneOf(id);
      if (zone) entry.zones.add(zone);
      byAdvisory.set(a.advisory, entry);
    }
  return [...byAdvisory.values()].map(({ a, devices: ids, releases, zones }) => {
    const env = a.vector
      ? [...zones]
          .sort()
          .map((z) => ({ z, s: environmentalScore(a.vector ?? '', facts.requirements(`zone:${z}`)) }))
          .filter((x) => x.s !== null)
          .map((x) => `${x.s?.toFixed(1)} in zone ${x.z}`)
      : [];
    const parts = [
      `${a.severity}${a.score === null ? '' : ` ${a.score.toFixed(1)}`}${env.length ? ` (environmental ${env.join(', ')})` : ''}`,
      `on ${[...releases].sort().join(', ')}: ${ids.size} device${ids.size === 1 ? '' : 's'}`,
      ...(a.knownExploited ? ['known exploited (CISA KEV)'] : []),
      ...(a.epss === null ? [] : [`EPSS ${a.epss.toFixed(3)}`]),
    ];
    return {
      kind: a.knownExploited ? ('known-exploited' as const) : ('vulnerability' as const),
      ref: a.advisory,
      detail: parts.join('; '),
      feasibility: advisoryFeasibility(a),
    };
  });
}

function checkFactors(inputs: RiskInputs, facts: LiveFacts): RiskFactor[] {
  const statuses = facts.checkStatuses;
  if (!statuses) return [];
  return inputs.checks
    .filter((c) => statuses[c] === 'fail' || statuses[c] === 'error')
    .map((c) => ({
      kind: 'failing-check' as const,
      ref: c,
      detail: `the treatment's check ${c} ${statuses[c] === 'fail' ? 'fails' : 'could not run'}`,
      feasibility: oneAbove(inputs.baseFeasibility),
    }));
}

function alertFactors(inputs: RiskInputs, facts: LiveFacts, devices: string[]): RiskFactor[] {
  const seen = new Map<string, { title: string; devices: Set<string> }>();
  for (const id of devices)
    for (const alert of facts.alertsOf(id)) {
      const entry = seen.get(alert.id) ?? { title: alert.title, devices: new Set<string>() };
      entry.devices.add(id);
      seen.set(alert.id, entry);
    }
  return [...seen.entries()].map(([id, e]) => ({
    kind: 'open-alert' as const,
    ref: id,
    detail: `open alert on ${[...e.devices].sort().join(', ')}: ${e.title}`,
    feasibility: oneAbove(inputs.baseFeasibility),
  }));
}

function zoneFactors(inputs: RiskInputs, facts: LiveFacts): RiskFactor[] {
  if (inputs.source.kind !== 'zone') return [];
  const gap = facts.zoneGap(inputs.source.zone);
  if (!gap || gap.gap <= 0) return [];
  return [
    {
      kind: 'zone-gap',
      ref: `zone:${inputs.source.zone}`,
      detail: `target SL ${gap.target}, achieved SL ${gap.achieved}${gap.blocking.length ? `: blocked by ${gap.blocking.join(', ')}` : ''}`,
      feasibility: gap.gap >= 2 ? 'high' : 'medium',
    },
  ];
}

/** The live feasibility and risk value of one risk, with the factors that moved it. */
export function liveValue(inputs: RiskInputs, facts: LiveFacts): LiveValue {
  const devices = [...new Set(inputs.assets.flatMap((a) => facts.scope(a)))].sort();
  const factors = [
    ...vulnerabilityFactors(inputs, facts, devices),
    ...checkFactors(inputs, facts),
    ...alertFactors(inputs, facts, devices),
    ...zoneFactors(inputs, facts),
  ].sort((a, b) => rank(b.feasibility) - rank(a.feasibility) || a.ref.localeCompare(b.ref));
  const feasibility = factors.reduce((f, x) => higher(f, x.feasibility), inputs.baseFeasibility);
  return { feasibility, risk: riskValue(inputs.impact, feasibility), factors };
}

/** IEC 62443-3-2 ZCR 5: a zone's gap as a risk — impact from its target level, feasibility from the gap. */
export function zoneRiskImpact(target: number): ImpactLevel {
  if (target >= 3) return 'severe';
  if (target === 2) return 'major';
  return 'moderate';
}
