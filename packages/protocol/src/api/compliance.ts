/**
 * Compliance (docs/compliance.md): runs of the automated checks against the live fleet, their results per
 * check, clause and standard (ETSI EN 303 645, IEC 62443-4-2 and 3-3, NIST SP 800-82, ISO/SAE 21434, GDPR),
 * reports in HTML, JSON and OSCAL, attestations of manual clauses with evidence files, and waivers of failing
 * checks. The shapes mirror the server's compliance model.
 *
 * @example
 * ```ts
 * import { api } from '@bulwark/protocol';
 * const run = api.compliance.runCompliance.response[200].parse(await res.json());
 * const etsi = run.standards.find((s) => s.id === 'etsi-en-303-645'); // { score, counts, clauses }
 * ```
 */
import { z } from 'zod';
import { frameworkId } from '../baseline.ts';
import { contract, raw } from './contract.ts';
import { epochMs, severity } from './shared.ts';

const tags = ['compliance'] as const;

/** A built-in standard or a framework added in the server's compliance.frameworksDir. */
export const standardId = frameworkId;
export const checkStatuses = ['pass', 'fail', 'error'] as const;
export const clauseStatuses = ['pass', 'fail', 'manual', 'not_applicable', 'error'] as const;
export const clauseModes = ['automated', 'manual', 'not_applicable'] as const;
export const runTriggers = ['manual', 'schedule', 'baseline'] as const;
export const reportFormats = ['html', 'json', 'oscal'] as const;

const checkId = z.string().max(64).describe('an automated check id, e.g. pki.ca-expiry');
const clausesByStandard = z
  .record(standardId, z.array(z.string()))
  .describe('clause ids per standard the check evidences');

export const evidence = z.object({
  kind: z.string().describe('device, certificate, account, listener, setting, zone, …'),
  id: z.string().describe("the object's id (device id, serial, username, listener name, baseline path …)"),
  detail: z.string(),
});

export const waiverStatuses = ['pending', 'approved'] as const;

export const waiverView = z.object({
  id: z.string(),
  check: checkId,
  reason: z.string(),
  approver: z.string().describe('the user named to approve it'),
  status: z
    .enum(waiverStatuses)
    .describe('pending: awaiting the approver (not in force); approved: in force until it expires'),
  approvedAt: epochMs.nullable(),
  expiresAt: epochMs,
  createdAt: epochMs,
  createdBy: z.string(),
});

export const waiverRecord = waiverView.extend({
  approvedBy: z
    .string()
    .nullable()
    .describe('the actor who approved it (the approver, a session or a token)'),
  revokedAt: epochMs.nullable(),
});

/** Evidence files per attestation, and the base64 length of one file (2 MiB decoded, padded). */
export const MAX_EVIDENCE_FILES = 10;
export const MAX_EVIDENCE_BASE64_LENGTH = 2_796_208;

/** Lists of attestations and waivers: `limit` (newest first). */
const listQuery = z.object({
  includeRevoked: z.enum(['true', 'false']).default('false'),
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe('at most this many, newest first'),
});

export const evidenceFileView = z.object({
  name: z.string(),
  sha256: z.string(),
  size: z.number().int(),
  mediaType: z.string(),
});

export const attestationView = z.object({
  id: z.string(),
  standard: standardId,
  clause: z.string(),
  statement: z.string(),
  owner: z.string(),
  files: z.array(evidenceFileView),
  reviewAt: epochMs,
  expiresAt: epochMs,
  createdAt: epochMs,
  createdBy: z.string(),
});

export const attestationRecord = attestationView.extend({ revokedAt: epochMs.nullable() });

export const checkResult = z.object({
  id: checkId,
  title: z.string(),
  severity,
  rationale: z.string(),
  remediation: z.string(),
  needs: z.enum(['operator']).nullable().describe('operator: passes once the operator supplies something'),
  status: z.enum(checkStatuses),
  summary: z.string(),
  examined: z.number().int(),
  evidence: z.array(evidence).describe('failing objects, at most 200 (+1 saying how many more)'),
  waiver: waiverView.nullable().describe('a waiver in force for this failing check at the run'),
  clauses: clausesByStandard,
});

export const clauseResult = z.object({
  id: z.string(),
  title: z.string(),
  group: z.string(),
  level: z.number().int().nullable().describe('IEC 62443: the lowest security level it belongs to'),
  mode: z.enum(clauseModes),
  status: z.enum(clauseStatuses),
  waived: z.boolean().describe('passes only because failing checks are waived'),
  checks: z.array(checkId),
  note: z.string().nullable(),
  guidance: z.string().nullable(),
  justification: z.object({ text: z.string(), source: z.enum(['framework', 'baseline']) }).nullable(),
  attestation: attestationView.extend({ expired: z.boolean() }).nullable(),
});

const clauseCounts = z.object({
  pass: z.number().int(),
  fail: z.number().int(),
  manual: z.number().int(),
  not_applicable: z.number().int(),
  error: z.number().int(),
  waived: z.number().int(),
});

