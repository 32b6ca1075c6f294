import { describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { buildStandardReport } from './report.ts';
import { FIXTURE_NOW, fixtureRun, fixtureTrend } from './report.fixture.ts';

describe('buildStandardReport', () => {
  const report = buildStandardReport(fixtureRun(), 'etsi-en-303-645', fixtureTrend());

  it('lists failing clauses first, then error, manual, pass, not applicable, in the standard order within each', () => {
    expect(report.clauses.map((c) => `${c.status}:${c.id}`)).toEqual([
      'fail:5.1-2',
      'fail:Art. 5(1)(e)',
      'fail:CR 1.1 RE(1)',
      'error:5.3-4B',
      'manual:5.2-2',
      'pass:5.1-1',
      'pass:5.2-1',
      'pass:5.3-1',
      'pass:6-1',
      'not_applicable:5.4-1',
      'not_applicable:5.5-2',
    ]);
  });

  it('carries the score, counts, standard, run and baseline', () => {
    expect(report.score).toBeCloseTo(4 / 9);
    expect(report.counts).toEqual({ pass: 4, fail: 3, error: 1, manual: 1, not_applicable: 2, waived: 1 });
    expect(report.standard).toEqual({ id: 'etsi-en-303-645', title: 'ETSI EN 303 645', version: 'V3.1.3' });
    expect(report.run).toMatchObject({
      id: 'run-0192',
      trigger: 'manual',
      baseline: { name: 'acme-fleet', version: 3 },
    });
    expect(report.generatedAt).toBeGreaterThan(0);
  });

  it('puts each clause’s check results inline, with evidence and waiver', () => {
    const failing = report.clauses.find((c) => c.id === '5.1-2');
    expect(failing?.checks.map((c) => [c.id, c.status])).toEqual([
      ['devices.not-seen', 'fail'],
      ['pki.ca-expiry', 'pass'],
    ]);
    expect(failing?.checks[0]?.evidence).toHaveLength(2);
    const waived = report.clauses.find((c) => c.id === '5.2-1');
    expect(waived?.waived).toBe(true);
    expect(waived?.checks[0]?.waiver?.approver).toBe('carol');
    const na = report.clauses.find((c) => c.id === '5.5-2');
    expect(na?.justification).toEqual({ text: 'Per baseline.', source: 'baseline' });
    expect(report.clauses.find((c) => c.id === '5.3-1')?.attestation?.owner).toBe('Product security team');
  });

  it('summarises the standard’s checks failing first, by severity, with the clauses each evidences', () => {
    expect(report.checks.map((c) => c.id)).toEqual([
      'net.plaintext-listener',
      'devices.not-seen',
      'accounts.dormant',
      'audit.chain-intact',
      'pki.ca-expiry',
      'org.disclosure-contact',
    ]);
    expect(report.checks.find((c) => c.id === 'pki.ca-expiry')?.clauses).toEqual(['5.1-2', '5.1-1']);
    expect(report.checks.find((c) => c.id === 'accounts.dormant')?.waived).toBe(true);
  });

  it('counts failing checks by severity without the waived ones, and clause statuses per group', () => {
    expect(report.failingBySeverity).toEqual({ critical: 1, high: 1, medium: 0, low: 0 });
    expect(report.groups.map((g) => g.name)).toEqual([
      '5.1 Passwords',
      '5.2 Vulnerabilities',
      '5.3 Updates',
      '5.4 Storage',
      '5.5 Communication',
      '6 Data protection',
    ]);
    expect(report.groups.find((g) => g.name === '5.4 Storage')?.counts).toEqual({
      fail: 1,
      error: 0,
      manual: 0,
      pass: 0,
      not_applicable: 1,
    });
  });

  it('gives this standard’s trend oldest first, the reported run included', () => {
    expect(report.trend.map((p) => [p.runId, p.score])).toEqual([
      ['run-0187', 0.4],
      ['run-0188', null],
      ['run-0189', 0.5],
      ['run-0190', 0.6],
      ['run-0192', 4 / 9],
    ]);
    expect(report.trend.at(-1)?.finishedAt).toBe(FIXTURE_NOW);
    const withRun = buildStandardReport(fixtureRun(), 'etsi-en-303-645', [
      { runId: 'run-0192', finishedAt: FIXTURE_NOW, scores: { 'etsi-en-303-645': 4 / 9 }, failing: 3 },
    ]);
    expect(withRun.trend).toHaveLength(1);
  });

  it('refuses a standard the run has no results for', () => {
    expect(() => buildStandardReport(fixtureRun(), 'gdpr', [])).toThrow(BulwarkError);
  });
});
