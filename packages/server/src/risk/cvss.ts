import cvssCalculator from 'ae-cvss-calculator';
import { BulwarkError } from '@bulwark/protocol';
import { ratingOf } from './osv.ts';
import type { AdvisorySeverity } from './severity.ts';

/**
 * CVSS 3.0, 3.1 and 4.0 vectors, checked strictly and scored by ae-cvss-calculator (FIRST's formulas and, for
 * 4.0, FIRST's macro-vector tables, in a maintained library): the metric names and values a version allows
 * come from the library's registered components, so nothing here restates the specifications' tables.
 */

export type CvssVersion = '3.0' | '3.1' | '4.0';

export interface CvssScore {
  /** The vector as given, metrics in the specification's order, values `X` (not defined) left out. */
  vector: string;
  version: CvssVersion;
  /** Base score (3.x), CVSS-B (4.0: base metrics only). */
  base: number;
  /** 3.x: the temporal score, when a temporal metric is defined; 4.0: CVSS-BT, when a threat metric is. */
  temporal: number | null;
  /** 3.x: the environmental score; 4.0: CVSS-BE or CVSS-BTE; when an environmental metric is defined. */
  environmental: number | null;
  /** The most specific score the vector defines (what a priority is made of). */
  score: number;
  severity: AdvisorySeverity;
  /** 4.0's nomenclature of `score` (CVSS-B, -BT, -BE, -BTE); 3.x: base, temporal or environmental. */
  kind: string;
}

/** What the library's vector classes offer that this module uses (its bundle types them loosely). */
interface Component {
  shortName: string;
  values: { shortName: string }[];
}
interface Vector {
  getRegisteredComponents(): Map<{ name: string }, Component[]>;
  calculateScores(): Record<string, unknown>;
  toString(): string;
}
type VectorClass = new (vector?: string) => Vector;

const library = cvssCalculator as unknown as Record<'Cvss3P0' | 'Cvss3P1' | 'Cvss4P0', VectorClass>;
const classes: Record<CvssVersion, VectorClass> = {
  '3.0': library.Cvss3P0,
  '3.1': library.Cvss3P1,
  '4.0': library.Cvss4P0,
};

/** A version's metrics by category, in the specification's order, with the values each allows. */
interface Grammar {
  order: string[];
  values: Map<string, Set<string>>;
  category: Map<string, string>;
}

/** The specifications' order of metric groups in a vector string (4.0: base, threat, environmental, supplemental). */
const groupOrder = [
  'base',
  'temporal',
  'threat',
  'environmental',
  'environmental-security-requirement',
  'environmental-base',
  'supplemental',
];
const rankOf = (name: string) => groupOrder.indexOf(name.toLowerCase());

const grammars = new Map<CvssVersion, Grammar>();
function grammarOf(version: CvssVersion): Grammar {
  let grammar = grammars.get(version);
  if (grammar) return grammar;
  grammar = { order: [], values: new Map(), category: new Map() };
  const categories = [...new classes[version]().getRegisteredComponents()].sort(
    ([a], [b]) => rankOf(a.name) - rankOf(b.name),
  );
  for (const [category, components] of categories) {
    for (const component of components) {
      grammar.order.push(component.shortName);
      grammar.values.set(component.shortName, new Set(component.values.map((v) => v.shortName)));
      grammar.category.set(component.shortName, category.name.toLowerCase());
    }
  }
  grammars.set(version, grammar);
  return grammar;
}

const invalid = (vector: string, problem: string) =>
  new BulwarkError('validation_failed', `CVSS vector "${vector}": ${problem}`);

const PREFIX = /^CVSS:(3\.0|3\.1|4\.0)\//;

