import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as prettier from 'prettier';
import type { Machine } from './machine.ts';
import type { Plan } from './plan.ts';
import type { ProfileSummary } from './profile.ts';
import {
  describeTarget,
  medianOf,
  peers,
  ratio,
  targetMet,
  type MetricRow,
  type Results,
} from './results.ts';
import { systemLabels, systemNames, type SystemName } from './systems.ts';

export interface SystemInfo {
  name: SystemName;
  version?: string;
  description: string;
  skipped?: string;
}

export interface NamedProfile {
  scenario: string;
  file: string;
  summary: ProfileSummary;
}

export interface Report {
  schema: 1;
  mode: Plan['mode'];
  startedAt: string;
  durationS: number;
  machine: Machine;
  systems: SystemInfo[];
  load: {
    loadgens: number;
    fleet: number;
    payloadBytes: number;
    window: number;
    rounds: number;
    tls: string;
    /** Average cores other processes on the machine used during the run. */
    otherProcessesCores?: number;
  };
  rows: (MetricRow & {
    median: Partial<Record<SystemName, number>>;
    ratio: Partial<Record<SystemName, number>>;
    targetMet?: boolean;
  })[];
  notes: string[];
  profiles: NamedProfile[];
}

export function buildReport(input: {
  plan: Plan;
  machine: Machine;
  systems: SystemInfo[];
  results: Results;
  startedAt: Date;
  tls: string;
  profiles: NamedProfile[];
  otherProcessesCores: number | undefined;
}): Report {
  const { plan, results } = input;
  return {
    schema: 1,
    mode: plan.mode,
    startedAt: input.startedAt.toISOString(),
    durationS: Math.round((Date.now() - input.startedAt.getTime()) / 1000),
    machine: input.machine,
    systems: input.systems,
    load: {
      loadgens: plan.loadgens,
      fleet: plan.fleet,
      payloadBytes: plan.payloadSize,
      window: plan.window,
      rounds: plan.rounds,
      tls: input.tls,
      ...(input.otherProcessesCores !== undefined
        ? { otherProcessesCores: round(input.otherProcessesCores) }
        : {}),
    },
    rows: results.rows.map((row) => {
      const med: Partial<Record<SystemName, number>> = {};
      for (const s of systemNames) {
        const m = medianOf(row, s);
        if (m !== undefined) med[s] = round(m);
      }
      const ratios: Partial<Record<SystemName, number>> = {};
      // A ratio of context figures (CPU, load, machine noise) means nothing; only measured results get one.
      for (const p of row.better === 'none' ? [] : peers) {
        const r = ratio(row, p);
        if (r !== undefined) ratios[p] = round(r);
      }
      const met = targetMet(row);
      return {
        ...row,
        values: Object.fromEntries(Object.entries(row.values).map(([k, v]) => [k, v.map(round)])),
        median: med,
        ratio: ratios,
        ...(met !== undefined ? { targetMet: met } : {}),
      };
    }),
    notes: results.notes,
    profiles: input.profiles,
  };
}

function round(v: number): number {
  if (Math.abs(v) >= 100) return Math.round(v);
  return Math.round(v * 1000) / 1000;
}

function fmt(value: number | undefined, unit: string): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  const n = (digits: number, v = value) =>
    v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  // Nanosecond figures span seven orders of magnitude here: say so in the cell rather than in zeros.
  if (unit === 'ns' && value >= 1e6) return `${n(1, value / 1e6)} ms`;
  if (unit === 'ns' && value >= 1e4) return `${n(1, value / 1e3)} µs`;
  switch (unit) {
    case 'yes/no':
      return value >= 1 ? 'yes' : 'no';
    case '/s':
    case 'msgs':
    case 'devices':
    case '':
      return n(0);
    case 'ms':
      return value < 10 ? n(2) : value < 100 ? n(1) : n(0);
    case 'ns':
    case 'KiB':
    case 'MiB':
    case '%':
      return n(1);
    default:
      return n(2);
  }
}

function duration(seconds: number): string {
  return seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
}

