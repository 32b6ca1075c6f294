import { createHash } from 'node:crypto';
import type { Evidence } from './checks/types.ts';
import type { AttestationView, CheckResult, ClauseStatus, WaiverView } from './model.ts';
import {
  clauseStatusOrder,
  severityOrder,
  type ReportClause,
  type ReportGroup,
  type StandardReport,
} from './report.ts';

/**
 * The HTML report: one self-contained file. No scripts, no external requests (fonts, images, CSS); charts are
 * inline SVG; one <style> block, allowed by its hash in HTML_REPORT_CSP (also set as a <meta> policy, so the
 * file keeps it when saved and opened from disk). Every string from the run is escaped: evidence names device
 * ids, usernames and topics that devices and users chose.
 */

const STYLE = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--card:#f6f8fa;
--pass:#1a7f37;--fail:#cf222e;--error:#8250df;--manual:#9a6700;--na:#8c959f;--waived:#0969da;
--critical:#a40e26;--high:#cf222e;--medium:#bc4c00;--low:#9a6700}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;
--card:#161b22;--pass:#3fb950;--fail:#f85149;--error:#a371f7;--manual:#d29922;--na:#6e7681;--waived:#4493f8;
--critical:#ff7b72;--high:#f85149;--medium:#db6d28;--low:#d29922}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:72rem;padding:1.5rem;background:var(--bg);color:var(--fg);
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
h1{font-size:1.6rem;margin:0 0 .25rem}h2{font-size:1.3rem;margin:2rem 0 .75rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:0 0 .25rem}h4{font-size:.95rem;margin:.75rem 0 .25rem}
p{margin:.25rem 0}.muted{color:var(--muted)}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
.summary{display:flex;flex-wrap:wrap;gap:1rem;align-items:center}
.score{font-size:2.6rem;font-weight:700}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:0}dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:1rem}
figure{margin:0;padding:.75rem;border:1px solid var(--line);border-radius:6px;background:var(--card)}
figcaption{font-weight:600;margin-bottom:.5rem}svg{display:block;width:100%;height:auto}
figure.wide{grid-column:1/-1}svg#chart-status{max-width:15rem;margin:0 auto}
svg text{fill:var(--fg);font:11px system-ui,sans-serif}svg .axis{stroke:var(--line);stroke-width:1}
svg .trend{fill:none;stroke:var(--waived);stroke-width:2}svg .dot{fill:var(--waived)}
.legend{display:flex;flex-wrap:wrap;gap:.25rem .75rem;list-style:none;padding:0;margin:.5rem 0 0;font-size:.85rem}
.sw{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:middle}
.f-pass{fill:var(--pass);stroke:var(--pass)}.f-fail{fill:var(--fail);stroke:var(--fail)}
.f-error{fill:var(--error);stroke:var(--error)}.f-manual{fill:var(--manual);stroke:var(--manual)}
.f-not_applicable{fill:var(--na);stroke:var(--na)}.f-critical{fill:var(--critical)}.f-high{fill:var(--high)}
.f-medium{fill:var(--medium)}.f-low{fill:var(--low)}
svg circle.seg{fill:none;stroke-width:6}svg text.centre{font-size:6px;font-weight:700}
.b-pass{background:var(--pass)}.b-fail{background:var(--fail)}.b-error{background:var(--error)}
.b-manual{background:var(--manual)}.b-not_applicable{background:var(--na)}.b-critical{background:var(--critical)}
.b-high{background:var(--high)}.b-medium{background:var(--medium)}.b-low{background:var(--low)}
.b-waived{background:var(--waived)}
.badge{display:inline-block;padding:0 .45rem;border-radius:1rem;color:#fff;font-size:.8rem;font-weight:600;
white-space:nowrap}
article.clause{border:1px solid var(--line);border-left:4px solid var(--line);border-radius:6px;padding:.75rem;
margin:.75rem 0;background:var(--card)}
article.st-fail{border-left-color:var(--fail)}article.st-error{border-left-color:var(--error)}
article.st-manual{border-left-color:var(--manual)}.waived{border-left-color:var(--waived)}
.check{margin:.5rem 0 0;padding:.5rem 0 0;border-top:1px dashed var(--line)}
.waiver{border:2px dashed var(--waived);border-radius:6px;padding:.4rem .6rem;margin:.4rem 0}
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.9rem}
th,td{border:1px solid var(--line);padding:.25rem .5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:var(--bg)}
@media print{:root{--bg:#fff;--fg:#000;--card:#fff;--line:#999;--muted:#444}
body{max-width:none;padding:0;font-size:11pt}h2{break-before:page}h2.first{break-before:auto}
article.clause,figure,tr{break-inside:avoid}.badge{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
`;

/** The policy to send with the report: nothing but the report's own style block, and data: images. */
export const HTML_REPORT_CSP = `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; img-src data:`;

const escapes: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => escapes[c] ?? c);
}
const e = escapeHtml;

const statusLabels: Record<ClauseStatus, string> = {
  fail: 'Fail',
  error: 'Error',
  manual: 'Manual',
  pass: 'Pass',
  not_applicable: 'Not applicable',
};

function date(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
function day(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
function percent(score: number | null): string {
  return score === null ? 'n/a' : `${Math.round(score * 1000) / 10}%`;
}
function badge(kind: string, label: string): string {
  return `<span class="badge b-${e(kind)}">${e(label)}</span>`;
}

/* ---------- charts (inline SVG, coloured by classes of the style block) ---------- */

function chartTitle(id: string, title: string, desc: string): string {
  return `<title id="${id}-t">${e(title)}</title><desc id="${id}-d">${e(desc)}</desc>`;
}
function svgOpen(id: string, viewBox: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" id="${id}" aria-labelledby="${id}-t ${id}-d" viewBox="${viewBox}">`;
}
function legend(items: readonly { kind: string; label: string }[]): string {
  const li = items.map((i) => `<li><span class="sw b-${e(i.kind)}"></span>${e(i.label)}</li>`).join('');
  return `<ul class="legend">${li}</ul>`;
}

/** Clause statuses as a donut: each status one arc of a circle whose circumference is 100. */
function statusDonut(report: StandardReport): string {
  const total = clauseStatusOrder.reduce((n, s) => n + report.counts[s], 0);
  const desc = clauseStatusOrder.map((s) => `${statusLabels[s]}: ${report.counts[s]}`).join(', ');
  let offset = 25;
  const arcs = clauseStatusOrder
    .filter((s) => report.counts[s] > 0)
    .map((s) => {
      const share = (report.counts[s] / total) * 100;
      const arc = `<circle class="seg f-${s}" cx="21" cy="21" r="15.9155" stroke-dasharray="${share.toFixed(3)} ${(100 - share).toFixed(3)}" stroke-dashoffset="${offset.toFixed(3)}"><title>${e(`${statusLabels[s]}: ${report.counts[s]}`)}</title></circle>`;
      offset -= share;
      return arc;
    })
    .join('');
  const empty = total === 0 ? '<circle class="seg f-not_applicable" cx="21" cy="21" r="15.9155"/>' : '';
  const centre = `<text class="centre" x="21" y="23" text-anchor="middle">${e(percent(report.score))}</text>`;
  return (
    `<figure><figcaption>Clauses by status</figcaption>${svgOpen('chart-status', '0 0 42 42')}` +
    `${chartTitle('chart-status', 'Clauses by status', `${total} clauses. ${desc}`)}${empty}${arcs}${centre}</svg>` +
    `${legend(clauseStatusOrder.map((s) => ({ kind: s, label: `${statusLabels[s]} ${report.counts[s]}` })))}</figure>`
  );
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function groupBar(group: ReportGroup, row: number): string {
  const total = clauseStatusOrder.reduce((n, s) => n + group.counts[s], 0);
  const y = row * 22 + 4;
  let x = 250;
  const parts = clauseStatusOrder
    .filter((s) => group.counts[s] > 0)
    .map((s) => {
      const width = (group.counts[s] / total) * 460;
      const rect = `<rect class="f-${s}" x="${x.toFixed(2)}" y="${y}" width="${width.toFixed(2)}" height="16"><title>${e(`${group.name}: ${statusLabels[s]} ${group.counts[s]}`)}</title></rect>`;
      x += width;
      return rect;
    })
    .join('');
  return `<text x="0" y="${y + 12}">${e(truncate(group.name, 42))}</text>${parts}`;
}

/** One stacked bar per clause group: pass, fail, error, manual, not applicable. */
function groupChart(report: StandardReport): string {
  const height = Math.max(report.groups.length, 1) * 22 + 8;
  const desc = report.groups
    .map((g) => `${g.name}: ${clauseStatusOrder.map((s) => `${g.counts[s]} ${statusLabels[s]}`).join(', ')}`)
    .join('; ');
  return (
    `<figure class="wide"><figcaption>Clauses by group</figcaption>${svgOpen('chart-groups', `0 0 720 ${height}`)}` +
    `${chartTitle('chart-groups', 'Clause status per group', desc || 'No clauses')}` +
    `${report.groups.map((g, i) => groupBar(g, i)).join('')}</svg>` +
    `${legend(clauseStatusOrder.map((s) => ({ kind: s, label: statusLabels[s] })))}</figure>`
  );
}

/** The score of this standard over the runs (0..100 %), oldest on the left. */
function trendChart(report: StandardReport): string {
  const points = report.trend.filter((p) => p.score !== null);
  const n = points.length;
  const xy = points.map((p, i) => {
    const x = 40 + (n === 1 ? 320 : (i / (n - 1)) * 640);
    const y = 170 - (p.score ?? 0) * 150;
    return { x, y, p };
  });
  const line =
    n > 1
      ? `<polyline class="trend" points="${xy.map((q) => `${q.x.toFixed(1)},${q.y.toFixed(1)}`).join(' ')}"/>`
      : '';
  const dots = xy
    .map(
      (q) =>
        `<circle class="dot" cx="${q.x.toFixed(1)}" cy="${q.y.toFixed(1)}" r="3"><title>${e(`${date(q.p.finishedAt)}: ${percent(q.p.score)}`)}</title></circle>`,
    )
    .join('');
  const axes =
    '<line class="axis" x1="40" y1="20" x2="40" y2="170"/><line class="axis" x1="40" y1="170" x2="690" y2="170"/>' +
    '<text x="34" y="24" text-anchor="end">100%</text><text x="34" y="98" text-anchor="end">50%</text>' +
    '<text x="34" y="173" text-anchor="end">0%</text>';
  const range =
    n > 0
      ? `<text x="40" y="188">${e(day(xy[0]?.p.finishedAt ?? 0))}</text><text x="690" y="188" text-anchor="end">${e(day(xy[n - 1]?.p.finishedAt ?? 0))}</text>`
      : '<text x="365" y="100" text-anchor="middle">No scored runs yet</text>';
  const desc = points.map((p) => `${date(p.finishedAt)} ${percent(p.score)}`).join('; ');
  return (
    `<figure class="wide"><figcaption>Score over runs</figcaption>${svgOpen('chart-trend', '0 0 720 195')}` +
    `${chartTitle('chart-trend', 'Score trend', desc || 'No scored runs')}${axes}${line}${dots}${range}</svg></figure>`
  );
}

/** Failing checks (not waived) by severity, one bar each. */
function severityChart(report: StandardReport): string {
  const counts = report.failingBySeverity;
  const max = Math.max(1, ...severityOrder.map((s) => counts[s]));
  const bars = severityOrder
    .map((s, i) => {
      const y = i * 30 + 6;
      const width = (counts[s] / max) * 230;
      return `<text x="0" y="${y + 14}">${e(s)}</text><rect class="f-${s}" x="80" y="${y}" width="${width.toFixed(2)}" height="20"/><text x="${(86 + width).toFixed(2)}" y="${y + 14}">${counts[s]}</text>`;
    })
    .join('');
  const desc = severityOrder.map((s) => `${s}: ${counts[s]}`).join(', ');
  return (
    `<figure><figcaption>Failing checks by severity</figcaption>${svgOpen('chart-severity', '0 0 360 126')}` +
    `${chartTitle('chart-severity', 'Failing checks by severity', desc)}${bars}</svg></figure>`
  );
}

/* ---------- sections ---------- */

function summarySection(report: StandardReport): string {
  const c = report.counts;
  const run = report.run;
  return `<header><p class="muted">Bulwark compliance report</p>
<h1>${e(report.standard.title)} <span class="muted">${e(report.standard.version)}</span></h1>
<div class="summary"><div class="score" aria-label="Score">${e(percent(report.score))}</div>
<dl class="facts"><dt>Clauses</dt><dd>${c.pass} pass (${c.waived} waived), ${c.fail} fail, ${c.error} error, ${c.manual} manual, ${c.not_applicable} not applicable</dd>
<dt>Run</dt><dd><code>${e(run.id)}</code> (${e(run.trigger)} by ${e(run.createdBy)}), finished ${e(date(run.finishedAt))}</dd>
<dt>Baseline</dt><dd>${e(run.baseline.name)} version ${e(run.baseline.version)}</dd>
<dt>Generated</dt><dd>${e(date(report.generatedAt))}</dd></dl></div>
<p class="muted">Score = clauses passing ÷ applicable clauses (not applicable excluded; a clause whose failing checks are all waived counts as passing and is marked).</p></header>`;
}

function evidenceTable(evidence: readonly Evidence[]): string {
  if (evidence.length === 0) return '<p class="muted">No evidence objects.</p>';
  const rows = evidence
    .map((x) => `<tr><td>${e(x.kind)}</td><td><code>${e(x.id)}</code></td><td>${e(x.detail)}</td></tr>`)
    .join('');
  return `<table><thead><tr><th scope="col">Object kind</th><th scope="col">Id</th><th scope="col">Detail</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function waiverBlock(waiver: WaiverView): string {
  return `<div class="waiver">${badge('waived', 'Waived')} <strong>Reason:</strong> ${e(waiver.reason)}; <strong>approved by</strong> ${e(waiver.approver)}; <strong>expires</strong> ${e(day(waiver.expiresAt))} <span class="muted">(granted by ${e(waiver.createdBy)} on ${e(day(waiver.createdAt))})</span></div>`;
}

function checkBlock(check: CheckResult): string {
  const operator = check.needs === 'operator' ? ' <span class="muted">(needs operator input)</span>' : '';
  const waiver = check.status === 'fail' && check.waiver ? waiverBlock(check.waiver) : '';
  const failing = check.status !== 'pass';
  const details = failing
    ? `<p><strong>Why:</strong> ${e(check.rationale)}</p><p><strong>Remediation:</strong> ${e(check.remediation)}</p>${evidenceTable(check.evidence)}`
    : '';
  return `<div class="check"><h4>${badge(check.status, check.status)} ${badge(check.severity, check.severity)} <code>${e(check.id)}</code> ${e(check.title)}${operator}</h4>
<p>${e(check.summary)} <span class="muted">(${check.examined} examined)</span></p>${waiver}${details}</div>`;
}

function clauseHeading(clause: ReportClause): string {
  const waived = clause.waived ? ` ${badge('waived', 'Waived')}` : '';
  return `<h3>${badge(clause.status, statusLabels[clause.status])}${waived} <code>${e(clause.id)}</code> ${e(clause.title)}</h3><p class="muted">${e(clause.group)}${clause.level === null ? '' : ` · security level ${clause.level}`}</p>`;
}

function failingSection(report: StandardReport): string {
  const failing = report.clauses.filter((c) => c.status === 'fail' || c.status === 'error');
  const body = failing
    .map((clause) => {
      if (clause.mode === 'manual')
        return `<article class="clause st-${clause.status}">${clauseHeading(clause)}${attestationBlock(clause)}</article>`;
      const note = clause.note ? `<p>${e(clause.note)}</p>` : '';
      return `<article class="clause st-${clause.status}">${clauseHeading(clause)}${note}${clause.checks.map(checkBlock).join('')}</article>`;
    })
    .join('');
  return `<section aria-labelledby="h-failing"><h2 id="h-failing">Failing clauses (${failing.length})</h2>${body || '<p>No failing clauses.</p>'}</section>`;
}

function waiverSection(report: StandardReport): string {
  const waived = new Map<string, { check: CheckResult; clauses: string[] }>();
  for (const clause of report.clauses) {
    for (const check of clause.checks) {
      if (check.status !== 'fail' || !check.waiver) continue;
      const entry = waived.get(check.id) ?? { check, clauses: [] };
      entry.clauses.push(clause.id);
      waived.set(check.id, entry);
    }
  }
  const rows = [...waived.values()]
    .map(({ check, clauses }) => {
      const w = check.waiver;
      if (!w) return '';
      return `<tr><td><code>${e(check.id)}</code> ${badge('waived', 'Waived')}</td><td>${e(clauses.join(', '))}</td><td>${e(w.reason)}</td><td>${e(w.approver)}</td><td>${e(day(w.expiresAt))}</td><td>${e(w.createdBy)}</td></tr>`;
    })
    .join('');
  const table = rows
    ? `<table><thead><tr><th scope="col">Check</th><th scope="col">Clauses</th><th scope="col">Reason</th><th scope="col">Approver</th><th scope="col">Expires</th><th scope="col">Granted by</th></tr></thead><tbody>${rows}</tbody></table>`
    : '<p>No waivers apply to this standard.</p>';
  return `<section aria-labelledby="h-waivers"><h2 id="h-waivers">Waivers (${waived.size})</h2>${table}${[...waived.values()].map((x) => `<article class="clause waived"><h3><code>${e(x.check.id)}</code> ${e(x.check.title)}</h3>${checkBlock(x.check)}</article>`).join('')}</section>`;
}

function filesList(files: AttestationView['files']): string {
  if (files.length === 0) return '';
  const li = files
    .map(
      (f) =>
        `<li>${e(f.name)} <span class="muted">(${e(f.mediaType)}, ${f.size} bytes, sha256 <code>${e(f.sha256)}</code>)</span></li>`,
    )
    .join('');
  return `<ul>${li}</ul>`;
}

function attestationBlock(clause: ReportClause): string {
  const guidance = clause.guidance
    ? `<p><strong>What an attestation must show:</strong> ${e(clause.guidance)}</p>`
    : '';
  const a = clause.attestation;
  if (!a) return `${guidance}<p>${badge('manual', 'No attestation')} Awaiting an attestation.</p>`;
  const state = a.expired ? badge('fail', 'Attestation expired') : badge('pass', 'Attestation in force');
  return `${guidance}<p>${state} <strong>Owner:</strong> ${e(a.owner)}; review by ${e(day(a.reviewAt))}; expires ${e(day(a.expiresAt))} <span class="muted">(recorded by ${e(a.createdBy)} on ${e(day(a.createdAt))})</span></p><p>${e(a.statement)}</p>${filesList(a.files)}`;
}

function manualSection(report: StandardReport): string {
  const manual = report.clauses.filter(
    (c) => c.mode === 'manual' && c.status !== 'fail' && c.status !== 'error',
  );
  const body = manual
    .map((c) => `<article class="clause st-${c.status}">${clauseHeading(c)}${attestationBlock(c)}</article>`)
    .join('');
  return `<section aria-labelledby="h-manual"><h2 id="h-manual">Manual clauses (${manual.length})</h2>${body || '<p>No manual clauses outside the failing list.</p>'}</section>`;
}

function notApplicableSection(report: StandardReport): string {
  const rows = report.clauses
    .filter((c) => c.status === 'not_applicable')
    .map(
      (c) =>
        `<tr><td><code>${e(c.id)}</code></td><td>${e(c.title)}</td><td>${e(c.justification?.text ?? '')}</td><td>${e(c.justification?.source ?? '')}</td></tr>`,
    )
    .join('');
  const table = rows
    ? `<table><thead><tr><th scope="col">Clause</th><th scope="col">Title</th><th scope="col">Justification</th><th scope="col">Source</th></tr></thead><tbody>${rows}</tbody></table>`
    : '<p>No clause is marked not applicable.</p>';
  return `<section aria-labelledby="h-na"><h2 id="h-na">Not applicable</h2>${table}</section>`;
}

function passingSection(report: StandardReport): string {
  const passing = report.clauses.filter((c) => c.status === 'pass' && c.mode === 'automated');
  const rows = passing
    .map((c) => {
      const waived = c.waived ? ` ${badge('waived', 'Waived')}` : '';
      const checks = c.checks
        .map((k) => `<code>${e(k.id)}</code>${k.status === 'fail' && k.waiver ? ' (waived)' : ''}`)
        .join(', ');
      return `<tr><td><code>${e(c.id)}</code>${waived}</td><td>${e(c.title)}</td><td>${e(c.group)}</td><td>${checks}</td></tr>`;
    })
    .join('');
  const table = rows
    ? `<table><thead><tr><th scope="col">Clause</th><th scope="col">Title</th><th scope="col">Group</th><th scope="col">Checks</th></tr></thead><tbody>${rows}</tbody></table>`
    : '<p>No automated clause passes.</p>';
  return `<section aria-labelledby="h-passing"><h2 id="h-passing">Passing clauses (${passing.length})</h2>${table}</section>`;
}

/** The report as one self-contained HTML document (send it with HTML_REPORT_CSP). */
export function renderHtml(report: StandardReport): string {
  const title = `${report.standard.title}: compliance report, run ${report.run.id}`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${e(HTML_REPORT_CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${e(title)}</title>
<style>${STYLE}</style></head>
<body><main>
${summarySection(report)}
<section aria-labelledby="h-charts"><h2 id="h-charts" class="first">Charts</h2><div class="charts">
${statusDonut(report)}${severityChart(report)}${trendChart(report)}${groupChart(report)}</div></section>
${failingSection(report)}
${waiverSection(report)}
${manualSection(report)}
${notApplicableSection(report)}
${passingSection(report)}
</main></body></html>
`;
}
