import { describe, expect, it } from 'vitest';
import { scoreCvss, scoreCvssBatch } from './cvss.ts';

/**
 * CVSS 3.1 against the specification's own equations (FIRST, CVSS v3.1 Specification, section 7 and Appendix A:
 * the weights and Roundup as published), written here independently of the library: every base combination,
 * and a seeded random sample with temporal and environmental metrics. CVSS 4.0 scores come from FIRST's
 * macro-vector tables, which only a calculator carries: checked against FIRST's published figures.
 */

const W = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  PR: { N: [0.85, 0.85], L: [0.62, 0.68], H: [0.27, 0.5] }, // [scope unchanged, scope changed]
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
  E: { X: 1, H: 1, F: 0.97, P: 0.94, U: 0.91 },
  RL: { X: 1, U: 1, W: 0.97, T: 0.96, O: 0.95 },
  RC: { X: 1, C: 1, R: 0.96, U: 0.92 },
  REQ: { X: 1, H: 1.5, M: 1, L: 0.5 },
} as const;

/** Appendix A: the smallest number, to one decimal place, equal to or higher than its input. */
function roundup(value: number): number {
  const int = Math.round(value * 100000);
  return int % 10000 === 0 ? int / 100000 : (Math.floor(int / 10000) + 1) / 10;
}

/** The 3.1 base, temporal and environmental scores of a vector, by the specification's equations. */
function spec31(vector: string): { base: number; temporal: number; environmental: number } {
  const m = Object.fromEntries(
    vector
      .split('/')
      .slice(1)
      .map((p) => p.split(':') as [string, string]),
  );
  const get = (k: string) => m[k] ?? 'X';
  const mod = (k: string) => (get(`M${k}`) === 'X' ? get(k) : get(`M${k}`));
  const w = <T extends Record<string, unknown>>(table: T, k: string) => table[k as keyof T] as number;
  const pr = (value: string, changed: boolean) => W.PR[value as 'N' | 'L' | 'H'][changed ? 1 : 0];
  const changed = get('S') === 'C';
  const iss = 1 - (1 - w(W.CIA, get('C'))) * (1 - w(W.CIA, get('I'))) * (1 - w(W.CIA, get('A')));
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 : 6.42 * iss;
  const exploitability =
    8.22 * w(W.AV, get('AV')) * w(W.AC, get('AC')) * pr(get('PR'), changed) * w(W.UI, get('UI'));
  const base = impact <= 0 ? 0 : roundup(Math.min((changed ? 1.08 : 1) * (impact + exploitability), 10));
  const t = w(W.E, get('E')) * w(W.RL, get('RL')) * w(W.RC, get('RC'));
  const mChanged = mod('S') === 'C';
  const miss = Math.min(
    1 -
      (1 - w(W.REQ, get('CR')) * w(W.CIA, mod('C'))) *
        (1 - w(W.REQ, get('IR')) * w(W.CIA, mod('I'))) *
        (1 - w(W.REQ, get('AR')) * w(W.CIA, mod('A'))),
    0.915,
  );
  const mImpact = mChanged ? 7.52 * (miss - 0.029) - 3.25 * (miss * 0.9731 - 0.02) ** 13 : 6.42 * miss;
  const mExploitability =
    8.22 * w(W.AV, mod('AV')) * w(W.AC, mod('AC')) * pr(mod('PR'), mChanged) * w(W.UI, mod('UI'));
  const environmental =
    mImpact <= 0
      ? 0
      : roundup(roundup(Math.min((mChanged ? 1.08 : 1) * (mImpact + mExploitability), 10)) * t);
  return { base, temporal: roundup(base * t), environmental };
}

const V31 = {
  base: { AV: 'NALP', AC: 'LH', PR: 'NLH', UI: 'NR', S: 'UC', C: 'HLN', I: 'HLN', A: 'HLN' },
  temporal: { E: 'XUPFH', RL: 'XOTWU', RC: 'XURC' },
  environmental: {
    CR: 'XLMH',
    IR: 'XLMH',
    AR: 'XLMH',
    MAV: 'XNALP',
    MAC: 'XLH',
    MPR: 'XNLH',
    MUI: 'XNR',
    MS: 'XUC',
    MC: 'XNLH',
    MI: 'XNLH',
    MA: 'XNLH',
  },
};

/** Every combination of the metrics' values, as `K:V` lists. */
function combinations(metrics: Record<string, string>): string[][] {
  return Object.entries(metrics).reduce<string[][]>(
    (acc, [name, values]) => acc.flatMap((parts) => [...values].map((v) => [...parts, `${name}:${v}`])),
    [[]],
  );
}

