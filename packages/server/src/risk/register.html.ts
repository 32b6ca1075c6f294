import type { z } from 'zod';
import type { api } from '@bulwark/protocol';
import { escapeHtml as e } from '../compliance/index.ts';
import { badge, list, REPORT_STYLE, reportCsp, riskMatrix } from './report.style.ts';
import { feasibilityLevels } from './tara-method.ts';

/**
 * The risk register report as one self-contained HTML file: a summary, the impact × feasibility matrix with
 * each risk that is not closed at its live position (and, when live facts moved it, a muted mark at its
 * assessed one), the IEC 62443-3-2 target and achieved security level per zone, the register itself, and
 * each risk's recent history. No scripts, no external requests; the one <style> block is allowed by its hash
 * (REGISTER_REPORT_CSP, also a <meta> policy). Every string is escaped.
 */

export type RegisterRisk = z.infer<(typeof api.riskRegister.register.response)[200]>['risks'][number];
export type ZoneLevel = z.infer<(typeof api.riskRegister.zones.response)[200]>['zones'][number];
export type RiskHistoryEntry = z.infer<(typeof api.riskRegister.getRisk.response)[200]>['history'][number];

export interface RegisterReport {
  /** The register, highest live risk first (shown in this order). */
  risks: RegisterRisk[];
  /** IEC 62443-3-2 target vs achieved security level per zone. */
  zones: ZoneLevel[];
  /** Recent history per risk id (may be empty; ids not in `risks` are not shown). */
  history: Record<string, RiskHistoryEntry[]>;
  /** The baseline's risk.reassessEvery (ms) and risk.alertOnIncrease (levels). */
  baseline: { reassessEvery: number; alertOnIncrease: number };
}

const STYLE = `${REPORT_STYLE}
body{max-width:90rem}#register{font-size:.88rem}tr.closed{opacity:.6}.nw{white-space:nowrap}
.warn{color:var(--r4);font-weight:600;white-space:nowrap}
table.matrix .mark{display:inline-block;margin:0 .2rem}table.matrix a{color:inherit}
table.matrix .base{font-weight:400;font-style:italic;opacity:.8}
.sl{display:inline-flex;gap:2px;vertical-align:middle}
.sl span{width:1.1rem;height:.75rem;border:1px dashed var(--line);border-radius:2px}
.sl .t{border:1px solid var(--fg)}.sl .a{background:var(--r1);border-color:var(--r1)}
.sl.short .a{background:var(--r3);border-color:var(--r3)}
details{margin:.5rem 0}summary{cursor:pointer;font-weight:600}`;

export const REGISTER_REPORT_CSP = reportCsp(STYLE);

const DAY = 86_400_000;
const none = (text = 'none') => `<span class="muted">${e(text)}</span>`;
const iso = (ms: number) => new Date(ms).toISOString();
const codes = (ids: string[]) => ids.map((id) => `<code>${e(id)}</code>`).join(', ');
const anchor = (id: string) => `risk-${id}`;

/** The due date (YYYY-MM-DD, UTC) is over: its whole day lies before `now`. */
const pastDue = (r: RegisterRisk, now: number) =>
  r.status !== 'closed' && r.due !== null && Date.parse(`${r.due}T00:00:00Z`) + DAY <= now;
const pastReview = (r: RegisterRisk, now: number) => r.status !== 'closed' && r.reviewDueAt < now;

function duration(ms: number): string {
  const units: [string, number][] = [
    ['day', DAY],
    ['hour', 3_600_000],
    ['minute', 60_000],
  ];
  const [name, size] = units.find(([, size]) => ms >= size) ?? ['second', 1000];
  const n = Math.round((ms / size) * 10) / 10;
  return `${n} ${name}${n === 1 ? '' : 's'}`;
}

function summary(input: RegisterReport, now: number): string {
  const count = (pred: (r: RegisterRisk) => boolean) => input.risks.filter(pred).length;
  const statuses = (['open', 'treating', 'accepted', 'closed'] as const)
    .map((s) => `${count((r) => r.status === s)} ${s}`)
    .join(', ');
  const raised = count((r) => r.raised && r.status !== 'closed');
  const review = count((r) => pastReview(r, now));
  const due = count((r) => pastDue(r, now));
  const mark = (n: number, text: string) => (n > 0 ? `<span class="warn">${n} ${text}</span>` : `0 ${text}`);
  return `<p class="summary">${input.risks.length} risks: ${statuses}; ${mark(raised, 'raised')}; ${mark(review, 'past review due')}; ${mark(due, 'past their due date')}.</p>`;
}

