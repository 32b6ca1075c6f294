import { createHash } from 'node:crypto';
import { escapeHtml as e } from '../compliance/index.ts';
import { feasibilityLevels, impactLevels, riskValue } from './tara-method.ts';
import type { TaraResult } from './tara.ts';

/**
 * The TARA report (ISO/SAE 21434 clause 15 work products) as one self-contained HTML file: the risk matrix as a
 * picture (threat scenarios counted per cell), then per asset its damage scenarios and threat scenarios with
 * each attack path's feasibility, the risk value and the treatment. No scripts, no external requests; the one
 * <style> block is allowed by its hash (TARA_REPORT_CSP, also a <meta> policy). Every string is escaped.
 */

const STYLE = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--card:#f6f8fa;
--r1:#1a7f37;--r2:#9a6700;--r3:#bc4c00;--r4:#cf222e;--r5:#a40e26}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--card:#161b22}}
body{margin:0 auto;max-width:72rem;padding:1.5rem;background:var(--bg);color:var(--fg);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.3rem;margin:2rem 0 .75rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:1rem 0 .25rem}.muted{color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:.5rem 0}th,td{border:1px solid var(--line);padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:var(--card)}
table.matrix{width:auto}table.matrix td{text-align:center;min-width:5.5rem;color:#fff;font-weight:600}
.r1{background:var(--r1)}.r2{background:var(--r2)}.r3{background:var(--r3)}.r4{background:var(--r4)}.r5{background:var(--r5)}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;color:#fff;font-size:.8rem;font-weight:600;white-space:nowrap}
ul{margin:.2rem 0;padding-left:1.2rem}`;

export const TARA_REPORT_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'`;

const badge = (risk: number) => `<span class="badge r${risk}">risk ${risk}</span>`;
const list = (items: string[]) =>
  items.length === 0
    ? '<span class="muted">none</span>'
    : `<ul>${items.map((i) => `<li>${e(i)}</li>`).join('')}</ul>`;

/** Impact rows × feasibility columns, each cell its risk value's colour and the threat scenarios that fall there. */
function matrix(result: TaraResult): string {
  const head = feasibilityLevels.map((f) => `<th scope="col">${e(f)}</th>`).join('');
  const rows = impactLevels
    .map((impact) => {
      const cells = feasibilityLevels
        .map((f) => {
          const here = result.threatScenarios.filter((t) => t.impact === impact && t.feasibility === f);
          const risk = riskValue(impact, f);
          const ids = here.map((t) => t.id).join(', ');
          return `<td class="r${risk}" title="risk ${risk}">${here.length}${ids ? `<br><small>${e(ids)}</small>` : ''}</td>`;
        })
        .join('');
      return `<tr><th scope="row">${e(impact)}</th>${cells}</tr>`;
    })
    .join('');
  return `<table class="matrix" id="risk-matrix"><caption>Threat scenarios by impact (rows) and attack feasibility (columns); colour: risk value 1-5</caption><tr><th></th>${head}</tr>${rows}</table>`;
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
