import { createHash } from 'node:crypto';
import type { Evidence } from './checks/types.ts';
import type { AttestationView, CheckResult, ClauseStatus, RunResult } from './model.ts';
import type { ReportClause, StandardReport } from './report.ts';

/**
 * A report as OSCAL 1.0.6 assessment results (NIST, https://pages.nist.gov/OSCAL/), validated in the tests
 * against the shipped schema (compliance/oscal/oscal_assessment-results_schema.json). One result per report:
 * the reviewed controls are the standard's clauses, one observation per check (its evidence objects as subjects
 * and relevant evidence) and per attestation (its files as back-matter resources with their SHA-256), one finding
 * per clause, one risk per waived check (a deviation approved). UUIDs are name-based (v5): the same run, check, clause or object gets the same UUID in every
 * rendering, as OSCAL asks ("assigned per-subject").
 */

const OSCAL_VERSION = '1.0.6';
/** The namespace of Bulwark's own props (OSCAL: props outside its namespace carry `ns`). */
export const OSCAL_NS = 'urn:bulwark:oscal';

/** Fixed namespace of the name-based UUIDs (RFC 4122 §4.3). */
const UUID_NAMESPACE = Buffer.from('6f1c2a4e9b7d4e0fa3c85d2b1e7f9a10', 'hex');

/** A version 5 UUID (SHA-1, RFC 4122 §4.3) of `name`: deterministic, and valid for OSCAL's UUID pattern. */
export function nameUuid(name: string): string {
  const hash = createHash('sha1').update(UUID_NAMESPACE).update(name, 'utf8').digest().subarray(0, 16);
  hash.writeUInt8((hash.readUInt8(6) & 0x0f) | 0x50, 6);
  hash.writeUInt8((hash.readUInt8(8) & 0x3f) | 0x80, 8);
  const hex = hash.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A clause id as an OSCAL token (an XML NCName: a letter or `_`, then letters, digits, `.`, `-`, `_`), in the
 * style of NIST's catalogs: lower case, a parenthesised part becomes a dotted one (`AC-2(1)` → `ac-2.1`, as in
 * the SP 800-53 OSCAL catalog), spaces a hyphen (`CR 1.1 RE(1)` → `cr-1.1-re.1`, `Art. 5(1)(e)` → `art-5.1.e`),
 * and an id starting with a digit gets a leading `_` (`5.1-1` → `_5.1-1`). The original stays in a prop.
 */
export function controlToken(id: string): string {
  const token = id
    .trim()
    .toLowerCase()
    .replace(/\(([^()]*)\)/g, '.$1')
    .replace(/\.?\s+/g, '-')
    .replace(/[^\p{L}\p{N}._-]/gu, '-')
    .replace(/[._-]{2,}/g, (run) => (run.includes('-') ? '-' : run.charAt(0)))
    .replace(/[.-]+$/, '');
  if (token === '') return '_';
  return /^[\p{L}_]/u.test(token) ? token : `_${token}`;
}

