import cvssCalculator from 'ae-cvss-calculator';
import { PackageURL } from 'packageurl-js';
import semver from 'semver';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';

/** OSV advisories (https://ossf.github.io/osv-schema/) and their match against SBOM components. Pure. */

export const severities = ['critical', 'high', 'medium', 'low', 'none', 'unknown'] as const;
export type Severity = (typeof severities)[number];
export const severityRank: Record<Severity, number> = {
  critical: 5,
  high: 4,
  medium: 3,
  low: 2,
  none: 1,
  unknown: 0,
};

const event = z
  .object({
    introduced: z.string().optional(),
    fixed: z.string().optional(),
    last_affected: z.string().optional(),
    limit: z.string().optional(),
  })
  .loose();

const affectedSchema = z
  .object({
    package: z
      .object({ ecosystem: z.string(), name: z.string(), purl: z.string().optional() })
      .loose()
      .optional(),
    ranges: z.array(z.object({ type: z.string(), events: z.array(event) }).loose()).optional(),
    versions: z.array(z.string()).optional(),
  })
  .loose();
export type OsvAffected = z.infer<typeof affectedSchema>;

const advisorySchema = z
  .object({
    id: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[A-Za-z0-9._:-]+$/, 'id must be an OSV id such as GHSA-xxxx-xxxx-xxxx'),
    modified: z.string(),
    published: z.string().optional(),
    withdrawn: z.string().optional(),
    aliases: z.array(z.string()).optional(),
    summary: z.string().optional(),
    details: z.string().optional(),
    severity: z.array(z.object({ type: z.string(), score: z.string() }).loose()).optional(),
    affected: z.array(affectedSchema).optional(),
    database_specific: z.object({ severity: z.string().optional() }).loose().optional(),
  })
  .loose();

export interface Advisory {
  id: string;
  modified: number;
  withdrawn: number | null;
  summary: string;
  aliases: string[];
  severity: Severity;
  /** CVSS base score, 0-10, from the advisory's vector. */
  score: number | null;
  cvssVector: string | null;
  affected: OsvAffected[];
}

/** The qualitative rating of a CVSS v3/v4 base score (FIRST CVSS v3.1 specification §5). */
export function ratingOf(score: number): Severity {
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

/** Parses one OSV advisory; severity comes from its CVSS vector (newest CVSS version first). */
export function parseAdvisory(input: unknown): Advisory {
  const result = advisorySchema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new BulwarkError(
      'validation_failed',
      `not an OSV advisory: ${issue?.path.join('.') || '(document)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const a = result.data;
  const modified = Date.parse(a.modified);
  if (!Number.isFinite(modified))
    throw new BulwarkError('validation_failed', `advisory ${a.id}: modified must be an RFC 3339 time`);
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
  let severity: Severity = score === null ? 'unknown' : ratingOf(score);
  if (score === null) {
    // No usable vector: the database's own rating (GitHub's MODERATE is CVSS's medium).
    const given = a.database_specific?.severity?.toLowerCase().replace('moderate', 'medium');
    if (given && (severities as readonly string[]).includes(given)) severity = given as Severity;
  }
  const withdrawn = a.withdrawn === undefined ? null : Date.parse(a.withdrawn);
  return {
    id: a.id,
    modified,
    withdrawn: withdrawn !== null && Number.isFinite(withdrawn) ? withdrawn : null,
    summary: (a.summary ?? a.details ?? '').slice(0, 1000),
    aliases: a.aliases ?? [],
    severity,
    score,
    cvssVector: vector,
    affected: a.affected ?? [],
  };
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
function inRange(version: string, events: z.infer<typeof event>[]): boolean {
  const point = (e: z.infer<typeof event>) => e.introduced ?? e.fixed ?? e.last_affected ?? e.limit ?? '0';
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

/** Reads advisories from parsed JSON: one advisory, an array, or an OSV API answer `{ vulns: [...] }`. */
export function advisoriesIn(json: unknown): unknown[] {
  if (Array.isArray(json)) return json;
  const vulns = (json as { vulns?: unknown } | null)?.vulns;
  if (Array.isArray(vulns)) return vulns;
  return [json];
}