/** The matrix: each risk that is not closed at its live position; where it was assessed elsewhere, a muted mark. */
function matrix(risks: RegisterRisk[]): string {
  const active = risks.filter((r) => r.status !== 'closed');
  const table = riskMatrix(
    'Risks that are not closed by impact (rows) and attack feasibility (columns), live; colour: risk value 1-5',
    (impact, f) => {
      const live = active
        .filter((r) => r.impact === impact && r.feasibility === f)
        .map(
          (r) =>
            `<a class="mark live" href="#${e(anchor(r.id))}" title="${e(`${r.title}: risk ${r.risk} now, ${r.baseRisk} assessed`)}">${e(r.id)}${r.raised ? ' ↑' : ''}</a>`,
        );
      const base = active
        .filter((r) => r.impact === impact && r.baseFeasibility === f && r.feasibility !== f)
        .map((r) => {
          const right = feasibilityLevels.indexOf(r.feasibility) > feasibilityLevels.indexOf(f);
          return `<span class="mark base" title="${e(`${r.id} was assessed here (risk ${r.baseRisk}); live: ${r.feasibility} (risk ${r.risk})`)}">${e(r.id)} ${right ? '→' : '←'}</span>`;
        });
      return [...live, ...base].join(' ');
    },
  );
  const legend =
    '<p class="muted">Bold: where a risk stands now, from live facts (↑: raised). Italic with an arrow: where it was assessed, the arrow pointing to where it moved.</p>';
  return `${table}${active.length === 0 ? `<p>${none('none open')}</p>` : legend}`;
}

/** Security-level segments 1..4: filled to the achieved level, outlined to the target. */
function levelBar(zone: ZoneLevel): string {
  const achieved = zone.achieved ?? 0;
  const segments = Array.from({ length: Math.max(4, zone.target, achieved) }, (_, i) => {
    const classes = [i < zone.target ? 't' : '', i < achieved ? 'a' : ''].filter(Boolean).join(' ');
    return `<span${classes ? ` class="${classes}"` : ''}></span>`;
  }).join('');
  const label = `SL-A ${zone.achieved ?? 'not measured'} of SL-T ${zone.target}`;
  return `<span class="sl${(zone.gap ?? 0) > 0 ? ' short' : ''}" role="img" aria-label="${e(label)}" title="${e(label)}">${segments}</span>`;
}

function zones(levels: ZoneLevel[]): string {
  if (levels.length === 0) return `<p>${none()}</p>`;
  const rows = levels
    .map((zone) => {
      const gap = (zone.gap ?? 0) > 0;
      const achieved =
        zone.achieved === null
          ? none('not measured')
          : `${zone.achieved}${zone.measuredAt === null ? '' : `<br><small class="muted">measured ${e(iso(zone.measuredAt))}</small>`}`;
      const gapCell =
        zone.gap === null
          ? none('—')
          : gap
            ? `<span class="warn" title="achieved below target">⚠ ${zone.gap}</span>`
            : String(zone.gap);
      return `<tr${gap ? ' class="gap"' : ''}><td>${e(zone.zone)}</td><td>${zone.devices}</td><td>${zone.target}</td><td>${achieved}</td><td>${gapCell}</td><td>${levelBar(zone)}</td><td>${zone.blocking.length ? codes(zone.blocking) : none()}</td></tr>`;
    })
    .join('');
  return `<table id="zones"><tr><th>zone</th><th>devices</th><th>SL-T (target)</th><th>SL-A (achieved)</th><th>gap</th><th>level</th><th>blocking checks</th></tr>${rows}</table>`;
}

function source(r: RegisterRisk): string {
  const s = r.source;
  if (s.kind === 'tara') return `TARA ${s.tara}, threat ${s.threat}`;
  if (s.kind === 'zone') return `zone ${s.zone} security-level gap`;
  return 'manual';
}

function factors(r: RegisterRisk): string {
  if (r.factors.length === 0) return none();
  return `<ul>${r.factors
    .map(
      (f) =>
        `<li><b>${e(f.kind)}</b> <code>${e(f.ref)}</code>: ${e(f.detail)} <span class="muted">(feasibility ${e(f.feasibility)})</span></li>`,
    )
    .join('')}</ul>`;
}