/** Tokens for every clause of a report, made unique (`-2`, `-3` … on a clash after normalising). */
function clauseTokens(clauses: readonly ReportClause[]): Map<string, string> {
  const tokens = new Map<string, string>();
  const used = new Set<string>();
  for (const clause of clauses) {
    const base = controlToken(clause.id);
    let token = base;
    for (let n = 2; used.has(token); n += 1) token = `${base}-${n}`;
    used.add(token);
    tokens.set(clause.id, token);
  }
  return tokens;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** OSCAL strings (props' values) are non-empty, without line breaks or surrounding whitespace. */
function text(value: unknown): string {
  const flat = String(value).replace(/\s+/g, ' ').trim();
  return flat === '' ? '-' : flat;
}

interface Prop {
  name: string;
  value: string;
  ns: string;
}
function prop(name: string, value: unknown): Prop {
  return { name, value: text(value), ns: OSCAL_NS };
}

/** What the document's parts share while it is built. */
interface Context {
  report: StandardReport;
  run: RunResult;
  tokens: Map<string, string>;
  collected: string;
  /** The inventory items (evidence objects) by UUID, gathered from the observations. */
  items: Map<string, { uuid: string; description: string; props: Prop[] }>;
  /** Back-matter resources (attestation evidence files) by UUID, gathered from the observations. */
  resources: Map<string, object>;
}

/** An attestation's evidence file as a back-matter resource: where to fetch it, and its SHA-256. */
function fileResource(ctx: Context, file: AttestationView['files'][number]): string {
  const uuid = nameUuid(`bulwark:evidence-file:${file.sha256}`);
  ctx.resources.set(uuid, {
    uuid,
    title: file.name,
    description: `Attestation evidence: ${file.name} (${file.mediaType}, ${file.size} bytes)`,
    rlinks: [
      {
        href: `/api/v1/compliance/evidence/${file.sha256}`,
        'media-type': text(file.mediaType),
        hashes: [{ algorithm: 'SHA-256', value: text(file.sha256) }],
      },
    ],
  });
  return uuid;
}

const TOOL_UUID = nameUuid('bulwark:component:compliance-engine');

function evidenceSubject(ctx: Context, evidence: Evidence) {
  const uuid = nameUuid(`bulwark:object:${evidence.kind}:${evidence.id}`);
  if (!ctx.items.has(uuid)) {
    ctx.items.set(uuid, {
      uuid,
      description: `${evidence.kind} ${evidence.id}`,
      props: [prop('object-kind', evidence.kind), prop('object-id', evidence.id)],
    });
  }
  return { 'subject-uuid': uuid, type: 'inventory-item', title: `${evidence.kind} ${evidence.id}` };
}

function checkObservationUuid(ctx: Context, check: CheckResult): string {
  return nameUuid(`bulwark:run:${ctx.run.id}:check:${check.id}`);
}

function checkObservation(ctx: Context, check: CheckResult) {
  const props = [
    prop('check-id', check.id),
    prop('severity', check.severity),
    prop('result', check.status),
    prop('examined', check.examined),
  ];
  if (check.needs === 'operator') props.push(prop('needs', 'operator'));
  const subjects = dedupeSubjects(check.evidence.map((x) => evidenceSubject(ctx, x)));
  const evidence = check.evidence.map((x) => ({
    description: `${x.kind} ${x.id}: ${x.detail}`,
    props: [prop('object-kind', x.kind), prop('object-id', x.id)],
  }));
  return {
    uuid: checkObservationUuid(ctx, check),
    title: `${check.id}: ${check.title}`,
    description: check.summary,
    props,
    methods: ['TEST'],
    types: ['control-objective'],
    origins: [{ actors: [{ type: 'tool', 'actor-uuid': TOOL_UUID }] }],
    ...(subjects.length > 0 ? { subjects } : {}),
    ...(evidence.length > 0 ? { 'relevant-evidence': evidence } : {}),
    collected: ctx.collected,
    remarks:
      check.status === 'pass' ? check.rationale : `${check.rationale} Remediation: ${check.remediation}`,
  };
}

function dedupeSubjects<T extends { 'subject-uuid': string }>(subjects: T[]): T[] {
  const seen = new Set<string>();
  return subjects.filter((s) => {
    if (seen.has(s['subject-uuid'])) return false;
    seen.add(s['subject-uuid']);
    return true;
  });
}

function attestationObservationUuid(ctx: Context, clause: ReportClause): string {
  return nameUuid(`bulwark:run:${ctx.run.id}:attestation:${clause.attestation?.id ?? clause.id}`);
}

function attestationObservation(ctx: Context, clause: ReportClause) {
  const a = clause.attestation;
  if (!a) return null;
  const files = a.files.map((f) => ({
    href: `#${fileResource(ctx, f)}`,
    description: `${f.name} (${f.mediaType}, ${f.size} bytes)`,
    props: [prop('sha256', f.sha256)],
  }));
  return {
    uuid: attestationObservationUuid(ctx, clause),
    title: `Attestation for ${clause.id}`,
    description: a.statement,
    props: [
      prop('attestation-id', a.id),
      prop('owner', a.owner),
      prop('recorded-by', a.createdBy),
      prop('review-at', iso(a.reviewAt)),
      prop('expired', a.expired),
    ],
    methods: ['EXAMINE'],
    types: ['control-objective'],
    ...(files.length > 0 ? { 'relevant-evidence': files } : {}),
    collected: iso(a.createdAt),
    expires: iso(a.expiresAt),
  };
}

function waivedChecks(report: StandardReport): CheckResult[] {
  const found = new Map<string, CheckResult>();
  for (const clause of report.clauses) {
    for (const check of clause.checks)
      if (check.status === 'fail' && check.waiver) found.set(check.id, check);
  }
  return [...found.values()];
}

function riskUuid(check: CheckResult): string {
  return nameUuid(`bulwark:waiver:${check.waiver?.id ?? check.id}`);
}

/** A waived failing check: a risk whose deviation was approved, until the waiver expires. */
function waiverRisk(ctx: Context, check: CheckResult) {
  const w = check.waiver;
  if (!w) return null;
  return {
    uuid: riskUuid(check),
    title: `Waived: ${check.id}: ${check.title}`,
    description: check.rationale,
    statement: w.reason,
    props: [
      prop('waiver-id', w.id),
      prop('approver', w.approver),
      prop('granted-by', w.createdBy),
      prop('severity', check.severity),
    ],
    status: 'deviation-approved',
    deadline: iso(w.expiresAt),
    'related-observations': [{ 'observation-uuid': checkObservationUuid(ctx, check) }],
  };
}

const findingState: Record<ClauseStatus, { state: 'satisfied' | 'not-satisfied'; reason: string }> = {
  pass: { state: 'satisfied', reason: 'pass' },
  fail: { state: 'not-satisfied', reason: 'fail' },
  error: { state: 'not-satisfied', reason: 'other' },
  manual: { state: 'not-satisfied', reason: 'other' },
  not_applicable: { state: 'satisfied', reason: 'other' },
};

function findingRemarks(clause: ReportClause): string {
  switch (clause.status) {
    case 'not_applicable':
      return `Not applicable (${clause.justification?.source ?? 'framework'}): ${clause.justification?.text ?? ''}`;
    case 'manual':
      return `Manual clause awaiting an attestation. ${clause.guidance ?? ''}`;
    case 'error':
      return 'A check mapped to this clause could not read its facts.';
    case 'fail':
      return clause.mode === 'manual' ? 'The attestation expired.' : 'A mapped check fails.';
    case 'pass':
      return clause.waived ? 'Satisfied with waived failing checks (see the related risks).' : 'Satisfied.';
  }
}

function clauseObservations(ctx: Context, clause: ReportClause): string[] {
  if (clause.mode === 'manual') return clause.attestation ? [attestationObservationUuid(ctx, clause)] : [];
  return clause.checks.map((c) => checkObservationUuid(ctx, c));
}

function finding(ctx: Context, clause: ReportClause) {
  const observations = clauseObservations(ctx, clause);
  const risks = clause.checks.filter((c) => c.status === 'fail' && c.waiver).map(riskUuid);
  const status = findingState[clause.status];
  return {
    uuid: nameUuid(`bulwark:run:${ctx.run.id}:${ctx.report.standard.id}:clause:${clause.id}`),
    title: `${clause.id} ${clause.title}`,
    description: clause.note ?? clause.guidance ?? clause.justification?.text ?? clause.title,
    props: [prop('clause-status', clause.status), prop('waived', clause.waived), prop('group', clause.group)],
    target: {
      type: 'objective-id',
      'target-id': ctx.tokens.get(clause.id) ?? controlToken(clause.id),
      props: [prop('original-id', clause.id)],
      status: { state: status.state, reason: status.reason, remarks: findingRemarks(clause) },
      ...(clause.status === 'not_applicable' ? { 'implementation-status': { state: 'not-applicable' } } : {}),
    },
    ...(observations.length > 0
      ? { 'related-observations': observations.map((u) => ({ 'observation-uuid': u })) }
      : {}),
    ...(risks.length > 0 ? { 'related-risks': risks.map((u) => ({ 'risk-uuid': u })) } : {}),
  };
}

function reviewedControls(ctx: Context) {
  const select = (clauses: readonly ReportClause[]) =>
    clauses.map((c) => ({ 'control-id': ctx.tokens.get(c.id) ?? controlToken(c.id) }));
  const applicable = ctx.report.clauses.filter((c) => c.status !== 'not_applicable');
  const excluded = ctx.report.clauses.filter((c) => c.status === 'not_applicable');
  const selection = {
    description: `The clauses of ${ctx.report.standard.title} ${ctx.report.standard.version}, as Bulwark's framework maps them; not applicable clauses are excluded with their justification in the findings.`,
    ...(applicable.length > 0 ? { 'include-controls': select(applicable) } : {}),
    ...(excluded.length > 0 ? { 'exclude-controls': select(excluded) } : {}),
  };
  return {
    description:
      'Control ids are OSCAL tokens made from the clause ids (each finding keeps the original id in a prop).',
    'control-selections': [selection],
  };
}

function observations(ctx: Context) {
  const checks = new Map<string, CheckResult>();
  for (const clause of ctx.report.clauses) for (const check of clause.checks) checks.set(check.id, check);
  const fromChecks = [...checks.values()].map((c) => checkObservation(ctx, c));
  const fromAttestations = ctx.report.clauses.flatMap((c) => {
    const observation = c.mode === 'manual' ? attestationObservation(ctx, c) : null;
    return observation ? [observation] : [];
  });
  return [...fromChecks, ...fromAttestations];
}

function result(ctx: Context) {
  const { report, run } = ctx;
  const observationList = observations(ctx);
  const risks = waivedChecks(report).flatMap((c) => {
    const risk = waiverRisk(ctx, c);
    return risk ? [risk] : [];
  });
  const inventory = [...ctx.items.values()];
  return {
    uuid: nameUuid(`bulwark:run:${run.id}:${report.standard.id}:result`),
    title: `${report.standard.title}: run ${run.id}`,
    description: `Bulwark's automated checks and recorded attestations against ${report.standard.title} ${report.standard.version}, run ${run.id} (${run.trigger}) with baseline ${run.baseline.name} version ${run.baseline.version}.`,
    start: iso(run.startedAt),
    end: iso(run.finishedAt),
    props: [
      prop('run-id', run.id),
      prop('trigger', run.trigger),
      prop('baseline', `${run.baseline.name} v${run.baseline.version}`),
      prop('score', report.score === null ? 'n/a' : report.score.toFixed(4)),
    ],
    'local-definitions': {
      components: [
        {
          uuid: TOOL_UUID,
          type: 'software',
          title: 'Bulwark compliance engine',
          description:
            'The platform component that gathers facts from the live fleet and runs the automated checks.',
          status: { state: 'operational' },
        },
      ],
      ...(inventory.length > 0 ? { 'inventory-items': inventory } : {}),
    },
    'reviewed-controls': reviewedControls(ctx),
    ...(observationList.length > 0 ? { observations: observationList } : {}),
    ...(risks.length > 0 ? { risks } : {}),
    ...(report.clauses.length > 0 ? { findings: report.clauses.map((c) => finding(ctx, c)) } : {}),
  };
}

/** The report as an OSCAL 1.0.6 assessment-results document (a plain JSON object). */
export function toOscal(report: StandardReport, run: RunResult): object {
  const ctx: Context = {
    report,
    run,
    tokens: clauseTokens(report.clauses),
    collected: iso(run.finishedAt),
    items: new Map(),
    resources: new Map(),
  };
  const planUuid = nameUuid(`bulwark:assessment-plan:${report.standard.id}`);
  ctx.resources.set(planUuid, {
    uuid: planUuid,
    title: `Bulwark assessment plan for ${report.standard.title}`,
    description:
      'Bulwark assesses continuously against its framework mapping (compliance/frameworks/<standard>.json, or the operator override); there is no separate assessment plan document.',
    props: [prop('framework', report.standard.id)],
  });
  // Built before the back matter: the observations gather the resources they cite.
  const results = [result(ctx)];
  return {
    'assessment-results': {
      uuid: nameUuid(`bulwark:run:${run.id}:${report.standard.id}:assessment-results`),
      metadata: {
        title: `Bulwark compliance assessment results: ${report.standard.title}`,
        'last-modified': iso(report.generatedAt),
        version: text(`${report.standard.version} run ${run.id}`),
        'oscal-version': OSCAL_VERSION,
        props: [prop('standard', report.standard.id), prop('standard-version', report.standard.version)],
      },
      // OSCAL requires an assessment plan; Bulwark has none apart from its framework mapping, which the
      // back-matter resource this points to describes.
      'import-ap': { href: `#${planUuid}` },
      results,
      'back-matter': { resources: [...ctx.resources.values()] },
    },
  };
}
