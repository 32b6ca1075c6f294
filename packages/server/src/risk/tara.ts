import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';
import {
  feasibilityFromAttackPotential,
  feasibilityFromAttackVector,
  feasibilityFromCvss,
  feasibilityLevels,
  impactLevels,
  impactOf,
  riskValue,
  treatments,
  type Feasibility,
  type ImpactLevel,
} from './tara-method.ts';

/**
 * A TARA document (ISO/SAE 21434 clause 15) and its evaluation: assets with their cybersecurity properties,
 * damage scenarios with impact ratings, threat scenarios (STRIDE) on an asset's property with attack paths,
 * each path rated by one feasibility method, and the treatment. Evaluating it gives the clause's work products:
 * the impact of each damage scenario, the feasibility of each path and threat, the risk value and treatment.
 */

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'an id: 1-64 of A-Z a-z 0-9 _ . -');
const text = (max: number) => z.string().trim().min(1).max(max);
const property = z.enum(['confidentiality', 'integrity', 'availability', 'authenticity']);

const attackPath = z
  .object({
    description: text(500),
    attackPotential: z.record(z.string(), z.string()).optional(),
    cvss: z.string().max(512).optional(),
    attackVector: z.string().max(32).optional(),
  })
  .strict()
  .refine(
    (p) => [p.attackPotential, p.cvss, p.attackVector].filter((m) => m !== undefined).length === 1,
    'rate the path by exactly one of attackPotential, cvss, attackVector',
  );

export const taraDocument = z
  .object({
    item: text(200),
    description: text(2000).optional(),
    assets: z
      .array(
        z
          .object({
            id,
            name: text(200),
            owner: text(200),
            properties: z.array(property).min(1),
            /** The inventory asset it is (`firmware:pc200-fw`, `zone:plant-a`, …): live facts move its risks. */
            ref: z
              .string()
              .regex(
                /^(model|firmware|zone|conduit|data|manual):\S{1,256}$/,
                'an inventory asset id: <kind>:<name>, kind one of model, firmware, zone, conduit, data, manual',
              )
              .optional(),
          })
          .strict(),
      )
      .min(1),
    damageScenarios: z
      .array(
        z
          .object({
            id,
            title: text(500),
            assets: z.array(id).min(1),
            impact: z.record(z.string(), z.string()),
          })
          .strict(),
      )
      .min(1),
    threatScenarios: z
      .array(
        z
          .object({
            id,
            title: text(500),
            asset: id,
            property,
            stride: z.enum([
              'spoofing',
              'tampering',
              'repudiation',
              'information-disclosure',
              'denial-of-service',
              'elevation-of-privilege',
            ]),
            damage: z.array(id).min(1),
            attackPaths: z.array(attackPath).min(1),
            treatment: z
              .object({
                option: z.enum(treatments as [string, ...string[]]),
                controls: z.array(text(200)).default([]),
                checks: z.array(z.string().max(100)).default([]),
                goal: text(500).optional(),
                claim: text(500).optional(),
              })
              .strict(),
          })
          .strict(),
      )
      .min(1),
  })
  .strict();

export type TaraDocument = z.input<typeof taraDocument>;

export interface TaraPathResult {
  description: string;
  method: 'attack potential' | 'CVSS exploitability' | 'attack vector';
  /** What the method computed: the points and their category, the exploitability, or the vector. */
  detail: string;
  feasibility: Feasibility;
}

export interface TaraResult {
  item: string;
  description: string | null;
  assets: {
    id: string;
    name: string;
    owner: string;
    properties: string[];
    /** The inventory asset it is, if named. */
    ref: string | null;
    risk: number | null;
  }[];
  damageScenarios: {
    id: string;
    title: string;
    assets: string[];
    ratings: Record<string, string>;
    impact: ImpactLevel;
  }[];
  threatScenarios: {
    id: string;
    title: string;
    asset: string;
    property: string;
    stride: string;
    damage: string[];
    paths: TaraPathResult[];
    /** The most feasible path's feasibility. */
    feasibility: Feasibility;
    /** The worst impact of the damage scenarios it leads to. */
    impact: ImpactLevel;
    risk: number;
    treatment: {
      option: string;
      controls: string[];
      checks: string[];
      goal: string | null;
      claim: string | null;
    };
  }[];
  /** Threat scenarios per risk value (1-5). */
  risks: Record<'1' | '2' | '3' | '4' | '5', number>;
}

const refused = (where: string, message: string) =>
  new BulwarkError('validation_failed', `${where}: ${message}`);

/** Runs a rating function, naming the document field its error is about. */
function at<T>(where: string, rate: () => T): T {
  try {
    return rate();
  } catch (err) {
    if (err instanceof BulwarkError) throw refused(where, err.message);
    throw err;
  }
}

