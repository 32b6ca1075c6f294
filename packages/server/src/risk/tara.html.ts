import { escapeHtml as e } from '../compliance/index.ts';
import { badge, list, REPORT_STYLE, reportCsp, riskMatrix } from './report.style.ts';
import type { TaraResult } from './tara.ts';

/**
 * The TARA report (ISO/SAE 21434 clause 15 work products) as one self-contained HTML file: the risk matrix as a
 * picture (threat scenarios counted per cell), then per asset its damage scenarios and threat scenarios with
 * each attack path's feasibility, the risk value and the treatment. No scripts, no external requests; the one
 * <style> block is allowed by its hash (TARA_REPORT_CSP, also a <meta> policy). Every string is escaped.
 */

const STYLE = REPORT_STYLE;

export const TARA_REPORT_CSP = reportCsp(STYLE);

/** Impact rows × feasibility columns, each cell its risk value's colour and the threat scenarios that fall there. */
function matrix(result: TaraResult): string {
  return riskMatrix(
    'Threat scenarios by impact (rows) and attack feasibility (columns); colour: risk value 1-5',
    (impact, f) => {
      const here = result.threatScenarios.filter((t) => t.impact === impact && t.feasibility === f);
      const ids = here.map((t) => t.id).join(', ');
      return `${here.length}${ids ? `<br><small>${e(ids)}</small>` : ''}`;
    },
  );
}

function assetSection(result: TaraResult, asset: TaraResult['assets'][number]): string {
  const damage = result.damageScenarios.filter((d) => d.assets.includes(asset.id));
  const threats = result.threatScenarios.filter((t) => t.asset === asset.id);
  const damageRows = damage
    .map(
      (d) =>
        `<tr><td>${e(d.id)}</td><td>${e(d.title)}</td><td>${Object.entries(d.ratings)
          .map(([c, l]) => `${e(c)}: ${e(l)}`)
          .join('<br>')}</td><td>${e(d.impact)}</td></tr>`,
    )
    .join('');
  const threatRows = threats
    .map(
      (t) =>
        `<tr><td>${e(t.id)}</td><td>${e(t.title)}<br><span class="muted">${e(t.stride)} on ${e(t.property)}; leads to ${e(t.damage.join(', '))}</span></td><td>${t.paths
          .map(
            (p) =>
              `${e(p.description)}<br><span class="muted">${e(p.method)}: ${e(p.detail)} → ${e(p.feasibility)}</span>`,
          )
          .join(
            '<hr>',
          )}</td><td>${e(t.feasibility)}</td><td>${e(t.impact)}</td><td>${badge(t.risk)}</td><td><b>${e(t.treatment.option)}</b>${list(t.treatment.controls)}${t.treatment.checks.length ? `checks: ${t.treatment.checks.map((c) => `<code>${e(c)}</code>`).join(', ')}` : ''}${t.treatment.goal ? `<br>goal: ${e(t.treatment.goal)}` : ''}${t.treatment.claim ? `<br>claim: ${e(t.treatment.claim)}` : ''}</td></tr>`,
    )
    .join('');
  return `<section class="asset" id="asset-${e(asset.id)}"><h3>${e(asset.name)} <span class="muted">(${e(asset.id)}; owner ${e(asset.owner)}; ${e(asset.properties.join(', '))})</span> ${asset.risk === null ? '' : badge(asset.risk)}</h3>
<h4>Damage scenarios</h4>${damage.length ? `<table><tr><th>id</th><th>damage scenario</th><th>impact ratings</th><th>impact</th></tr>${damageRows}</table>` : '<p class="muted">none</p>'}
<h4>Threat scenarios</h4>${threats.length ? `<table><tr><th>id</th><th>threat scenario</th><th>attack paths</th><th>feasibility</th><th>impact</th><th>risk</th><th>treatment</th></tr>${threatRows}</table>` : '<p class="muted">none</p>'}</section>`;
}

/** The whole report. */
export function taraHtml(result: TaraResult, generatedAt: number): string {
  const counts = Object.entries(result.risks)
    .map(([risk, n]) => `<li>${badge(Number(risk))} ${n}</li>`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${e(TARA_REPORT_CSP)}"><title>TARA: ${e(result.item)}</title><style>${STYLE}</style></head><body>
<h1>TARA: ${e(result.item)}</h1><p class="muted">ISO/SAE 21434 clause 15 work products; generated ${e(new Date(generatedAt).toISOString())}; risk matrix: Annex H example</p>
${result.description ? `<p>${e(result.description)}</p>` : ''}
<h2>Risk</h2>${matrix(result)}<ul class="counts">${counts}</ul>
<h2>Assets</h2>${result.assets.map((a) => assetSection(result, a)).join('\n')}
</body></html>
`;
}
