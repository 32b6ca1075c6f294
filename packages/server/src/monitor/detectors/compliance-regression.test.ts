import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../doors.ts';
import type { Clear, DetectorContext, Raise } from './detector.ts';
import { complianceRegression } from './fleet.ts';
import { createDetectors } from './index.ts';

function entry(e: Pick<AuditEntry, 'type' | 'data'> & { ts: number }): AuditEntry {
  return {
    seq: 1,
    actor: 'system',
    subject: 'check:pki.ca-expiry',
    prevHash: '',
    hash: '',
    ...e,
  } as AuditEntry;
}

function sink() {
  const raised: Raise[] = [];
  const cleared: Clear[] = [];
  const ctx = {
    raise: (r: Raise) => raised.push(r),
    clear: (c: Clear) => cleared.push(c),
  } as unknown as DetectorContext;
  return { raised, cleared, ctx };
}

const regressed = (severity: 'critical' | 'high' | 'medium' | 'low') =>
  entry({
    type: 'compliance.check_regressed',
    ts: 1_000,
    data: {
      runId: 'cr_2',
      check: 'pki.ca-expiry',
      title: 'CA certificates are renewed well before they expire',
      severity,
      summary: '1 of 1 CA certificates expires within 180 days',
      clauses: { 'etsi-en-303-645': ['5.5-1'] },
      evidence: 1,
    },
  });

describe('the compliance_regression detector', () => {
  it('is one of the built-in detectors', () => {
    expect(createDetectors(0).list.map((d) => d.name)).toContain('compliance_regression');
  });

  it('raises an alert about the check with its severity, resolved when the check recovers', () => {
    const { raised, cleared, ctx } = sink();
    complianceRegression.onEvent?.(regressed('critical'), ctx);
    expect(raised).toEqual([
      expect.objectContaining({
        detector: 'compliance_regression',
        subject: 'check:pki.ca-expiry',
        deviceId: null,
        severity: 'critical',
        at: 1_000,
        evidence: {
          runId: 'cr_2',
          check: 'pki.ca-expiry',
          summary: '1 of 1 CA certificates expires within 180 days',
          evidence: 1,
          clauses: { 'etsi-en-303-645': ['5.5-1'] },
        },
      }),
    ]);
    complianceRegression.onEvent?.(
      entry({
        type: 'compliance.check_recovered',
        ts: 2_000,
        data: { runId: 'cr_3', check: 'pki.ca-expiry', title: 'CA certificates are renewed' },
      }),
      ctx,
    );
    expect(cleared).toEqual([
      {
        detector: 'compliance_regression',
        subject: 'check:pki.ca-expiry',
        resolution: 'check passes again (run cr_3)',
      },
    ]);
  });

  it('keeps the severity of a lower-severity check', () => {
    const { raised, ctx } = sink();
    complianceRegression.onEvent?.(regressed('low'), ctx);
    expect(raised[0]?.severity).toBe('low');
  });
});