function registerRow(r: RegisterRisk, now: number): string {
  const treatment = `<b>${e(r.treatment)}</b>${r.controls.length ? list(r.controls) : ''}${r.checks.length ? `checks: ${codes(r.checks)}` : ''}`;
  const due =
    r.due === null
      ? none()
      : `${e(r.due)}${pastDue(r, now) ? ' <span class="warn overdue">overdue</span>' : ''}`;
  const assessed = `${badge(r.baseRisk)}<br><span class="muted">${e(r.impact)} × ${e(r.baseFeasibility)}</span>`;
  const live = `${badge(r.risk)}${r.raised ? ' <span class="warn raised" title="raised by live facts">↑</span>' : ''}<br><span class="muted">${e(r.impact)} × ${e(r.feasibility)}</span>`;
  const review = `<span title="${e(iso(r.reviewDueAt))}">${e(iso(r.reviewDueAt).slice(0, 10))}</span>${pastReview(r, now) ? ' <span class="warn review-past">past</span>' : ''}`;
  return `<tr id="${e(anchor(r.id))}"${r.status === 'closed' ? ' class="closed"' : ''}><td class="nw">${e(r.id)}</td><td>${e(r.title)}<br><span class="muted">${e(source(r))}</span></td><td>${list(r.assets)}</td><td>${r.owner === null ? none('unassigned') : e(r.owner)}</td><td>${treatment}</td><td>${e(r.status)}</td><td class="nw">${due}</td><td>${assessed}</td><td>${live}</td><td>${factors(r)}</td><td class="nw">${review}</td></tr>`;
}

function register(risks: RegisterRisk[], now: number): string {
  if (risks.length === 0) return `<p>${none()}</p>`;
  return `<table id="register"><tr><th>id</th><th>risk</th><th>assets</th><th>owner</th><th>treatment</th><th>status</th><th>due</th><th>assessed</th><th>live</th><th>live factors</th><th>review due</th></tr>${risks
    .map((r) => registerRow(r, now))
    .join('')}</table>`;
}

const detailText = (detail: Record<string, unknown>) =>
  Object.entries(detail)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join('; ');

function history(input: RegisterReport): string {
  const sections = input.risks.flatMap((r) => {
    const entries = Object.hasOwn(input.history, r.id) ? (input.history[r.id] ?? []) : [];
    if (entries.length === 0) return [];
    const rows = entries
      .map(
        (h) =>
          `<tr><td>${e(iso(h.at))}</td><td>${e(h.actor)}</td><td>${e(h.change)}</td><td>${h.from === null ? '—' : badge(h.from)} → ${h.to === null ? '—' : badge(h.to)}</td><td>${e(detailText(h.detail))}</td></tr>`,
      )
      .join('');
    return [
      `<details open id="history-${e(r.id)}"><summary>${e(r.id)}: ${e(r.title)} <span class="muted">(${entries.length} ${entries.length === 1 ? 'entry' : 'entries'})</span></summary><table><tr><th>time</th><th>actor</th><th>change</th><th>risk</th><th>detail</th></tr>${rows}</table></details>`,
    ];
  });
  return sections.length === 0 ? `<p>${none()}</p>` : sections.join('\n');
}

/** The whole report. */
export function registerHtml(input: RegisterReport, generatedAt: number): string {
  const { reassessEvery, alertOnIncrease } = input.baseline;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${e(REGISTER_REPORT_CSP)}"><title>Risk register</title><style>${STYLE}</style></head><body>
<h1>Risk register</h1><p class="muted">generated ${e(iso(generatedAt))}; baseline: each risk re-assessed every ${e(duration(reassessEvery))}, raised when its live value is ${alertOnIncrease} or more above the assessed one; risk matrix: ISO/SAE 21434 Annex H example</p>
${summary(input, generatedAt)}
<h2>Risk</h2>${matrix(input.risks)}
<h2>Zones</h2><p class="muted">IEC 62443-3-2: target (SL-T) and achieved (SL-A) security level per zone, from the latest compliance run</p>${zones(input.zones)}
<h2>Register</h2>${register(input.risks, generatedAt)}
<h2>History</h2>${history(input)}
</body></html>
`;
}
