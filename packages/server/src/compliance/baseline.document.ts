/**
 * The baseline document as text: parsed (YAML or JSON) and validated against the one schema of protocol,
 * every problem with the dotted path and the line it is at; rendered back to an editable YAML file; and
 * compared with another, setting by setting. Pure: no I/O.
 */
import { createHash } from 'node:crypto';
import {
  Document,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Document as YamlDocument,
} from 'yaml';
import type { z } from 'zod';
import {
  baselineDocumentSchema,
  DEFAULT_BASELINE_NAME,
  type Baseline,
  type FrameworkId,
} from '@bulwark/protocol';

/** One problem of a document: its dotted path (empty: the document itself) and line (1-based). */
export interface BaselineError {
  path: string;
  message: string;
  line: number | null;
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One difference between two baselines; `before`/`after` absent when the setting was added/removed. */
export interface BaselineChange {
  path: string;
  before?: JsonValue;
  after?: JsonValue;
}

export type BaselineValidation = { ok: true; baseline: Baseline } | { ok: false; errors: BaselineError[] };

/** Larger documents are refused before they are parsed (the API's body limit is the same). */
export const MAX_DOCUMENT_BYTES = 262_144;

/** Aliases a document may expand (a "billion laughs" document is refused, not expanded). */
const MAX_ALIAS_COUNT = 100;

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The built-in baseline: every default of the schema. */
export function defaultBaseline(): Baseline {
  return baselineDocumentSchema.parse({ name: DEFAULT_BASELINE_NAME });
}

/** The offset where a YAML node starts, if it is a node with a source range. */
function startOf(node: unknown): number | undefined {
  return isNode(node) && node.range ? node.range[0] : undefined;
}

function keyMatches(key: unknown, wanted: PropertyKey): boolean {
  return isScalar(key) ? String(key.value) === String(wanted) : String(key) === String(wanted);
}

/**
 * The line of the setting at `path`: the line of its key (a map's value starts on the line after), or of
 * the nearest enclosing setting the text has (a missing field: the section it is missing from).
 */
function lineOf(doc: YamlDocument, counter: LineCounter, path: readonly PropertyKey[]): number | null {
  let node: unknown = doc.contents;
  let offset = startOf(node);
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => keyMatches(p.key, key));
      if (!pair) break;
      offset = startOf(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item: unknown = node.items[key];
      if (item === undefined) break;
      offset = startOf(item) ?? offset;
      node = item;
    } else break;
  }
  return offset === undefined ? null : counter.linePos(offset).line;
}

const dotted = (path: readonly PropertyKey[]): string => path.map(String).join('.');

/** The value at `path` of a plain value (undefined: not there). */
function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let node = value;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

interface ParsedText {
  doc: YamlDocument;
  counter: LineCounter;
  value: unknown;
}

/** Zod's issues as errors with lines; an unknown field is one error per field, at the field's line. */
function schemaErrors(text: ParsedText, issues: z.core.$ZodIssue[]): BaselineError[] {
  const { doc, counter } = text;
  const errors: BaselineError[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        errors.push({ path: dotted(path), message: 'unknown setting', line: lineOf(doc, counter, path) });
      }
      continue;
    }
    const path = dotted(issue.path);
    const missing = issue.code === 'invalid_type' && valueAt(text.value, issue.path) === undefined;
    // The schema's own messages may name the field already: the error names it once.
    const message = issue.message.startsWith(`${path} `)
      ? issue.message.slice(path.length + 1)
      : issue.message;
    errors.push({ path, message: missing ? 'required' : message, line: lineOf(doc, counter, issue.path) });
  }
  return errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/** A YAML syntax error as one line (the library appends the position and an excerpt). */
function syntaxError(err: { message: string; linePos?: [{ line: number }, ...unknown[]] }): BaselineError {
  const message = (err.message.split('\n')[0] ?? err.message).replace(/ at line \d+, column \d+:?$/, '');
  return { path: '', message, line: err.linePos?.[0].line ?? null };
}