function ratePath(path: z.output<typeof attackPath>, where: string): TaraPathResult {
  const base = { description: path.description };
  if (path.attackPotential) {
    const r = at(`${where}.attackPotential`, () =>
      feasibilityFromAttackPotential(path.attackPotential ?? {}),
    );
    return {
      ...base,
      method: 'attack potential',
      detail: `${r.points} points (${r.category})`,
      feasibility: r.feasibility,
    };
  }
  if (path.cvss !== undefined) {
    const r = at(`${where}.cvss`, () => feasibilityFromCvss(path.cvss ?? ''));
    return {
      ...base,
      method: 'CVSS exploitability',
      detail: `exploitability ${r.exploitability.toFixed(2)}`,
      feasibility: r.feasibility,
    };
  }
  const vector = path.attackVector ?? '';
  return {
    ...base,
    method: 'attack vector',
    detail: vector,
    feasibility: at(`${where}.attackVector`, () => feasibilityFromAttackVector(vector)),
  };
}

/**
 * Validates a TARA document (shape, ids unique and referenced, every rating known) and rates it. `checkExists`
 * names the compliance checks a treatment may cite (unknown ones are refused). Errors name the field.
 */
export function evaluateTara(input: unknown, checkExists: (id: string) => boolean): TaraResult {
  const parsed = taraDocument.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw refused(issue?.path.join('.') || 'document', issue?.message ?? 'not a TARA document');
  }
  const doc = parsed.data;
  const unique = (list: { id: string }[], what: string) => {
    const seen = new Set<string>();
    list.forEach((x, i) => {
      if (seen.has(x.id)) throw refused(`${what}.${i}.id`, `${x.id} is used twice`);
      seen.add(x.id);
    });
    return seen;
  };
  const assetIds = unique(doc.assets, 'assets');
  unique(doc.threatScenarios, 'threatScenarios');
  unique(doc.damageScenarios, 'damageScenarios');
  const damage = new Map(
    doc.damageScenarios.map((d, i) => {
      d.assets.forEach((a, j) => {
        if (!assetIds.has(a)) throw refused(`damageScenarios.${i}.assets.${j}`, `${a} is not an asset`);
      });
      return [d.id, { ...d, impactLevel: at(`damageScenarios.${i}.impact`, () => impactOf(d.impact)) }];
    }),
  );
  const threats = doc.threatScenarios.map((t, i) => {
    const where = `threatScenarios.${i}`;
    const asset = doc.assets.find((a) => a.id === t.asset);
    if (!asset) throw refused(`${where}.asset`, `${t.asset} is not an asset`);
    if (!asset.properties.includes(t.property))
      throw refused(
        `${where}.property`,
        `asset ${asset.id} has no ${t.property} property (${asset.properties.join(', ')})`,
      );
    const impacts = t.damage.map((d, j) => {
      const scenario = damage.get(d);
      if (!scenario) throw refused(`${where}.damage.${j}`, `${d} is not a damage scenario`);
      return scenario.impactLevel;
    });
    t.treatment.checks.forEach((c, j) => {
      if (!checkExists(c)) throw refused(`${where}.treatment.checks.${j}`, `${c} is not a compliance check`);
    });
    const paths = t.attackPaths.map((p, j) => ratePath(p, `${where}.attackPaths.${j}`));
    const feasibility = paths.reduce<Feasibility>(
      (best, p) =>
        feasibilityLevels.indexOf(p.feasibility) > feasibilityLevels.indexOf(best) ? p.feasibility : best,
      'very low',
    );
    const impact = impacts.reduce((worst, x) => (impactRank(x) < impactRank(worst) ? x : worst));
    return {
      id: t.id,
      title: t.title,
      asset: t.asset,
      property: t.property,
      stride: t.stride,
      damage: t.damage,
      paths,
      feasibility,
      impact,
      risk: riskValue(impact, feasibility),
      treatment: {
        option: t.treatment.option,
        controls: t.treatment.controls,
        checks: t.treatment.checks,
        goal: t.treatment.goal ?? null,
        claim: t.treatment.claim ?? null,
      },
    };
  });
  const risks = { '1': 0, '2': 0, '3': 0, '4': 0, '5': 0 };
  for (const t of threats) risks[String(t.risk) as keyof typeof risks] += 1;
  return {
    item: doc.item,
    description: doc.description ?? null,
    assets: doc.assets.map((a) => {
      const own = threats.filter((t) => t.asset === a.id).map((t) => t.risk);
      return { ...a, ref: a.ref ?? null, risk: own.length ? Math.max(...own) : null };
    }),
    damageScenarios: [...damage.values()].map((d) => ({
      id: d.id,
      title: d.title,
      assets: d.assets,
      ratings: d.impact,
      impact: d.impactLevel,
    })),
    threatScenarios: threats,
    risks,
  };
}

const impactRank = (level: ImpactLevel) => impactLevels.indexOf(level);
