import { readFileSync } from 'node:fs';
import cvssCalculator from 'ae-cvss-calculator';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { PackageURL } from 'packageurl-js';
import semver from 'semver';
import { BulwarkError } from '@bulwark/protocol';
import { advisorySeverities, type AdvisorySeverity } from './severity.ts';

/** OSV advisories (https://ossf.github.io/osv-schema/) and their match against SBOM components. Pure. */

/** One event of a range: exactly one of these keys (the schema enforces it). */
export interface OsvEvent {
  introduced?: string;
  fixed?: string;
  last_affected?: string;
  limit?: string;
}
export interface OsvAffected {
  package?: { ecosystem: string; name: string; purl?: string };
  ranges?: { type: 'GIT' | 'SEMVER' | 'ECOSYSTEM'; repo?: string; events: OsvEvent[] }[];
  versions?: string[];
}
/** The fields of a schema-valid OSV record that Bulwark reads. */
interface OsvRecord {
  id: string;
  modified: string;
  withdrawn?: string;
  aliases?: string[] | null;
  summary?: string;
  details?: string;
  severity?: { type: string; score: string }[] | null;
  affected?: OsvAffected[] | null;
  database_specific?: { severity?: unknown };
}

/**
 * The OSV JSON Schema (draft 2020-12) written for Bulwark from the OSV specification (osv.schema.json), compiled
 * on first use (not at load: every CLI command loads this module, and compiling takes a quarter of a second).
 * Formats (`date-time`, `uri`) are checked by ajv-formats; ajv's strict mode stays on, so a mistake in the
 * schema fails here rather than passing records silently.
 */
let compiled: ValidateFunction<OsvRecord> | undefined;
function recordValidator(): ValidateFunction<OsvRecord> {
  if (compiled) return compiled;
  const schema = JSON.parse(readFileSync(new URL('./osv.schema.json', import.meta.url), 'utf8')) as object;
  // verbose: errors carry the schema object that failed, where `x-messages` sits.
  const ajv = new Ajv2020({ allErrors: false, strictRequired: false, verbose: true });
  ajv.addKeyword({ keyword: 'x-messages', schemaType: 'object' });
  addFormats.default(ajv, ['date-time', 'uri']);
  compiled = ajv.compile<OsvRecord>(schema);
  return compiled;
}

/**
 * Names the field at fault: the deepest error, as ajv lists a combinator's failure after its branches', except
 * for `anyOf`, whose branches' errors are about alternatives that were not meant. Where the schema gives plain
 * words for a rule (its `x-messages` annotation), they replace ajv's (a long pattern, "must NOT be valid").
 */
