import { describe, expect, it } from 'vitest';
import {
  feasibilityFromAttackPotential,
  feasibilityFromAttackVector,
  feasibilityFromCvss,
  feasibilityLevels,
  impactLevels,
  impactOf,
  riskValue,
} from './tara-method.ts';

const easy = {
  elapsed_time: '<= 1 day',
  specialist_expertise: 'Layman',
  knowledge_of_item_or_component: 'Public',
  window_of_opportunity: 'Unlimited',
  equipment: 'Standard',
};

describe('TARA rating rules (ISO/SAE 21434 clause 15, Annexes F-H)', () => {
  it('rates impact as the worst of the categories rated, and refuses unknown ones by name', () => {
    expect(impactOf({ safety: 'moderate', financial: 'major', privacy: 'negligible' })).toBe('major');
    expect(impactOf({ operational: 'severe' })).toBe('severe');
    expect(() => impactOf({})).toThrow(/^rate at least one of safety, financial, operational, privacy/);
    expect(() => impactOf({ reputation: 'major' })).toThrow(/^reputation: not an impact category/);
    expect(() => impactOf({ safety: 'bad' })).toThrow(
      /^safety: "bad" is not one of severe, major, moderate, negligible/,
    );
  });

  it('sums the attack potential factors and bands them as ISO/IEC 18045 does', () => {
    expect(feasibilityFromAttackPotential(easy)).toEqual({
      points: 0,
      category: 'Basic',
      feasibility: 'high',
    });
    // 4 + 6 + 3 + 1 + 0 = 14: Moderate, medium feasibility.
    expect(
      feasibilityFromAttackPotential({
        ...easy,
        elapsed_time: '<= 1 month',
        specialist_expertise: 'Expert',
        knowledge_of_item_or_component: 'Restricted',
        window_of_opportunity: 'Easy',
      }),
    ).toEqual({ points: 14, category: 'Moderate', feasibility: 'medium' });
    // 19 + 8 + 11 + 10 + 9 = 57: Beyond High.
    expect(
      feasibilityFromAttackPotential({
        elapsed_time: '> 6 months',
        specialist_expertise: 'Multiple experts',
        knowledge_of_item_or_component: 'Strictly confidential',
        window_of_opportunity: 'Difficult',
        equipment: 'Multiple bespoke',
      }),
    ).toMatchObject({ points: 57, feasibility: 'very low' });
    // Band edges: 9 and 10 are high, 13 high, 19 medium, 20 low, 24 low, 25 very low.
    const at = (elapsed: string, expertise: string, knowledge: string, window: string, equipment: string) =>
      feasibilityFromAttackPotential({
        elapsed_time: elapsed,
        specialist_expertise: expertise,
        knowledge_of_item_or_component: knowledge,
        window_of_opportunity: window,
        equipment,
      });
    expect(at('<= 1 day', 'Proficient', 'Restricted', 'Easy', 'Standard')).toMatchObject({
      points: 7,
      feasibility: 'high',
    });
    expect(at('<= 1 day', 'Proficient', 'Confidential', 'Unlimited', 'Standard')).toMatchObject({
      points: 10,
      category: 'Enhanced-Basic',
      feasibility: 'high',
    });
    expect(at('<= 6 months', 'Layman', 'Public', 'Unlimited', 'Standard')).toMatchObject({
      points: 17,
      feasibility: 'medium',
    });
    expect(at('<= 6 months', 'Proficient', 'Public', 'Unlimited', 'Standard')).toMatchObject({
      points: 20,
      feasibility: 'low',
    });
    expect(at('<= 6 months', 'Layman', 'Confidential', 'Unlimited', 'Specialized')).toMatchObject({
      points: 28,
      feasibility: 'very low',
    });
  });

  it('refuses a missing, unknown or misspelt factor, naming it and the values it takes', () => {
    const { equipment: _left, ...missing } = easy;
    expect(() => feasibilityFromAttackPotential(missing)).toThrow(
      /attack potential: equipment missing \(Standard, Specialized, Bespoke, Multiple bespoke\)/,
    );
    expect(() => feasibilityFromAttackPotential({ ...easy, equipment: 'laser' })).toThrow(
      /equipment "laser" is not one of Standard, Specialized, Bespoke, Multiple bespoke/,
    );
    expect(() => feasibilityFromAttackPotential({ ...easy, luck: 'high' })).toThrow(/luck is not a factor/);
    // Names every object inherits are neither factors nor values.
    expect(() => feasibilityFromAttackPotential({ ...easy, toString: 'x' })).toThrow(
      /toString is not a factor/,
    );
    expect(() => feasibilityFromAttackPotential({ ...easy, equipment: 'constructor' })).toThrow(
      /equipment "constructor" is not one of/,
    );
  });

  it('rates feasibility by CVSS 3.x exploitability and by attack vector', () => {
    expect(feasibilityFromCvss('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H')).toEqual({
      exploitability: 3.89,
      feasibility: 'high',
    });
    // 8.22 × 0.62 × 0.77 × 0.62 × 0.85 = 2.07: medium.
    expect(feasibilityFromCvss('CVSS:3.1/AV:A/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H')).toEqual({
      exploitability: 2.07,
      feasibility: 'medium',
    });
    // Scope changed: PR:L weighs 0.68. 8.22 × 0.55 × 0.44 × 0.68 × 0.62 = 0.84: very low.
    expect(feasibilityFromCvss('CVSS:3.1/AV:L/AC:H/PR:L/UI:R/S:C/C:H/I:H/A:H')).toEqual({
      exploitability: 0.84,
      feasibility: 'very low',
    });
    expect(() =>
      feasibilityFromCvss('CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N'),
    ).toThrow(/needs a CVSS 3\.x vector/);
    expect(() => feasibilityFromCvss('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/MAV:P')).toThrow(
      /base metrics only: MAV:P would not change its exploitability/,
    );
    expect(['network', 'adjacent', 'local', 'physical'].map(feasibilityFromAttackVector)).toEqual([
      'high',
      'medium',
      'low',
      'very low',
    ]);
    expect(() => feasibilityFromAttackVector('satellite')).toThrow(/attack vector "satellite" is not one of/);
  });

  it('gives the risk matrix of Annex H', () => {
    const matrix = impactLevels.map((impact) => feasibilityLevels.map((f) => riskValue(impact, f)));
    expect(matrix).toEqual([
      [2, 3, 4, 5],
      [1, 2, 3, 4],
      [1, 2, 2, 3],
      [1, 1, 1, 1],
    ]);
  });

  it('rates a pump controller with a maintenance port, cloud telemetry and OTA', () => {
    // Damage scenarios with their impact ratings, threats with their attack paths' feasibility.
    const scenarios = [
      {
        threat: 'tampering with the dosing set-point over the local maintenance port',
        impact: impactOf({ safety: 'severe', operational: 'major' }),
        feasibility: feasibilityFromAttackPotential({
          elapsed_time: '<= 1 week',
          specialist_expertise: 'Proficient',
          knowledge_of_item_or_component: 'Restricted',
          window_of_opportunity: 'Moderate',
          equipment: 'Specialized',
        }).feasibility, // 1 + 3 + 3 + 4 + 4 = 15: medium
      },
      {
        threat: 'spoofing the telemetry endpoint to read flow data',
        impact: impactOf({ privacy: 'moderate', financial: 'negligible' }),
        feasibility: feasibilityFromCvss('CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N').feasibility,
      },
      {
        threat: 'installing a rolled-back, vulnerable firmware image over OTA',
        impact: impactOf({ safety: 'major', operational: 'severe' }),
        feasibility: feasibilityFromAttackVector('network'),
      },
    ];
    expect(scenarios.map((s) => [s.impact, s.feasibility, riskValue(s.impact, s.feasibility)])).toEqual([
      ['severe', 'medium', 4],
      ['moderate', 'medium', 2],
      ['severe', 'high', 5],
    ]);
  });
});
