import { gunzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import { BulwarkError } from '@bulwark/protocol';

/**
 * Offline threat-intelligence feeds, parsed and checked whole before anything is stored: the CISA Known
 * Exploited Vulnerabilities catalog (JSON) and FIRST's EPSS scores (CSV). Pure: the bytes come in, the
 * entries come out, and any bad entry refuses the whole feed naming where it is.
 */

/** The CVE id as CISA's KEV schema and the CVE record format write it (the number part has 4 to 19 digits). */
export const CVE_ID = /^CVE-[0-9]{4}-[0-9]{4,19}$/;

/** A feed file or body is refused beyond this, before it is read (principle 8), and so is its gunzipped text. */
export const FEED_MAX_BYTES = 256 * 1024 * 1024;

const GZIP_MAGIC = [0x1f, 0x8b] as const;

const refused = (message: string) => new BulwarkError('validation_failed', message);

export const ransomwareUses = ['Known', 'Unknown'] as const;
export type RansomwareUse = (typeof ransomwareUses)[number];

/** One catalog entry, as stored. */
export interface KevEntry {
  cve: string;
  vendor: string;
  product: string;
  name: string;
  /** YYYY-MM-DD */
  dateAdded: string;
  /** YYYY-MM-DD; the schema requires it, the store allows none. */
  dueDate: string | null;
  ransomware: RansomwareUse | null;
}

export interface KevCatalog {
  /** `catalogVersion`, e.g. 2024.09.21. */
  version: string;
  /** `dateReleased`, as written (RFC 3339 date-time). */
  released: string;
  entries: KevEntry[];
}

/**
 * CISA's published schema (known_exploited_vulnerabilities_schema.json, JSON Schema draft-07), field by field:
 * the required keys, `cveID`'s pattern, `format: date` and `date-time`, `cwes` items `^CWE-([0-9])+$`. Fields the
 * schema does not name are allowed, as it allows them (`forensicTriage` came that way). One rule is stricter
 * than the schema's `type: string`: `knownRansomwareCampaignUse` must be one of the two values its description
 * defines, since the register reads it as a yes/no.
 */
const kevVulnerability = z.object({
  cveID: z.string().regex(CVE_ID, 'must be a CVE id, CVE-YYYY-NNNN (4 to 19 digits)'),
  vendorProject: z.string(),
  product: z.string(),
  vulnerabilityName: z.string(),
  dateAdded: z.iso.date('must be a date, YYYY-MM-DD'),
  shortDescription: z.string(),
  requiredAction: z.string(),
  dueDate: z.iso.date('must be a date, YYYY-MM-DD'),
  knownRansomwareCampaignUse: z
    .enum(ransomwareUses, { error: `must be ${ransomwareUses.join(' or ')}` })
    .optional(),
  notes: z.string().optional(),
  cwes: z.array(z.string().regex(/^CWE-[0-9]+$/, 'must be a CWE id, CWE-NNN')).optional(),
});

const kevSchema = z.object({
  title: z.string().optional(),
  catalogVersion: z.string().min(1).max(64),
  dateReleased: z.iso.datetime({ offset: true, error: 'must be a date-time, YYYY-MM-DDTHH:mm:ss.sssZ' }),
  count: z.number().int().min(0),
  vulnerabilities: z.array(kevVulnerability),
});

/** The value at a zod issue's path in the input (undefined: absent). */
function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** The first problem, named by its path (`vulnerabilities.12.cveID: …`), and how many more there are. */
function firstIssue(error: z.ZodError, input: unknown): BulwarkError {
  const [issue, ...rest] = error.issues;
  const path = issue?.path ?? [];
  const where = path.map(String).join('.') || 'a KEV catalog';
  const missing = path.length > 0 && valueAt(input, path) === undefined;
  const what = missing ? 'is required' : (issue?.message ?? 'not a KEV catalog');
  const more = rest.length > 0 ? ` (and ${rest.length} more problem${rest.length === 1 ? '' : 's'})` : '';
  return refused(`${where}: ${what}${more}`);
}

/**
 * Validates a KEV catalog (the JSON CISA publishes as known_exploited_vulnerabilities.json): all or nothing.
 * Every entry must match CISA's schema, `count` must be the number of entries, and a CVE may appear once.
 * The error names the entry and field, e.g. `vulnerabilities.12.cveID: must be a CVE id …`.
 */
export function parseKev(json: unknown): KevCatalog {
  const parsed = kevSchema.safeParse(json);
  if (!parsed.success) throw firstIssue(parsed.error, json);
  const { catalogVersion, dateReleased, count, vulnerabilities } = parsed.data;
  if (count !== vulnerabilities.length)
    throw refused(`count: says ${count} vulnerabilities, the catalog lists ${vulnerabilities.length}`);
  if (vulnerabilities.length === 0)
    throw refused('vulnerabilities: the catalog lists none (importing it would erase the stored one)');
  const seen = new Map<string, number>();
  const entries = vulnerabilities.map((v, i): KevEntry => {
    const first = seen.get(v.cveID);
    if (first !== undefined)
      throw refused(`vulnerabilities.${i}.cveID: ${v.cveID} is listed twice (also vulnerabilities.${first})`);
    seen.set(v.cveID, i);
    return {
      cve: v.cveID,
      vendor: v.vendorProject,
      product: v.product,
      name: v.vulnerabilityName,
      dateAdded: v.dateAdded,
      dueDate: v.dueDate,
      ransomware: v.knownRansomwareCampaignUse ?? null,
    };
  });
  return { version: catalogVersion, released: dateReleased, entries };
}

/** One CVE's EPSS score: the probability of exploitation activity in the next 30 days, and its percentile. */
export interface EpssRow {
  cve: string;
  score: number;
  percentile: number;
}

export interface EpssFeed {
  /** From the comment line (`#model_version:v2023.03.01,…`); null when the file has none. */
  modelVersion: string | null;
  /** The day scored, YYYY-MM-DD (the comment's `score_date`); null when the file has none. */
  scoreDate: string | null;
  rows: EpssRow[];
}

const EPSS_HEADER = ['cve', 'epss', 'percentile'] as const;
/** A plain decimal (FIRST writes `0.00043`, `1.0`); an exponent is accepted, anything else is not a number. */
const DECIMAL = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/;
/** `2024-03-01T00:00:00+0000` (FIRST's form), or any RFC 3339 date or date-time: the date part is the day scored. */
const SCORE_DATE =
  /^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?$/;
const MODEL_VERSION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const isoDate = z.iso.date();

/** `#model_version:v2023.03.01,score_date:2024-03-01T00:00:00+0000`: its fields, checked. Line 1. */
function epssComment(line: string): { modelVersion: string | null; scoreDate: string | null } {
  const fields = new Map<string, string>();
  for (const part of line.slice(1).split(',')) {
    const at = part.indexOf(':');
    if (at < 1) throw refused(`line 1: "${part.trim()}" is not key:value in the comment`);
    fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const modelVersion = fields.get('model_version') ?? null;
  if (modelVersion !== null && !MODEL_VERSION.test(modelVersion))
    throw refused(`line 1: model_version "${modelVersion}" is not a version (e.g. v2023.03.01)`);
  const written = fields.get('score_date');
  if (written === undefined) return { modelVersion, scoreDate: null };
  const day = SCORE_DATE.exec(written)?.[1];
  if (day === undefined || !isoDate.safeParse(day).success)
    throw refused(`line 1: score_date "${written}" is not a date (e.g. 2024-03-01T00:00:00+0000)`);
  return { modelVersion, scoreDate: day };
}

/** A score or percentile: a decimal from 0 to 1, or undefined. */
function probability(text: string): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const n = Number(text);
  return n >= 0 && n <= 1 ? n : undefined;
}

/** What is wrong with one record (undefined: nothing), the field named by its column. */
function epssRecordProblem(record: readonly string[], seen: ReadonlySet<string>): string | undefined {
  const [cve = '', score = '', percentile = ''] = record;
  if (!CVE_ID.test(cve)) return `cve "${cve}" is not a CVE id (CVE-YYYY-NNNN)`;
  if (seen.has(cve)) return `cve ${cve} is scored twice`;
  if (probability(score) === undefined) return `epss "${score}" is not a probability from 0 to 1`;
  if (probability(percentile) === undefined) return `percentile "${percentile}" is not a number from 0 to 1`;
  return undefined;
}

/** The line a record starts on, for an error message: parsed again with positions (only when refusing). */
function lineOfRecord(text: string, fromLine: number, index: number): number {
  const parsed = (
    parse as (input: string, options: object) => { record: string[]; info: { lines: number } }[]
  )(text, { bom: true, from_line: fromLine, info: true, skip_empty_lines: true, to: index + 1 });
  const at = parsed[index];
  if (!at) return fromLine;
  return at.info.lines - at.record.reduce((n, field) => n + (field.split('\n').length - 1), 0);
}

function parseCsvRecords(text: string, fromLine: number): string[][] {
  try {
    // RFC 4180 with csv-parse: a record with another number of fields than the header is an error (its line).
    return parse(text, {
      bom: true,
      from_line: fromLine,
      record_delimiter: ['\r\n', '\n'],
      skip_empty_lines: true,
    });
  } catch (err) {
    throw refused(`not valid CSV: ${(err as Error).message}`);
  }
}

/**
 * Validates FIRST's daily EPSS file (`epss_scores-YYYY-MM-DD.csv`): an optional first comment line
 * `#model_version:…,score_date:…`, the header `cve,epss,percentile`, then one CVE a line. All or nothing: a bad
 * line (not a CVE id, a score or percentile outside 0..1, a CVE scored twice, the wrong number of fields)
 * refuses the file naming the line. Parsed with csv-parse; the line of a bad record is found afterwards, so the
 * ~250,000 good ones are read at full speed.
 */
export function parseEpss(text: string): EpssFeed {
  const body = text.replace(/^\uFEFF/, '');
  const end = body.search(/\r?\n/);
  const firstLine = end === -1 ? body : body.slice(0, end);
  const hasComment = firstLine.startsWith('#');
  const meta = hasComment ? epssComment(firstLine) : { modelVersion: null, scoreDate: null };
  const fromLine = hasComment ? 2 : 1;
  const [header, ...records] = parseCsvRecords(body, fromLine);
  if (!header || header.join(',') !== EPSS_HEADER.join(','))
    throw refused(
      `line ${fromLine}: the header must be ${EPSS_HEADER.join(',')}, not ${header ? header.join(',') : 'missing'}`,
    );
  if (records.length === 0)
    throw refused('the file scores no CVE (importing it would erase the stored scores)');
  const seen = new Set<string>();
  const rows: EpssRow[] = [];
  for (const [i, record] of records.entries()) {
    const problem = epssRecordProblem(record, seen);
    if (problem !== undefined) throw refused(`line ${lineOfRecord(body, fromLine, i + 1)}: ${problem}`);
    const [cve = '', score = '', percentile = ''] = record;
    seen.add(cve);
    rows.push({ cve, score: Number(score), percentile: Number(percentile) });
  }
  return { ...meta, rows };
}

/** The day in a file name like FIRST's `epss_scores-2024-03-01.csv.gz`, for a file without a comment line. */
export function scoreDateOfName(name: string): string | null {
  const day = /(?:^|[^0-9])([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[^0-9]|$)/.exec(name)?.[1];
  return day !== undefined && isoDate.safeParse(day).success ? day : null;
}

const startsWithGzip = (bytes: Uint8Array) => bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];

/**
 * A feed's text from its bytes: gunzipped when they start with the gzip magic bytes (RFC 1952 §2.3.1), whatever
 * the name says, without ever inflating past `maxBytes`; then UTF-8, strictly (a byte-order mark is dropped).
 * `what` names the input in errors (a file name, "the request body").
 */
export function feedText(bytes: Uint8Array, what: string, maxBytes = FEED_MAX_BYTES): string {
  if (bytes.byteLength > maxBytes) throw refused(`${what}: larger than the limit of ${sizeOf(maxBytes)}`);
  let raw: Uint8Array = bytes;
  if (startsWithGzip(bytes)) {
    try {
      raw = gunzipSync(bytes, { maxOutputLength: maxBytes });
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw refused(
        code === 'ERR_BUFFER_TOO_LARGE'
          ? `${what}: gunzipped, larger than the limit of ${sizeOf(maxBytes)}`
          : `${what}: not valid gzip: ${(err as Error).message}`,
      );
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(raw);
  } catch {
    throw refused(`${what}: not UTF-8 text`);
  }
}

/** A KEV catalog's JSON text, parsed (the catalog is then checked by parseKev). */
export function kevJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw refused(`${what}: not JSON: ${(err as Error).message}`);
  }
}

function sizeOf(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;
}