function describeErrors(errors: ErrorObject[] | null | undefined): string {
  const list = errors ?? [];
  const best =
    list.find((e) => e.keyword === 'anyOf') ??
    [...list].sort((a, b) => b.instancePath.split('/').length - a.instancePath.split('/').length)[0];
  if (!best) return '/: does not match the OSV schema';
  let where = best.instancePath;
  let detail = best.message ?? `fails ${best.keyword}`;
  const params = best.params as Record<string, unknown>;
  const words = (best.parentSchema as { 'x-messages'?: Record<string, string> } | undefined)?.[
    'x-messages'
  ]?.[best.keyword];
  if (words !== undefined) {
    detail = words;
  } else if (best.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
    where = `${where}/${params.additionalProperty}`;
    detail = 'is not a field of the OSV schema here';
  } else if (best.keyword === 'required' && typeof params.missingProperty === 'string') {
    where = `${where}/${params.missingProperty}`;
    detail = 'is required';
  } else if (best.keyword === 'enum' && Array.isArray(params.allowedValues)) {
    detail = `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${where || '/'}: ${detail}`;
}

export interface Advisory {
  id: string;
  modified: number;
  withdrawn: number | null;
  summary: string;
  aliases: string[];
  severity: AdvisorySeverity;
  /** CVSS base score, 0-10, from the advisory's vector. */
  score: number | null;
  cvssVector: string | null;
  affected: OsvAffected[];
}

/** The qualitative rating of a CVSS v3/v4 base score (FIRST CVSS v3.1 specification §5). */
export function ratingOf(score: number): AdvisorySeverity {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  if (score > 0) return 'low';
  return 'none';
}

/** The calculator's `fromVector` is typed `any`; this is the part we use. */
interface ParsedCvss {
  calculateScores(): { base?: unknown };
}
// A CommonJS bundle: its exports arrive as the default import.
const fromVector = (cvssCalculator as unknown as { fromVector: (vector: string) => ParsedCvss | undefined })
  .fromVector;

/** The base score of a CVSS vector (v2, v3.0, v3.1, v4.0), or undefined when it does not parse. */
export function cvssScore(vector: string): number | undefined {
  try {
    const score = fromVector(vector)?.calculateScores().base;
    return typeof score === 'number' && Number.isFinite(score) ? score : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Validates one OSV record against the OSV JSON Schema and shapes it; severity comes from its CVSS vector
 * (newest CVSS version first). `at` is the record's JSON Pointer within what was imported, for messages.
 */
export function parseAdvisory(input: unknown, at = ''): Advisory {
  const validateRecord = recordValidator();
  if (!validateRecord(input)) {
    const id =
      typeof input === 'object' && input !== null && typeof (input as { id?: unknown }).id === 'string'
        ? ` ${(input as { id: string }).id}`
        : '';
    const problem = describeErrors(validateRecord.errors);
    throw new BulwarkError(
      'validation_failed',
      `not an OSV advisory${id}: ${at}${problem.startsWith('/:') && at ? problem.slice(1) : problem}`,
    );
  }
  const a = input;
  const modified = Date.parse(a.modified);
  const order = ['CVSS_V4', 'CVSS_V3', 'CVSS_V2'];
  let score: number | null = null;
  let vector: string | null = null;
  for (const type of order) {
    const entry = a.severity?.find((s) => s.type === type);
    const value = entry && cvssScore(entry.score);
    if (entry && value !== undefined) {
      score = value;
      vector = entry.score;
      break;
    }
  }
  let severity: AdvisorySeverity = score === null ? 'unknown' : ratingOf(score);
  if (score === null) {
    // No usable vector: the database's own rating (GitHub's MODERATE is CVSS's medium).
    const rating = a.database_specific?.severity;
    const given = typeof rating === 'string' ? rating.toLowerCase().replace('moderate', 'medium') : undefined;
    const known = advisorySeverities.find((s) => s === given);
    if (known) severity = known;
  }
  return {
    id: a.id,
    modified,
    withdrawn: a.withdrawn === undefined ? null : Date.parse(a.withdrawn),
    summary: (a.summary ?? a.details ?? '').slice(0, 1000),
    aliases: a.aliases ?? [],
    severity,
    score,
    cvssVector: vector,
    affected: a.affected ?? [],
  };
}

/**
 * Validates every record of an import (one advisory, an array, or an OSV API answer `{ vulns: [...] }`) before
 * anything is stored: one invalid record refuses the whole batch, naming its JSON Pointer.
 */
export function parseAdvisories(json: unknown): Advisory[] {
  if (Array.isArray(json)) return json.map((item, i) => parseAdvisory(item, `/${i}`));
  const vulns = (json as { vulns?: unknown } | null)?.vulns;
  if (Array.isArray(vulns)) return vulns.map((item, i) => parseAdvisory(item, `/vulns/${i}`));
  return [parseAdvisory(json)];
}

/** OSV ecosystem → package URL type (https://github.com/package-url/purl-spec, OSV schema appendix). */
const purlTypes: Record<string, { type: string; namespace?: string }> = {
  npm: { type: 'npm' },
  PyPI: { type: 'pypi' },
  Maven: { type: 'maven' },
  Go: { type: 'golang' },
  'crates.io': { type: 'cargo' },
  NuGet: { type: 'nuget' },
  RubyGems: { type: 'gem' },
  Packagist: { type: 'composer' },
  Hex: { type: 'hex' },
  Pub: { type: 'pub' },
  Debian: { type: 'deb', namespace: 'debian' },
  Ubuntu: { type: 'deb', namespace: 'ubuntu' },
  Alpine: { type: 'apk', namespace: 'alpine' },
  'GitHub Actions': { type: 'github' },
  SwiftURL: { type: 'swift' },
};

/** A comparable package identity: type, namespace and name, without version or qualifiers. */
export function packageKey(type: string, namespace: string | undefined | null, name: string): string {
  let n = name;
  if (type === 'pypi') n = n.toLowerCase().replace(/[-_.]+/g, '-');
  return `${type}/${(namespace ?? '').toLowerCase()}/${n.toLowerCase()}`;
}

export function purlKey(purl: string): { key: string; version: string | undefined } | undefined {
  try {
    const p = PackageURL.fromString(purl);
    return { key: packageKey(p.type, p.namespace, p.name), version: p.version ?? undefined };
  } catch {
    return undefined;
  }
}

/** The package identity an OSV `affected` entry names (its purl, else from ecosystem and name). */
export function affectedKey(a: OsvAffected): string | undefined {
  if (!a.package) return undefined;
  if (a.package.purl) return purlKey(a.package.purl)?.key;
  const ecosystem = a.package.ecosystem.split(':')[0] ?? '';
  const mapped = purlTypes[ecosystem];
  if (!mapped) return undefined;
  const name = a.package.name;
  if (mapped.type === 'maven') {
    const [group, artifact] = name.split(':');
    return artifact ? packageKey('maven', group, artifact) : undefined;
  }
  if (mapped.namespace) return packageKey(mapped.type, mapped.namespace, name);
  const slash = name.lastIndexOf('/');
  // npm scopes, Go module paths, Composer vendors: everything before the last "/" is the namespace.
  return slash > 0
    ? packageKey(mapped.type, name.slice(0, slash), name.slice(slash + 1))
    : packageKey(mapped.type, null, name);
}

/**
 * Orders two versions: Semantic Versioning when both parse, otherwise a natural order of their numeric and
 * alphabetic parts (close to most ecosystems' rules; not Debian's epoch/tilde rules).
 */
export function compareVersions(a: string, b: string): number {
  const sa = semver.valid(a);
  const sb = semver.valid(b);
  if (sa && sb) return semver.compare(sa, sb);
  const parts = (v: string) => v.replace(/^v/i, '').match(/\d+|[A-Za-z]+/g) ?? [];
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return y !== undefined && /^\d/.test(y) ? -1 : 1;
    if (y === undefined) return /^\d/.test(x) ? 1 : -1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return Math.sign(d);
    } else if (nx !== ny) {
      return nx ? 1 : -1; // 1.0.1 > 1.0.rc
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

/** OSV range evaluation (schema §"Evaluation"): events in version order toggle "affected". */
function inRange(version: string, events: OsvEvent[]): boolean {
  const point = (e: OsvEvent) => e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '0';
  const sorted = [...events].sort((x, y) => {
    const px = point(x);
    const py = point(y);
    if (px === '0') return -1;
    if (py === '0') return 1;
    return compareVersions(px, py);
  });
  let affected = false;
  for (const e of sorted) {
    if (e.introduced !== undefined) {
      if (e.introduced === '0' || compareVersions(version, e.introduced) >= 0) affected = true;
    } else if (e.fixed !== undefined) {
      if (compareVersions(version, e.fixed) >= 0) affected = false;
    } else if (e.last_affected !== undefined) {
      if (compareVersions(version, e.last_affected) > 0) affected = false;
    }
  }
  return affected;
}

/** True when the component (package URL with a version) is affected by this OSV `affected` entry. */
export function isAffected(entry: OsvAffected, componentKey: string, version: string): boolean {
  if (affectedKey(entry) !== componentKey) return false;
  if (entry.versions?.includes(version)) return true;
  // GIT ranges name commits, which an SBOM component version is not.
  return (entry.ranges ?? []).some(
    (r) => (r.type === 'SEMVER' || r.type === 'ECOSYSTEM') && inRange(version, r.events),
  );
}