/** The plain value of a parsed document, or the error that refuses it (alias bombs). */
function plainValue(doc: YamlDocument): { value: unknown } | { error: BaselineError } {
  try {
    return { value: doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
  } catch (err) {
    return { error: { path: '', message: (err as Error).message, line: null } };
  }
}

/**
 * Does a framework have this clause (without a clause: is there such a framework, built-in or added)? The
 * frameworks are compliance data the caller holds.
 */
export type ClauseExists = (standard: FrameworkId, clause?: string) => boolean;

export interface BaselineTextOptions {
  /** When given, `compliance.notApplicable` may name only clauses that exist. */
  clauseExists?: ClauseExists | undefined;
}

/**
 * `compliance.notApplicable` entries naming no framework in force, or no clause of their standard (a typo leaves
 * the clause judged).
 */
function unknownClauses(text: ParsedText, baseline: Baseline, clauseExists: ClauseExists): BaselineError[] {
  const errors: BaselineError[] = [];
  for (const [standard, clauses] of Object.entries(baseline.compliance.notApplicable)) {
    if (!clauseExists(standard)) {
      const path = ['compliance', 'notApplicable', standard];
      errors.push({
        path: dotted(path),
        message: `no framework "${standard}" (a built-in standard or a <id>.json in compliance.frameworksDir)`,
        line: lineOf(text.doc, text.counter, path),
      });
      continue;
    }
    for (const clause of Object.keys(clauses)) {
      if (clauseExists(standard, clause)) continue;
      const path = ['compliance', 'notApplicable', standard, clause];
      errors.push({
        path: dotted(path),
        message: `${standard} has no clause "${clause}"`,
        line: lineOf(text.doc, text.counter, path),
      });
    }
  }
  return errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/** Parses and validates a baseline document; every problem is reported, nothing is thrown. */
export function validateBaselineText(text: string, options: BaselineTextOptions = {}): BaselineValidation {
  if (Buffer.byteLength(text, 'utf8') > MAX_DOCUMENT_BYTES)
    return {
      ok: false,
      errors: [{ path: '', message: `the document is larger than ${MAX_DOCUMENT_BYTES} bytes`, line: null }],
    };
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) return { ok: false, errors: doc.errors.map(syntaxError) };
  const plain = plainValue(doc);
  if ('error' in plain) return { ok: false, errors: [plain.error] };
  if (plain.value === null || plain.value === undefined)
    return {
      ok: false,
      errors: [{ path: '', message: 'the document is empty (it needs a name)', line: null }],
    };
  const parsed = baselineDocumentSchema.safeParse(plain.value);
  const source = { doc, counter, value: plain.value };
  if (!parsed.success) return { ok: false, errors: schemaErrors(source, parsed.error.issues) };
  const unknown = options.clauseExists ? unknownClauses(source, parsed.data, options.clauseExists) : [];
  return unknown.length === 0 ? { ok: true, baseline: parsed.data } : { ok: false, errors: unknown };
}

/** Settings written as durations (`14d`): the baseline holds them in milliseconds. */
const durationPaths: ReadonlySet<string> = new Set([
  'certificates.deviceMaxLifetime',
  'certificates.deviceExpiryWarning',
  'certificates.caExpiryWarning',
  'certificates.serverExpiryWarning',
  'accounts.dormantAfter',
  'accounts.minLockoutDuration',
  'accounts.apiTokenMaxLifetime',
  'sessions.maxIdle',
  'sessions.maxAbsolute',
  'devices.notSeenFor',
  'devices.conflictWindow',
  'firmware.maxAge',
  'firmware.metadataExpiryWarning',
  'firmware.advisoryMaxAge',
  'monitoring.alertMaxAge',
  'retention.personalDataMax',
  'retention.telemetryMax',
  'risk.reassessEvery',
  'compliance.attestationMaxAge',
  'approvals.expireAfter',
]);

const durationUnits = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
] as const;

/** Milliseconds in the one duration grammar, in the largest unit that divides them (`1209600000` is `14d`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const [unit, size] of durationUnits) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The baseline as its document takes it: durations back in the `14d` grammar, absent fields left out. */
export function baselineToDocument(baseline: Baseline): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [section, value] of Object.entries(baseline)) {
    if (value === undefined) continue;
    if (!isPlainObject(value)) {
      out[section] = value;
      continue;
    }
    const fields: Record<string, unknown> = {};
    for (const [field, v] of Object.entries(value)) {
      if (v === undefined) continue;
      fields[field] =
        durationPaths.has(`${section}.${field}`) && typeof v === 'number' ? formatDuration(v) : v;
    }
    out[section] = fields;
  }
  return out;
}

