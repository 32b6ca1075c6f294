import { describe, expect, it } from 'vitest';
import { loadFrameworks, securityLevelRequirements } from '../frameworks.ts';
import type { SecurityLevelRequirement } from '../model.ts';
import { achievedLevel, reachesOtherDevices, zoneTarget } from './access.ts';
import {
  FIXTURE_NOW as now,
  failingChecks,
  healthyBaseline,
  healthyFacts,
  runCatalog,
  securityLevelsFixture,
} from './fixtures.ts';
import { checkCatalog } from './index.ts';
import type { CheckInput, CheckOutcome } from './types.ts';
import { humanDuration } from './util.ts';

type Results = CheckInput['results'];

const outcome = (
  status: 'pass' | 'fail' | 'error',
): Omit<CheckOutcome, 'status'> & { status: typeof status } => ({
  status,
  summary: status,
  examined: 1,
  evidence: [],
});

/** Every check of the fixture's levels passing, except those given. */
function results(failing: Record<string, 'fail' | 'error'> = {}): Results {
  const ids = new Set(securityLevelsFixture.flatMap((l) => l.checks));
  return new Map([...ids].map((id) => [id, outcome(failing[id] ?? 'pass')]));
}

const securityLevelCheck = checkCatalog.find((c) => c.id === 'zones.security-level');

function runSecurityLevel(input: { results: Results; securityLevels?: readonly SecurityLevelRequirement[] }) {
  if (!securityLevelCheck) throw new Error('zones.security-level missing');
  const baseline = healthyBaseline();
  baseline.zones.targets = { plant: 3 };
  return securityLevelCheck.run({
    facts: healthyFacts(now),
    baseline,
    now,
    results: input.results,
    securityLevels: input.securityLevels ?? securityLevelsFixture,
  });
}

describe('IEC 62443 security levels', () => {
  it('achieves the highest level whose checks all pass', () => {
    const levels = securityLevelsFixture;
    expect(achievedLevel({ results: results(), securityLevels: levels }).achieved).toBe(4);
    expect(
      achievedLevel({ results: results({ 'pki.shared-keys': 'fail' }), securityLevels: levels }).achieved,
    ).toBe(3);
    expect(
      achievedLevel({ results: results({ 'audit.exported': 'fail' }), securityLevels: levels }).achieved,
    ).toBe(2);
    expect(
      achievedLevel({ results: results({ 'net.plaintext-listener': 'error' }), securityLevels: levels })
        .achieved,
    ).toBe(0);
  });

  it('counts a check without a result, or in error, as not passed', () => {
    const partial: Results = new Map([['net.plaintext-listener', outcome('pass')]]);
    expect(achievedLevel({ results: partial, securityLevels: securityLevelsFixture }).achieved).toBe(0);
  });

  it('accumulates lower levels even when a level lists only its own checks', () => {
    const own: SecurityLevelRequirement[] = [
      { level: 1, checks: ['net.plaintext-listener'] },
      { level: 2, checks: ['accounts.privileged-second-factor'] },
    ];
    const r = results({ 'net.plaintext-listener': 'fail' });
    const { achieved, blocking } = achievedLevel({ results: r, securityLevels: own });
    expect(achieved).toBe(0);
    expect(blocking(2)).toEqual(['net.plaintext-listener']);
  });

  it('takes the target from the baseline, else the higher of the default and the zone level', () => {
    const b = healthyBaseline();
    b.zones.defaultTarget = 2;
    b.zones.targets = { plant: 1 };
    expect(zoneTarget(b, { name: 'plant', securityLevel: 3 })).toBe(1);
    expect(zoneTarget(b, { name: 'office', securityLevel: 3 })).toBe(3);
    expect(zoneTarget(b, { name: 'office', securityLevel: 1 })).toBe(2);
    expect(zoneTarget(b, { name: 'unknown' })).toBe(2);
  });

  it('fails each zone below its target, naming target, achieved level and the blocking checks', () => {
    const outcome = runSecurityLevel({
      results: results({ 'audit.exported': 'fail', 'pki.shared-keys': 'fail' }),
    });
    expect(outcome.status).toBe('fail');
    expect(outcome.examined).toBe(2);
    expect(outcome.evidence).toEqual([
      { kind: 'zone', id: 'plant', detail: 'target SL 3, achieved SL 2: blocked by audit.exported' },
    ]);
  });

  it('passes when every zone reaches its target', () => {
    const outcome = runSecurityLevel({ results: results({ 'pki.shared-keys': 'fail' }) });
    expect(outcome.status).toBe('pass');
    expect(outcome.summary).toContain('SL 3');
  });

  it('fails every zone when level 1 is not met', () => {
    const outcome = runSecurityLevel({ results: results({ 'net.unauthenticated-listener': 'fail' }) });
    expect(outcome.evidence.map((e) => e.id)).toEqual(['plant', 'office']);
    expect(outcome.evidence[1]?.detail).toBe(
      'target SL 1, achieved SL 0: blocked by net.unauthenticated-listener',
    );
  });
});

describe('topic filters reaching other devices', () => {
  it.each([
    ['#', true],
    ['+/#', true],
    ['devices/+/telemetry', true],
    ['devices/#', true],
    ['+/+/commands/#', true],
    ['devices/${device.id}/#', false],
    ['+/${device.id}/telemetry', false],
    ['devices/sensor-1/telemetry', false],
    ['apps/dashboard/#', false],
    ['zones/plant/#', false],
    ['+', false],
    ['devices', false],
  ])('%s → %s', (topic, reaches) => {
    expect(reachesOtherDevices(topic)).toBe(reaches);
  });
});

describe('durations for people', () => {
  it.each([
    [14 * 86_400_000, '14 days'],
    [86_400_000, '1 day'],
    [12 * 3_600_000, '12 hours'],
    [30 * 60_000, '30 minutes'],
    [1000, '1 second'],
    [1500, '1.5 seconds'],
    [500, '500 ms'],
    [90 * 60_000, '90 minutes'],
    [400 * 86_400_000, '400 days'],
    [36 * 3_600_000, '36 hours'],
    [86_400_000 + 60_000, '1 day'],
  ])('%d ms → %s', (ms, text) => {
    expect(humanDuration(ms)).toBe(text);
  });
});

describe('with the shipped IEC 62443-3-3 framework', () => {
  const levels = securityLevelRequirements(loadFrameworks());

  it('the healthy fleet reaches security level 4 in every zone', () => {
    const outcomes = runCatalog({
      facts: healthyFacts(now),
      baseline: healthyBaseline(),
      now,
      securityLevels: levels,
    });
    expect(outcomes.get('zones.security-level')?.summary).toContain('measured SL 4');
    expect(failingChecks(outcomes)).toEqual([]);
  });

  it('a plaintext listener drops every zone below level 1', () => {
    const facts = healthyFacts(now);
    facts.listeners.push({
      name: 'mqtt-dev',
      port: 1883,
      transport: 'tcp',
      authentication: 'none',
      minTlsVersion: null,
    });
    const outcomes = runCatalog({ facts, baseline: healthyBaseline(), now, securityLevels: levels });
    const level = outcomes.get('zones.security-level');
    expect(level?.status).toBe('fail');
    expect(level?.evidence.map((e) => e.id)).toEqual(['plant', 'office']);
    expect(level?.evidence[0]?.detail).toMatch(
      /^target SL 2, achieved SL 0: blocked by .*net\.plaintext-listener/,
    );
  });
});
