import type { CheckResult, ClauseResult, RunResult, TrendPoint } from './model.ts';

/**
 * A run for the report tests (model.ts shapes, no engine): one ETSI-like standard with every clause status,
 * a waived check, an expired and an in-force attestation, a baseline N/A, and evidence naming hostile ids.
 */

export const HOSTILE_ID = '<script>alert(1)</script>';
const DAY = 86_400_000;
export const FIXTURE_NOW = Date.UTC(2026, 11, 4, 2, 0, 0);

function check(partial: Partial<CheckResult> & Pick<CheckResult, 'id' | 'status'>): CheckResult {
  return {
    title: partial.id,
    severity: 'medium',
    rationale: `Why ${partial.id} matters.`,
    remediation: `Fix ${partial.id}.`,
    needs: null,
    summary: partial.status === 'pass' ? 'All good' : 'Something is wrong',
    examined: 3,
    evidence: [],
    waiver: null,
    clauses: {},
    ...partial,
  };
}

function clause(partial: Partial<ClauseResult> & Pick<ClauseResult, 'id' | 'status' | 'mode'>): ClauseResult {
  return {
    title: `Clause ${partial.id}`,
    group: '5.1 Passwords',
    level: null,
    waived: false,
    checks: [],
    note: null,
    guidance: null,
    justification: null,
    attestation: null,
    ...partial,
  };
}

const checks: CheckResult[] = [
  check({
    id: 'devices.not-seen',
    status: 'fail',
    severity: 'high',
    title: 'Devices not seen <b>recently</b>',
    summary: '2 of 3 devices not seen for 30 days',
    evidence: [
      { kind: 'device', id: HOSTILE_ID, detail: 'last seen 2026-10-01 & "never" since' },
      { kind: 'device', id: 'pump-2', detail: 'never seen\nsince enrolment' },
    ],
  }),
  check({
    id: 'net.plaintext-listener',
    status: 'fail',
    severity: 'critical',
    summary: '1 plaintext listener',
    evidence: [{ kind: 'listener', id: 'mqtt-dev', detail: 'tcp on 0.0.0.0:1883' }],
  }),
  check({
    id: 'accounts.dormant',
    status: 'fail',
    severity: 'medium',
    summary: '1 dormant account',
    evidence: [{ kind: 'account', id: 'old-admin', detail: 'last sign-in 2025-01-01' }],
    waiver: {
      id: 'w-1',
      check: 'accounts.dormant',
      reason: 'Break-glass account kept <on purpose>',
      approver: 'carol',
      status: 'approved',
      approvedAt: FIXTURE_NOW - DAY,
      expiresAt: FIXTURE_NOW + 30 * DAY,
      createdAt: FIXTURE_NOW - DAY,
      createdBy: 'alice',
    },
  }),
  check({
    id: 'audit.chain-intact',
    status: 'error',
    severity: 'critical',
    summary: 'audit facts unavailable',
  }),
  check({
    id: 'pki.ca-expiry',
    status: 'pass',
    severity: 'high',
    summary: 'CA valid for 9 years',
    examined: 1,
  }),
  check({ id: 'org.disclosure-contact', status: 'pass', needs: 'operator', examined: 1 }),
];

const attestation = {
  id: 'att-1',
  standard: 'etsi-en-303-645' as const,
  statement: 'Secure development <process> is documented.',
  owner: 'Product security team',
  files: [{ name: 'sdlc.pdf', sha256: 'a'.repeat(64), size: 1234, mediaType: 'application/pdf' }],
  reviewAt: FIXTURE_NOW + 90 * DAY,
  expiresAt: FIXTURE_NOW + 365 * DAY,
  createdAt: FIXTURE_NOW - 10 * DAY,
  createdBy: 'alice',
};

/** Given in framework order (deliberately not status order: the report sorts). */
const clauses: ClauseResult[] = [
  clause({ id: '5.1-1', mode: 'automated', status: 'pass', checks: ['pki.ca-expiry'] }),
  clause({
    id: '5.1-2',
    mode: 'automated',
    status: 'fail',
    checks: ['devices.not-seen', 'pki.ca-expiry'],
    note: 'Devices must report.',
  }),
  clause({
    id: '5.2-1',
    group: '5.2 Vulnerabilities',
    mode: 'automated',
    status: 'pass',
    waived: true,
    checks: ['accounts.dormant'],
  }),
  clause({
    id: '5.2-2',
    group: '5.2 Vulnerabilities',
    mode: 'manual',
    status: 'manual',
    guidance: 'Show the <policy>.',
  }),
  clause({
    id: '5.3-4B',
    group: '5.3 Updates',
    mode: 'automated',
    status: 'error',
    checks: ['audit.chain-intact'],
  }),
  clause({
    id: '5.3-1',
    group: '5.3 Updates',
    mode: 'manual',
    status: 'pass',
    attestation: { ...attestation, clause: '5.3-1', expired: false },
  }),
  clause({
    id: '5.4-1',
    group: '5.4 Storage',
    mode: 'not_applicable',
    status: 'not_applicable',
    justification: { text: 'No <storage>.', source: 'framework' },
  }),
  clause({
    id: 'Art. 5(1)(e)',
    group: '5.4 Storage',
    mode: 'manual',
    status: 'fail',
    attestation: { ...attestation, id: 'att-2', clause: 'Art. 5(1)(e)', expired: true },
  }),
  clause({
    id: 'CR 1.1 RE(1)',
    group: '5.5 Communication',
    mode: 'automated',
    status: 'fail',
    checks: ['net.plaintext-listener'],
  }),
  clause({
    id: '5.5-2',
    group: '5.5 Communication',
    mode: 'not_applicable',
    status: 'not_applicable',
    justification: { text: 'Per baseline.', source: 'baseline' },
  }),
  clause({
    id: '6-1',
    group: '6 Data protection',
    mode: 'automated',
    status: 'pass',
    checks: ['org.disclosure-contact'],
  }),
];

export function fixtureRun(): RunResult {
  return {
    id: 'run-0192',
    trigger: 'manual',
    startedAt: FIXTURE_NOW - 2_000,
    finishedAt: FIXTURE_NOW,
    createdBy: 'alice',
    baseline: { version: 3, name: 'acme-fleet' },
    checks,
    standards: [
      {
        id: 'etsi-en-303-645',
        title: 'ETSI EN 303 645',
        version: 'V3.1.3',
        score: 4 / 9,
        counts: { pass: 4, fail: 3, error: 1, manual: 1, not_applicable: 2, waived: 1 },
        clauses,
      },
    ],
  };
}

/** Earlier runs (newest first, as a store would list them); the fixture run itself is not among them. */
export function fixtureTrend(): TrendPoint[] {
  return [0.6, 0.5, null, 0.4].map((score, i) => ({
    runId: `run-01${90 - i}`,
    finishedAt: FIXTURE_NOW - (i + 1) * DAY,
    scores: { 'etsi-en-303-645': score },
    failing: 2,
  }));
}