/** Splits and checks a vector: known version, known metrics once each, allowed values, every base metric. */
function parse(vector: string): { version: CvssVersion; metrics: Map<string, string> } {
  const prefix = PREFIX.exec(vector);
  if (!prefix) throw invalid(vector, 'must start with CVSS:3.0/, CVSS:3.1/ or CVSS:4.0/');
  const version = prefix[1] as CvssVersion;
  const grammar = grammarOf(version);
  const metrics = new Map<string, string>();
  let last = -1;
  for (const part of vector.slice(prefix[0].length).split('/')) {
    const [name, value, extra] = part.split(':');
    if (!name || value === undefined || value === '' || extra !== undefined)
      throw invalid(vector, `"${part}" is not METRIC:VALUE`);
    const allowed = grammar.values.get(name);
    if (!allowed) throw invalid(vector, `${name} is not a CVSS ${version} metric`);
    if (!allowed.has(value))
      throw invalid(
        vector,
        `${name}:${value}: ${name} takes ${[...allowed].filter((v) => v !== 'X').join(', ')}`,
      );
    if (metrics.has(name)) throw invalid(vector, `${name} is given twice`);
    // 4.0 (specification §7): metrics in the order of its Table 23, any other order is invalid; 3.x: any order.
    const position = grammar.order.indexOf(name);
    if (version === '4.0' && position < last)
      throw invalid(
        vector,
        `${name} is out of order (CVSS 4.0 metrics go in the order ${grammar.order.join('/')})`,
      );
    last = position;
    // 4.0: Safety is a consequence an assessor adds (MSI, MSA), never a base value (the library's lists allow it).
    if (version === '4.0' && value === 'S' && ['SC', 'SI', 'SA'].includes(name))
      throw invalid(vector, `${name}:S: S (safety) is a value of MSI and MSA only`);
    metrics.set(name, value);
  }
  const missing = grammar.order.filter(
    (name) => grammar.category.get(name) === 'base' && (metrics.get(name) ?? 'X') === 'X',
  );
  if (missing.length > 0)
    throw invalid(vector, `base metric${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing`);
  return { version, metrics };
}

const defined = (metrics: Map<string, string>, grammar: Grammar, category: (c: string) => boolean) =>
  [...metrics].some(([name, value]) => value !== 'X' && category(grammar.category.get(name) ?? ''));

const numberOr = (value: unknown): number | null =>
  typeof value === 'number' && Number.isFinite(value) ? value : null;

/**
 * Scores one vector; a malformed or incomplete vector, an unknown metric or value is a `validation_failed`
 * naming it.
 *
 * @example
 * scoreCvss('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H').score // 9.8
 */
export function scoreCvss(input: string): CvssScore {
  const given = input.trim();
  const { version, metrics } = parse(given);
  const grammar = grammarOf(version);
  const vector = `CVSS:${version}/${grammar.order
    .filter((name) => (metrics.get(name) ?? 'X') !== 'X')
    .map((name) => `${name}:${metrics.get(name)}`)
    .join('/')}`;
  const scores = new classes[version](vector).calculateScores();
  const threat = defined(metrics, grammar, (c) => c === 'temporal' || c === 'threat');
  const environmental = defined(metrics, grammar, (c) => c.startsWith('environmental'));
  if (version === '4.0') {
    const base = numberOr(scores.baseMetricsOnly);
    const score = numberOr(scores.overall);
    if (base === null || score === null) throw invalid(given, 'the calculator gave no score');
    const kind = `CVSS-B${threat ? 'T' : ''}${environmental ? 'E' : ''}`;
    return {
      vector,
      version,
      base,
      temporal: threat ? numberOr(scores.threat) : null,
      environmental: environmental ? score : null,
      score,
      severity: ratingOf(score),
      kind,
    };
  }
  const base = numberOr(scores.base);
  if (base === null) throw invalid(given, 'the calculator gave no score');
  const temporal = threat ? numberOr(scores.temporal) : null;
  const env = environmental ? numberOr(scores.environmental) : null;
  const score = env ?? temporal ?? base;
  return {
    vector,
    version,
    base,
    temporal,
    environmental: env,
    score,
    severity: ratingOf(score),
    kind: env !== null ? 'environmental' : temporal !== null ? 'temporal' : 'base',
  };
}

/** Every vector scored, or a per-vector error (batches from a file: one bad line does not hide the rest). */
export function scoreCvssBatch(
  vectors: readonly string[],
): ({ ok: true; result: CvssScore } | { ok: false; vector: string; error: string })[] {
  return vectors.map((vector) => {
    try {
      return { ok: true, result: scoreCvss(vector) };
    } catch (err) {
      if (!(err instanceof BulwarkError)) throw err;
      return { ok: false, vector, error: err.message };
    }
  });
}