export const standardResult = z.object({
  id: standardId,
  title: z.string(),
  version: z.string(),
  score: z
    .number()
    .nullable()
    .describe('applicable clauses satisfied ÷ applicable clauses (0..1); null: none applicable'),
  counts: clauseCounts,
  clauses: z.array(clauseResult).describe('failing (fail, error) first, then manual, pass, not applicable'),
});

const runBaseline = z.object({ version: z.number().int(), name: z.string() });

export const runResult = z.object({
  id: z.string(),
  trigger: z.enum(runTriggers),
  startedAt: epochMs,
  finishedAt: epochMs,
  createdBy: z.string(),
  baseline: runBaseline,
  checks: z.array(checkResult),
  standards: z.array(standardResult),
});

export const trendPoint = z.object({
  runId: z.string(),
  finishedAt: epochMs,
  scores: z.record(standardId, z.number().nullable()),
  failing: z.number().int().describe('checks failing (not waived) in the run'),
});

export const runSummary = z.object({
  id: z.string(),
  trigger: z.enum(runTriggers),
  startedAt: epochMs,
  finishedAt: epochMs,
  createdBy: z.string(),
  baseline: runBaseline,
  counts: z
    .object({
      pass: z.number().int(),
      fail: z.number().int(),
      error: z.number().int(),
      waived: z.number().int(),
    })
    .describe('checks passing, failing (not waived), in error, failing but waived'),
  scores: z.record(standardId, z.number().nullable()),
  hasResults: z.boolean().describe('false once the run’s results were pruned (only recent runs keep them)'),
});

const runParams = z.object({ id: z.string().max(64) });
const idParams = z.object({ id: z.string().max(64) });

export const runCompliance = contract({
  method: 'POST',
  path: '/api/v1/compliance/runs',
  summary: 'Run every automated check now against the live fleet and the applied baseline',
  tags,
  access: 'compliance:write',
  response: { 200: runResult },
});

export const listRuns = contract({
  method: 'GET',
  path: '/api/v1/compliance/runs',
  summary: 'Recent runs, newest first, with the trend of the scores per standard (oldest first)',
  tags,
  access: 'compliance:read',
  query: z.object({ limit: z.coerce.number().int().min(1).max(500).default(50) }),
  response: { 200: z.object({ runs: z.array(runSummary), trend: z.array(trendPoint) }) },
});

export const getRun = contract({
  method: 'GET',
  path: '/api/v1/compliance/runs/:id',
  summary: 'One run with every check result (evidence included) and every standard, clause by clause',
  tags,
  access: 'compliance:read',
  params: runParams,
  response: { 200: runResult },
});

export const checkDefinition = z.object({
  id: checkId,
  title: z.string(),
  severity,
  rationale: z.string(),
  remediation: z.string(),
  needs: z.enum(['operator']).nullable(),
  reads: z.array(z.string()).describe('the fact sources it reads'),
  clauses: clausesByStandard,
});

export const listChecks = contract({
  method: 'GET',
  path: '/api/v1/compliance/checks',
  summary: 'The automated checks: what each checks, why, how to fix it, and the clauses it evidences',
  tags,
  access: 'compliance:read',
  response: { 200: z.array(checkDefinition) },
});

export const frameworkClause = z.object({
  id: z.string(),
  title: z.string(),
  group: z.string(),
  level: z.number().int().optional(),
  mode: z.enum(clauseModes),
  checks: z.array(checkId).optional(),
  note: z.string().optional(),
  guidance: z.string().optional(),
  justification: z.string().optional(),
});

export const framework = z.object({
  id: standardId,
  title: z.string(),
  version: z.string(),
  clauses: z.array(frameworkClause),
});

export const listStandards = contract({
  method: 'GET',
  path: '/api/v1/compliance/standards',
  summary: 'The standards and how each clause is evidenced: automated (checks), manual, not applicable',
  tags,
  access: 'compliance:read',
  response: { 200: z.array(framework) },
});

export const getReport = contract({
  method: 'GET',
  path: '/api/v1/compliance/reports/:standard',
  summary:
    'A standard’s report for the latest run (or `run`): self-contained HTML, JSON, or OSCAL assessment results',
  tags,
  access: 'compliance:read',
  params: z.object({ standard: standardId }),
  query: z.object({
    format: z.enum(reportFormats).default('html'),
    run: z.string().max(64).optional().describe('a run id; default: the latest run'),
  }),
  response: {
    200: raw(
      'text/html',
      'the report: text/html (format=html) or application/json (format=json, format=oscal), as an attachment',
    ),
  },
});

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;

/**
 * A date-only `YYYY-MM-DD` as the last millisecond of that day in UTC (`2027-03-31` → 2027-03-31T23:59:59.999Z),
 * so an expiry or review date names the last day it still holds; NaN when not a real calendar date.
 *
 * @example
 * ```ts
 * endOfDayUtc('2027-03-31') === Date.UTC(2027, 2, 31, 23, 59, 59, 999);
 * ```
 */
