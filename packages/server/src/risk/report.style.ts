import { createHash } from 'node:crypto';
import { escapeHtml as e } from '../compliance/index.ts';
import { feasibilityLevels, impactLevels, riskValue } from './tara-method.ts';
import type { Feasibility, ImpactLevel } from './tara-method.ts';

/**
 * What the risk reports (the TARA report, the register report) share: the base style (light/dark, tables, the
 * matrix, colour classes r1..r5 for risk values 1-5, badges), the CSP that allows exactly one <style> block by
 * its hash, and the impact × feasibility matrix. Every string is escaped here as in the reports.
 */

export const REPORT_STYLE = `
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

/** A policy that allows nothing but the one <style> block whose text is `style` (for the header and a <meta>). */
export const reportCsp = (style: string): string =>
  `default-src 'none'; style-src 'sha256-${createHash('sha256').update(style).digest('base64')}'`;

/** A risk value (1-5) as a coloured pill. */
export const badge = (risk: number): string => `<span class="badge r${risk}">risk ${risk}</span>`;

/** Strings as a bullet list, or a muted "none". */
export const list = (items: string[]): string =>
  items.length === 0
    ? '<span class="muted">none</span>'
    : `<ul>${items.map((i) => `<li>${e(i)}</li>`).join('')}</ul>`;

/**
 * The risk matrix (id `risk-matrix`): impact rows (severe first) × feasibility columns (very low first), each
 * cell coloured by its risk value; `cell` gives a cell's contents (HTML, already escaped).
 */
export function riskMatrix(
  caption: string,
  cell: (impact: ImpactLevel, feasibility: Feasibility, risk: number) => string,
): string {
  const head = feasibilityLevels.map((f) => `<th scope="col">${e(f)}</th>`).join('');
  const rows = impactLevels
    .map((impact) => {
      const cells = feasibilityLevels
        .map((f) => {
          const risk = riskValue(impact, f);
          return `<td class="r${risk}" title="risk ${risk}">${cell(impact, f, risk)}</td>`;
        })
        .join('');
      return `<tr><th scope="row">${e(impact)}</th>${cells}</tr>`;
    })
    .join('');
  return `<table class="matrix" id="risk-matrix"><caption>${e(caption)}</caption><tr><th></th>${head}</tr>${rows}</table>`;
}