export function toMarkdown(report: Report): string {
  const m = report.machine;
  const measured = report.systems.filter((s) => !s.skipped);
  const cols = measured.map((s) => s.name);
  const ratioCols = peers.filter((p) => cols.includes(p) && cols.includes('bulwark'));
  const lines: string[] = [];
  lines.push(`## ${report.mode === 'full' ? 'Full' : 'Quick'} run, ${report.startedAt.slice(0, 10)}`, '');
  lines.push(
    `- **Machine:** ${m.cpu}, ${m.cores} cores${m.virtualization ? ` (${m.virtualization} VM)` : ''}, ${m.memoryGb} GB RAM, ${m.os}; Node ${m.node}`,
    `- **Systems:** ${report.systems
      .map(
        (s) =>
          `${systemLabels[s.name]}${s.version ? ` ${s.version}` : ''} (${s.skipped ? `skipped: ${s.skipped}` : s.description})`,
      )
      .join('; ')}`,
    `- **Load:** ${report.load.loadgens} load generator process(es), ${report.load.fleet.toLocaleString('en-US')} devices with their own client certificates, ${report.load.payloadBytes}-byte payloads, ${report.load.tls}; throughput window ${report.load.window} messages per device`,
    `- **Run:** ${report.load.rounds} round(s)${report.load.rounds > 1 ? ' in alternating order; figures are medians' : ''}; took ${duration(report.durationS)}${m.commit ? `; commit ${m.commit}` : ''}${report.load.otherProcessesCores !== undefined ? `; other processes on the machine used ${report.load.otherProcessesCores.toFixed(2)} cores on average` : ''}`,
    '',
  );
  const header = [
    'Scenario',
    'Metric',
    ...cols.map((c) => systemLabels[c]),
    ...ratioCols.map((p) => `Bulwark/${systemLabels[p]}`),
    'Target',
  ];
  lines.push(`| ${header.join(' | ')} |`);
  lines.push(`| ${header.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`);
  const rows = [...report.rows].sort((a, b) => a.scenario.localeCompare(b.scenario, 'en', { numeric: true }));
  for (const row of rows) {
    const hasData = Object.keys(row.median).length > 0;
    if (!hasData) continue;
    const unit = row.unit && row.unit !== 'yes/no' ? ` (${row.unit})` : '';
    const target = row.target
      ? `${describeTarget(row.target, row.unit)} ${row.targetMet === undefined ? '' : row.targetMet ? '✓' : '✗'}`
      : '';
    lines.push(
      `| ${[
        row.scenario,
        `${row.metric}${unit}`,
        ...cols.map((c) =>
          row.skipped[c]
            ? 'skipped'
            : `${row.lowerBound.includes(c) ? '≥ ' : ''}${fmt(row.median[c], row.unit)}`,
        ),
        // Against a peer whose figure is a lower bound, the true ratio is at most the one shown.
        ...ratioCols.map((p) =>
          row.ratio[p] !== undefined
            ? `${row.lowerBound.includes(p) ? '≤ ' : ''}${row.ratio[p].toFixed(2)}×`
            : '—',
        ),
        target.trim(),
      ].join(' | ')} |`,
    );
  }
  const skipped = report.rows.flatMap((row) =>
    Object.entries(row.skipped).map(
      ([s, why]) => `${systemLabels[s as SystemName]}, ${row.scenario}: ${why}`,
    ),
  );
  if (skipped.length || report.notes.length) {
    lines.push('', '**Notes**', '');
    for (const line of [...new Set(skipped)]) lines.push(`- skipped: ${line}`);
    for (const note of report.notes) lines.push(`- ${note}`);
  }
  for (const p of report.profiles) {
    lines.push(
      '',
      `**CPU profile of Bulwark, ${p.scenario}** (${p.summary.totalMs.toLocaleString('en-US')} ms sampled, ${p.summary.busyPct}% busy; shares of busy time; \`${p.file}\`)`,
      '',
    );
    lines.push('| self time by component | % |', '| --- | ---: |');
    for (const a of p.summary.areas.slice(0, 10)) lines.push(`| ${a.area} | ${a.pct.toFixed(1)} |`);
    lines.push('', '| top frames (self time) | component | % |', '| --- | --- | ---: |');
    for (const f of p.summary.topSelf.slice(0, 12))
      lines.push(`| \`${f.frame}\` | ${f.area} | ${f.pct.toFixed(1)} |`);
    if (p.summary.bulwarkInclusive.length) {
      lines.push('', '| Bulwark functions (inclusive time) | % |', '| --- | ---: |');
      for (const f of p.summary.bulwarkInclusive.slice(0, 6))
        lines.push(`| \`${f.frame}\` | ${f.pct.toFixed(1)} |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Writes `<name>.json` and `<name>.md` in `outDir`, formatted like the rest of the repository. */
export async function writeResultFiles(
  outDir: string,
  name: string,
  data: unknown,
  markdownText: string,
): Promise<{ json: string; md: string; markdown: string }> {
  mkdirSync(outDir, { recursive: true });
  const json = path.join(outDir, `${name}.json`);
  const md = path.join(outDir, `${name}.md`);
  const options = (await prettier.resolveConfig(json)) ?? {};
  const markdown = await prettier.format(markdownText, { ...options, parser: 'markdown' });
  writeFileSync(json, await prettier.format(JSON.stringify(data), { ...options, parser: 'json' }));
  writeFileSync(md, markdown);
  return { json, md, markdown };
}

/** Writes `<mode>.json` and `<mode>.md`. */
export async function writeReport(
  report: Report,
  outDir: string,
): Promise<{ json: string; md: string; markdown: string }> {
  return writeResultFiles(outDir, report.mode, report, `# Bulwark benchmark\n\n${toMarkdown(report)}`);
}