export function endOfDayUtc(value: string): number {
  if (!DATE_ONLY.test(value)) return NaN;
  const start = Date.parse(`${value}T00:00:00Z`);
  if (!Number.isFinite(start) || new Date(start).toISOString().slice(0, 10) !== value) return NaN;
  return start + 86_400_000 - 1;
}

/**
 * A date: epoch milliseconds, an ISO 8601 date-time, or a date-only `YYYY-MM-DD`, which means the END of that
 * day in UTC (23:59:59.999Z).
 */
const dateInput = z
  .union([z.number().int(), z.string().max(40)])
  .describe(
    'epoch milliseconds, an ISO 8601 date-time, or a date YYYY-MM-DD meaning the end of that day in UTC (23:59:59.999Z)',
  )
  .transform((value, ctx) => {
    const ms =
      typeof value === 'number' ? value : DATE_ONLY.test(value) ? endOfDayUtc(value) : Date.parse(value);
    if (!Number.isSafeInteger(ms)) {
      ctx.addIssue({ code: 'custom', message: `"${value}" is not a date (epoch ms or ISO 8601)` });
      return z.NEVER;
    }
    return ms;
  });

export const recordAttestation = contract({
  method: 'POST',
  path: '/api/v1/compliance/attestations',
  summary: 'Attest a manual clause: a statement, its owner, evidence files, a review date and an expiry',
  tags,
  access: 'compliance:write',
  body: z.object({
    standard: standardId,
    clause: z.string().min(1).max(64),
    statement: z.string().min(1).max(4000),
    owner: z.string().min(1).max(200).describe('a person or a team'),
    files: z
      .array(
        z.object({
          name: z.string().min(1).max(255),
          mediaType: z.string().min(3).max(255).describe('e.g. application/pdf'),
          content: z
            .string()
            .max(MAX_EVIDENCE_BASE64_LENGTH)
            .describe('the file, base64 (at most 2 MiB decoded)'),
        }),
      )
      .max(MAX_EVIDENCE_FILES)
      .default([]),
    reviewAt: dateInput,
    expiresAt: dateInput,
  }),
  response: { 201: attestationRecord },
});

export const listAttestations = contract({
  method: 'GET',
  path: '/api/v1/compliance/attestations',
  summary:
    'Attestations of manual clauses, newest first (revoked ones with includeRevoked=true), up to limit',
  tags,
  access: 'compliance:read',
  query: listQuery,
  response: { 200: z.array(attestationRecord) },
});

const revokeBody = z.object({ reason: z.string().min(1).max(1000) });

export const revokeAttestation = contract({
  method: 'DELETE',
  path: '/api/v1/compliance/attestations/:id',
  summary: 'Revoke an attestation (its clause is manual again, or failing if another expired)',
  tags,
  access: 'compliance:write',
  params: idParams,
  body: revokeBody,
  response: { 200: attestationRecord },
});

export const getEvidenceFile = contract({
  method: 'GET',
  path: '/api/v1/compliance/evidence/:sha256',
  summary: 'An evidence file of an attestation, by its sha256, as an attachment of its media type',
  tags,
  access: 'compliance:read',
  params: z.object({ sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'a sha256, 64 hex digits') }),
  response: { 200: raw('application/octet-stream', 'the file, with its stored media type', true) },
});

export const grantWaiver = contract({
  method: 'POST',
  path: '/api/v1/compliance/waivers',
  summary:
    'Ask to waive a failing check until an expiry (at most 365 days): pending until the named approver approves it',
  tags,
  access: 'compliance:write',
  body: z.object({
    check: checkId,
    reason: z.string().min(10).max(2000),
    approver: z
      .string()
      .min(1)
      .max(128)
      .describe(
        'the user who must approve it with POST …/waivers/{id}/approve: enabled, holding compliance:approve, not the one asking',
      ),
    expiresAt: dateInput,
  }),
  response: { 201: waiverRecord },
});

export const approveWaiver = contract({
  method: 'POST',
  path: '/api/v1/compliance/waivers/:id/approve',
  summary:
    'Approve a pending waiver: only the approver it names, signed in (four eyes: not the one who asked)',
  tags,
  access: 'compliance:approve',
  params: idParams,
  response: { 200: waiverRecord },
});

export const listWaivers = contract({
  method: 'GET',
  path: '/api/v1/compliance/waivers',
  summary:
    'Waivers of failing checks, pending and approved, newest first (revoked ones with includeRevoked=true)',
  tags,
  access: 'compliance:read',
  query: listQuery,
  response: { 200: z.array(waiverRecord) },
});

export const revokeWaiver = contract({
  method: 'DELETE',
  path: '/api/v1/compliance/waivers/:id',
  summary: 'Revoke a waiver: its check counts as failing again from the next run',
  tags,
  access: 'compliance:write',
  params: idParams,
  body: revokeBody,
  response: { 200: waiverRecord },
});