/** One comment per section of the rendered file, so the file explains itself. */
const sectionComments: Readonly<Record<string, string>> = {
  certificates: ' Device, server and CA certificates: lifetimes, renewal windows, accepted key types.',
  accounts:
    ' Accounts: who needs a second factor (privileged | all), dormancy, lockout, API tokens, admin count.',
  sessions: ' Session limits: idle and absolute.',
  devices: ' Devices in service not seen for this long fail; identity conflicts looked for in this window.',
  firmware:
    ' Firmware: maximum age, staged rollouts, vulnerability severity (critical|high|medium|low), TUF metadata,\n SBOMs, advisories.',
  monitoring: ' Security profiles each group needs ("*": every group); open alerts that fail when old.',
  retention: ' Longest retention of personal data and of stored telemetry.',
  zones: ' IEC 62443 target security levels (1..4): the default, and per zone name.',
  risk: ' The risk register: how often a risk is re-assessed, and how many levels a live rise may take before it alerts.',
  firewall: ' The broker flood limits may be at most these.',
  audit: ' The audit log must be exported (SIEM, syslog, webhook) and may lag at most this many entries.',
  approvals:
    ' Dual control: a bulk device action selecting at least bulkDevices devices waits for a second person\n (0: off); a request not approved within expireAfter expires.',
  disclosure:
    ' Vulnerability disclosure (ETSI EN 303 645 5.2-1), e.g.\n   contact: mailto:security@example.com\n   policyUrl: https://example.com/security',
  product:
    ' The published support period (ETSI EN 303 645 5.3-13), e.g.\n   supportPeriodEnd: 2031-12-31\n   supportPeriodUrl: https://example.com/support',
  compliance:
    ' Clauses not applicable, with a justification each, e.g.\n   notApplicable: { etsi-en-303-645: { 5.13-1: "The devices take no user input" } }\n and how long an attestation is trusted before review.',
};

const HEADER = [
  ' The organisation baseline: the parameters every compliance check reads.',
  ' Durations are a number and a unit: 30m, 24h, 14d. Every setting has a default; remove one to use it.',
  ' Check it with `bulwark baseline validate FILE`, see what changes with `bulwark baseline diff FILE`,',
  ' and apply it with `bulwark baseline apply FILE`.',
].join('\n');

/** The baseline as a complete, commented YAML file a person can edit and apply again. */
export function renderBaseline(baseline: Baseline): string {
  const doc = new Document(baselineToDocument(baseline));
  doc.commentBefore = HEADER;
  if (isMap(doc.contents)) {
    for (const pair of doc.contents.items) {
      if (!isScalar(pair.key)) continue;
      const comment = sectionComments[String(pair.key.value)];
      if (comment === undefined) continue;
      pair.key.commentBefore = comment;
      pair.key.spaceBefore = true;
    }
  }
  return doc.toString({ lineWidth: 0 });
}

/** A value as JSON (the baseline holds only JSON values; anything else is written as text). */
function toJson(value: unknown): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return value;
  if (Array.isArray(value)) return value.map(toJson);
  if (isPlainObject(value)) {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v);
    return out;
  }
  // Not reached for a parsed baseline (only JSON values); a Date or the like is kept as JSON would write it.
  return JSON.stringify(value) ?? null;
}

/** Every setting by dotted path; objects are walked, arrays and scalars are values. */
function flatten(value: unknown, prefix: string, out: Map<string, JsonValue>): Map<string, JsonValue> {
  if (isPlainObject(value)) {
    for (const [key, v] of Object.entries(value)) {
      if (v !== undefined) flatten(v, prefix === '' ? key : `${prefix}.${key}`, out);
    }
  } else out.set(prefix, toJson(value));
  return out;
}

/** What differs between two baselines (defaults filled in, durations in ms), sorted by path. */
export function diffBaselines(before: Baseline, after: Baseline): BaselineChange[] {
  const a = flatten(before, '', new Map());
  const b = flatten(after, '', new Map());
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const changes: BaselineChange[] = [];
  for (const path of paths) {
    const was = a.get(path);
    const now = b.get(path);
    if (JSON.stringify(was) === JSON.stringify(now)) continue;
    changes.push({
      path,
      ...(was === undefined ? {} : { before: was }),
      ...(now === undefined ? {} : { after: now }),
    });
  }
  return changes;
}

/** A changed value as a person reads it: durations in the `14d` grammar, the rest as JSON. */
function shownValue(path: string, value: JsonValue | undefined): string {
  if (value === undefined) return '(absent)';
  if (typeof value === 'number' && durationPaths.has(path)) return formatDuration(value);
  return JSON.stringify(value);
}

/** One change as a line: `accounts.dormantAfter: 90d -> 30d`. */
export function describeChange(change: BaselineChange): string {
  return `${change.path}: ${shownValue(change.path, change.before)} -> ${shownValue(change.path, change.after)}`;
}
