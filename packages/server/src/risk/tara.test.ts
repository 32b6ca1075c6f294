import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { checkIds } from '../compliance/index.ts';
import { evaluateTara } from './tara.ts';
import { TARA_REPORT_CSP, taraHtml } from './tara.html.ts';

const sample = () =>
  parseYaml(
    readFileSync(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url), 'utf8'),
  ) as Record<string, unknown> & {
    threatScenarios: Record<string, unknown>[];
    damageScenarios: Record<string, unknown>[];
  };
const known = new Set<string>(checkIds);
const evaluate = (doc: unknown) => evaluateTara(doc, (id) => known.has(id));

describe('TARA documents', () => {
  it("rates the sample pump controller: each threat's feasibility, impact, risk value and treatment", () => {
    const result = evaluate(sample());
    expect(
      result.threatScenarios.map((t) => [
        t.id,
        t.paths.map((p) => p.detail),
        t.feasibility,
        t.impact,
        t.risk,
      ]),
    ).toEqual([
      ['TS1', ['15 points (Moderate)'], 'medium', 'severe', 4],
      ['TS2', ['exploitability 2.22'], 'medium', 'moderate', 2],
      ['TS3', ['network'], 'high', 'severe', 5],
    ]);
    expect(result.damageScenarios.map((d) => [d.id, d.impact])).toEqual([
      ['DS1', 'severe'],
      ['DS2', 'moderate'],
      ['DS3', 'severe'],
    ]);
    expect(result.assets.map((a) => [a.id, a.risk])).toEqual([
      ['setpoint', 4],
      ['telemetry', 2],
      ['firmware', 5],
    ]);
    expect(result.risks).toEqual({ '1': 0, '2': 1, '3': 0, '4': 1, '5': 1 });
    expect(result.threatScenarios[0]?.treatment).toMatchObject({
      option: 'reduce',
      checks: ['physical.tamper-response'],
    });
  });

  it('takes the most feasible path of a threat and the worst impact of its damage scenarios', () => {
    const doc = sample();
    const ts1 = doc.threatScenarios[0] as { attackPaths: unknown[]; damage: string[] };
    ts1.attackPaths.push({ description: 'over the cloud API', attackVector: 'network' });
    ts1.damage = ['DS2', 'DS1'];
    const [rated] = evaluate(doc).threatScenarios;
    expect(rated).toMatchObject({ feasibility: 'high', impact: 'severe', risk: 5 });
  });

  it('refuses a document with a missing rating, a dangling reference or an unknown value, naming the field', () => {
    const cases: [(doc: ReturnType<typeof sample>) => void, RegExp][] = [
      [
        (d) => ((d.damageScenarios[0] as { impact: object }).impact = {}),
        /damageScenarios\.0\.impact: rate at least one/,
      ],
      [
        (d) => ((d.damageScenarios[1] as { impact: object }).impact = { safety: 'awful' }),
        /damageScenarios\.1\.impact: safety: "awful" is not one of/,
      ],
      [
        (d) => ((d.threatScenarios[0] as { damage: string[] }).damage = ['DS9']),
        /threatScenarios\.0\.damage\.0: DS9 is not a damage scenario/,
      ],
      [
        (d) => ((d.threatScenarios[1] as { asset: string }).asset = 'pump'),
        /threatScenarios\.1\.asset: pump is not an asset/,
      ],
      [
        (d) => ((d.threatScenarios[1] as { property: string }).property = 'availability'),
        /threatScenarios\.1\.property: asset telemetry has no availability property/,
      ],
      [
        (d) =>
          ((d.threatScenarios[1] as { attackPaths: unknown[] }).attackPaths = [
            { description: 'x', cvss: 'CVSS:3.1/AV:N' },
          ]),
        /threatScenarios\.1\.attackPaths\.0\.cvss: CVSS vector "CVSS:3\.1\/AV:N": base metrics AC, PR, UI, S, C, I, A missing/,
      ],
      [
        (d) =>
          ((d.threatScenarios[0] as { attackPaths: unknown[] }).attackPaths = [
            { description: 'x', attackPotential: { equipment: 'Standard' } },
          ]),
        /threatScenarios\.0\.attackPaths\.0\.attackPotential: attack potential: elapsed_time missing/,
      ],
      [
        (d) =>
          ((d.threatScenarios[2] as { attackPaths: unknown[] }).attackPaths = [
            { description: 'x', attackVector: 'network', cvss: 'CVSS:3.1/AV:N' },
          ]),
        /threatScenarios\.2\.attackPaths\.0: rate the path by exactly one of attackPotential, cvss, attackVector/,
      ],
      [
        (d) => ((d.threatScenarios[2] as { treatment: { checks: string[] } }).treatment.checks = ['made.up']),
        /threatScenarios\.2\.treatment\.checks\.0: made\.up is not a compliance check/,
      ],
      [
        (d) => ((d.threatScenarios[2] as { treatment: { option: string } }).treatment.option = 'ignore'),
        /threatScenarios\.2\.treatment\.option: /,
      ],
      [
        (d) => ((d.threatScenarios[1] as { id: string }).id = 'TS1'),
        /threatScenarios\.1\.id: TS1 is used twice/,
      ],
    ];
    for (const [change, message] of cases) {
      const doc = sample();
      change(doc);
      expect(() => evaluate(doc), String(message)).toThrow(message);
    }
  });

  it('reports as one self-contained HTML file: the matrix, then per asset its scenarios, paths, risk and treatment', () => {
    const doc = sample();
    (doc.threatScenarios[0] as { title: string }).title = 'Tampering <script>alert(1)</script>';
    const html = taraHtml(evaluate(doc), Date.UTC(2026, 11, 4));
    expect(html).toContain(`content="${TARA_REPORT_CSP.replaceAll("'", '&#39;')}"`);
    expect(html).not.toMatch(/<script|https?:\/\//);
    expect(html).toContain('Tampering &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toMatch(/<table class="matrix" id="risk-matrix">/);
    // The severe row: TS1 at medium feasibility (risk 4), TS3 at high (risk 5).
    expect(html).toMatch(
      /<th scope="row">severe<\/th><td class="r2"[^>]*>0<\/td><td class="r3"[^>]*>0<\/td><td class="r4"[^>]*>1<br><small>TS1<\/small><\/td><td class="r5"[^>]*>1<br><small>TS3<\/small><\/td>/,
    );
    for (const asset of ['setpoint', 'telemetry', 'firmware']) expect(html).toContain(`id="asset-${asset}"`);
    expect(html).toContain('attack potential: 15 points (Moderate) → medium');
    expect(html).toContain('<code>physical.tamper-response</code>');
  });
});