/** A deterministic generator (mulberry32), so a failure names a vector that fails again. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomVector(prefix: string, groups: Record<string, string>[], random: () => number): string {
  const parts = groups.flatMap((group) =>
    Object.entries(group)
      .map(([name, values]) => `${name}:${values[Math.floor(random() * values.length)]}`)
      .filter((part) => !part.endsWith(':X')),
  );
  return `${prefix}/${parts.join('/')}`;
}

describe('CVSS scores', () => {
  it('scores all 2,592 CVSS 3.1 base combinations as the specification does', () => {
    const vectors = combinations(V31.base).map((parts) => `CVSS:3.1/${parts.join('/')}`);
    expect(vectors).toHaveLength(2592);
    const differ = vectors.filter((v) => scoreCvss(v).base !== spec31(v).base);
    expect(differ).toEqual([]);
  });

  it('scores 3.1 vectors with temporal and environmental metrics as the specification does', () => {
    const random = seeded(31);
    const differ: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const v = randomVector('CVSS:3.1', [V31.base, V31.temporal, V31.environmental], random);
      const ours = scoreCvss(v);
      const spec = spec31(v);
      const expected = {
        base: spec.base,
        temporal: ours.temporal === null ? null : spec.temporal,
        environmental: ours.environmental === null ? null : spec.environmental,
      };
      if (JSON.stringify(pick(ours)) !== JSON.stringify(expected)) differ.push(v);
    }
    expect(differ).toEqual([]);
  });

  it('gives the well-known figures and names what a score is made of', () => {
    expect(scoreCvss('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H')).toEqual({
      vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
      version: '3.1',
      base: 9.8,
      temporal: null,
      environmental: null,
      score: 9.8,
      severity: 'critical',
      kind: 'base',
    });
    // 3.x metrics in any order; `X` values are accepted and left out of the vector that comes back.
    expect(scoreCvss('CVSS:3.1/A:H/I:H/C:H/S:U/UI:N/PR:N/AC:L/AV:N/E:X').vector).toBe(
      'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
    );
    expect(
      scoreCvss('CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U/CR:X/U:Red'),
    ).toMatchObject({
      vector: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U/U:Red',
      base: 9.3,
      temporal: 8.1,
      environmental: null,
      score: 8.1,
      severity: 'high',
      kind: 'CVSS-BT',
    });
  });

  it("scores CVSS 4.0 vectors as FIRST's 4.0 calculator does", () => {
    // Figures the reference calculators publish with these vectors (FIRST's cvssjs and Red Hat's cvss-v4-calculator
    // READMEs, and the specification's worst case).
    const published: [string, number][] = [
      ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H', 10],
      ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', 9.3],
      ['CVSS:4.0/AV:L/AC:L/AT:P/PR:N/UI:N/VC:L/VI:L/VA:L/SC:H/SI:L/SA:L', 5.1],
      ['CVSS:4.0/AV:P/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:L/SI:L/SA:L', 2.4],
      ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N', 0],
    ];
    expect(published.map(([v]) => scoreCvss(v).score)).toEqual(published.map(([, score]) => score));
  });

  it('refuses a malformed or incomplete vector, an unknown metric or value, naming it', () => {
    const full = 'AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H';
    const cases: [string, RegExp][] = [
      ['AV:N/AC:L', /must start with CVSS:3\.0\/, CVSS:3\.1\/ or CVSS:4\.0\//],
      ['CVSS:2.0/AV:N', /must start with/],
      ['CVSS:3.1/AV:N/AC:L', /base metrics PR, UI, S, C, I, A missing/],
      [`CVSS:3.1/${full.replace('AV:N', 'AV:Q')}`, /AV:Q: AV takes N, A, L, P/],
      [`CVSS:3.1/${full}/ZZ:1`, /ZZ is not a CVSS 3\.1 metric/],
      [`CVSS:3.1/${full}/AV:L`, /AV is given twice/],
      [`CVSS:3.1/${full}/`, /"" is not METRIC:VALUE/],
      [`CVSS:3.1/${full.replace('C:H', 'C:X')}`, /base metric C missing/],
      [
        'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:S/SA:N',
        /SI:S: S \(safety\) is a value of MSI/,
      ],
      ['CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:F', /E:F: E takes A, P, U/],
      // 4.0 §7: any order other than the specification's is invalid.
      ['CVSS:4.0/E:U/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N', /AV is out of order/],
    ];
    for (const [vector, message] of cases) expect(() => scoreCvss(vector), vector).toThrow(message);
  });

  it('scores a batch, each bad vector reported beside the good ones', () => {
    const [good, bad] = scoreCvssBatch(['CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', 'nope']);
    expect(good).toMatchObject({ ok: true, result: { score: 9.8 } });
    expect(bad).toMatchObject({ ok: false, vector: 'nope' });
    expect(bad?.ok === false && bad.error).toMatch(/must start with/);
  });
});

function pick(s: { base: number; temporal: number | null; environmental: number | null }) {
  return { base: s.base, temporal: s.temporal, environmental: s.environmental };
}
