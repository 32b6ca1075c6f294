import { z } from 'zod';
import { severities } from '../common.ts';
import { contract } from './contract.ts';

/**
 * Vulnerabilities of the firmware a fleet runs (risk's operations, under `/api/v1/firmware` where operators
 * look for them): imported OSV advisories, a release's matches and the fleet's exposure.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const { devices } = api.risk.exposure.response[200].parse(await res.json());
 * ```
 */

/**
 * An advisory's severity: the one scale, highest first, plus `none` (CVSS rates it 0.0) and `unknown` (no
 * rating given).
 */
export const advisorySeverities = ['critical', 'high', 'medium', 'low', 'none', 'unknown'] as const;
export type AdvisorySeverity = (typeof advisorySeverities)[number];
/** Every severity of the one scale is an advisory severity (a compile error here when the scale grows). */
export const scaleSeverities: readonly AdvisorySeverity[] = severities;

const advisorySeverity = z.enum(advisorySeverities);
const tags = ['firmware vulnerabilities'] as const;
const anyJson = z.record(z.string(), z.unknown());

export const vulnerability = z.object({
  advisoryId: z.string(),
  summary: z.string(),
  aliases: z.array(z.string()),
  severity: advisorySeverity,
  score: z.number().nullable(),
  cvssVector: z.string().nullable(),
  purl: z.string(),
  componentVersion: z.string(),
});

export const advisory = z.object({
  id: z.string(),
  summary: z.string(),
  aliases: z.array(z.string()),
  severity: advisorySeverity,
  score: z.number().nullable(),
  cvssVector: z.string().nullable(),
  modified: z.number().int(),
  withdrawn: z.number().int().nullable(),
});

/** From the offline feeds (risk feeds): in the CISA KEV catalog; FIRST's EPSS probability of exploitation. */
const knownExploited = z.boolean();
const epss = z.number().min(0).max(1).nullable();

export const exposedDevice = z.object({
  deviceId: z.string(),
  group: z.string().nullable(),
  release: z.object({ id: z.string(), name: z.string(), version: z.string() }).nullable(),
  worstSeverity: advisorySeverity,
  worstScore: z.number().nullable(),
  knownExploited: knownExploited.describe('one of its advisories is known exploited (CISA KEV)'),
  epss: epss.describe(
    'the highest EPSS score (30-day exploitation probability) of its advisories; null: none scored',
  ),
  advisories: z.array(
    z.object({
      id: z.string(),
      severity: advisorySeverity,
      score: z.number().nullable(),
      knownExploited: knownExploited.describe(
        'one of its CVE ids (id or aliases) is in the CISA KEV catalog',
      ),
      epss: epss.describe('the highest EPSS score of its CVE ids; null: none scored'),
    }),
  ),
});

export const releaseVulnerabilities = contract({
  method: 'GET',
  path: '/api/v1/firmware/releases/:id/vulnerabilities',
  summary: 'Known vulnerabilities of the release (SBOM × imported OSV advisories), worst first',
  tags,
  access: 'firmware:read',
  params: z.object({ id: z.string().max(200) }),
  response: { 200: z.object({ vulnerabilities: z.array(vulnerability) }) },
});

export const advisories = contract({
  method: 'GET',
  path: '/api/v1/firmware/advisories',
  summary: 'Imported OSV advisories, highest score first',
  tags,
  access: 'firmware:read',
  query: z.object({
    severity: advisorySeverity.optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  }),
  response: { 200: z.object({ advisories: z.array(advisory) }) },
});

export const exposure = contract({
  method: 'GET',
  path: '/api/v1/firmware/exposure',
  summary:
    'Devices running releases with known vulnerabilities: known exploited (CISA KEV) first, then worst severity, then EPSS',
  tags,
  access: 'firmware:read',
  query: z.object({ minSeverity: advisorySeverity.optional() }),
  response: { 200: z.object({ devices: z.array(exposedDevice) }) },
});

export const importAdvisories = contract({
  method: 'POST',
  path: '/api/v1/firmware/advisories',
  summary: 'Import OSV advisories (one, an array, or {"vulns": [...]}) and match them against SBOMs',
  tags,
  access: 'firmware:write',
  body: z.union([anyJson, z.array(anyJson)]),
  response: {
    200: z.object({ imported: z.number().int(), unchanged: z.number().int(), matches: z.number().int() }),
  },
});

/** One vector's scores (risk/cvss.ts): the groups it defines, the most specific score and its rating. */
export const cvssScore = z.object({
  vector: z.string().describe("in the specification's metric order, X values left out"),
  version: z.enum(['3.0', '3.1', '4.0']),
  base: z.number(),
  temporal: z.number().nullable().describe('3.x temporal, 4.0 CVSS-BT; null when no such metric is given'),
  environmental: z.number().nullable().describe('3.x environmental, 4.0 CVSS-BE or CVSS-BTE'),
  score: z.number().describe('the most specific score the vector defines'),
  severity: advisorySeverity,
  kind: z.string().describe('base, temporal, environmental; 4.0: CVSS-B, CVSS-BT, CVSS-BE, CVSS-BTE'),
});

export const scoreCvss = contract({
  method: 'POST',
  path: '/api/v1/risk/cvss',
  summary: 'Score CVSS 3.0, 3.1 and 4.0 vectors as FIRST specifies; a refused vector is named with why',
  tags,
  access: 'compliance:read',
  // Scoring is synchronous: a request holds at most 1,000 vectors (a few hundred milliseconds of work).
  body: z.object({ vectors: z.array(z.string().max(512)).min(1).max(1000) }).strict(),
  response: {
    200: z.object({
      scores: z.array(
        z.union([
          cvssScore.extend({ index: z.number().int() }),
          z.object({ index: z.number().int(), vector: z.string(), error: z.string() }),
        ]),
      ),
      refused: z.number().int(),
    }),
  },
});

const feedTags = ['risk feeds'] as const;

export const importKev = contract({
  method: 'POST',
  path: '/api/v1/risk/feeds/kev',
  summary:
    "Import the CISA Known Exploited Vulnerabilities catalog (its JSON as published): checked against CISA's schema, all or nothing; replaces the stored catalog",
  tags: feedTags,
  access: 'risk:write',
  body: anyJson,
  response: {
    200: z.object({
      entries: z.number().int(),
      version: z.string().describe('the catalogVersion'),
    }),
  },
});

/** The body is the CSV itself (`text/csv`), or FIRST's `.csv.gz` as `application/gzip`: no JSON body schema. */
export const importEpss = contract({
  method: 'POST',
  path: '/api/v1/risk/feeds/epss',
  summary:
    'Import FIRST EPSS scores (the daily CSV as published; Content-Type: text/csv, or application/gzip for the .csv.gz): all or nothing; replaces the stored scores',
  tags: feedTags,
  access: 'risk:write',
  response: {
    200: z.object({
      entries: z.number().int(),
      version: z.string().nullable().describe('the EPSS model version (null: the file does not say)'),
      scoreDate: z.string().nullable().describe('the day scored, YYYY-MM-DD'),
    }),
  },
});

export const feedsStatus = contract({
  method: 'GET',
  path: '/api/v1/risk/feeds',
  summary: 'The offline feeds imported: CISA KEV and FIRST EPSS entries, when imported, the EPSS score date',
  tags: feedTags,
  access: 'risk:read',
  response: {
    200: z.object({
      kev: z.object({ entries: z.number().int(), importedAt: z.number().int().nullable() }),
      epss: z.object({
        entries: z.number().int(),
        importedAt: z.number().int().nullable(),
        scoreDate: z.string().nullable(),
      }),
    }),
  },
});
