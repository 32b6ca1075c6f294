import { median } from './stats.ts';
import { systemNames, type SystemName } from './systems.ts';

export const directions = ['higher', 'lower', 'none'] as const;
/** Which way is better for a figure; ratios are always Bulwark ÷ peer. */
export type Better = (typeof directions)[number];

/** A goal from the issue: a ratio to a peer, or an absolute bound, for Bulwark's median. */
export type Target =
  | { kind: 'ratio'; peer: Exclude<SystemName, 'bulwark'>; min?: number; max?: number }
  | { kind: 'absolute'; min?: number; max?: number };

export interface MetricRow {
  scenario: string;
  metric: string;
  unit: string;
  better: Better;
  target?: Target;
  /** One value per round, per system. */
  values: Partial<Record<SystemName, number[]>>;
  /** Why a system has no value here. */
  skipped: Partial<Record<SystemName, string>>;
  /**
   * Systems whose figure is only a lower bound: the load generator, not the broker, was the bottleneck
   * in at least one round.
   */
  lowerBound: SystemName[];
}

export interface MetricSpec {
  scenario: string;
  metric: string;
  unit: string;
  better: Better;
  target?: Target;
}

/** Collects every figure of a run, in the order scenarios first report them. */
export class Results {
  readonly rows: MetricRow[] = [];
  /** Anything a reader must know to trust the figures: losses, corruption, saturation, failures. */
  readonly notes: string[] = [];

  private row(spec: MetricSpec): MetricRow {
    let row = this.rows.find((r) => r.scenario === spec.scenario && r.metric === spec.metric);
    if (!row) {
      row = { ...spec, values: {}, skipped: {}, lowerBound: [] };
      this.rows.push(row);
    }
    return row;
  }

  add(spec: MetricSpec, system: SystemName, value: number | undefined): void {
    if (value === undefined || !Number.isFinite(value)) return;
    const row = this.row(spec);
    (row.values[system] ??= []).push(value);
  }

  lowerBound(spec: MetricSpec, system: SystemName): void {
    const row = this.row(spec);
    if (!row.lowerBound.includes(system)) row.lowerBound.push(system);
  }

  skip(spec: MetricSpec, system: SystemName, reason: string): void {
    this.row(spec).skipped[system] = reason;
  }

  note(line: string): void {
    if (!this.notes.includes(line)) this.notes.push(line);
  }
}

export function medianOf(row: MetricRow, system: SystemName): number | undefined {
  const values = row.values[system];
  return values && values.length ? median(values) : undefined;
}

export function ratio(row: MetricRow, peer: SystemName): number | undefined {
  const b = medianOf(row, 'bulwark');
  const p = medianOf(row, peer);
  return b !== undefined && p !== undefined && p !== 0 ? b / p : undefined;
}

/** Whether Bulwark's median meets the row's target (undefined when there is none or no data). */
export function targetMet(row: MetricRow): boolean | undefined {
  const t = row.target;
  if (!t) return undefined;
  const value = t.kind === 'ratio' ? ratio(row, t.peer) : medianOf(row, 'bulwark');
  if (value === undefined) return undefined;
  return (t.min === undefined || value >= t.min) && (t.max === undefined || value <= t.max);
}

export function describeTarget(t: Target, unit: string): string {
  const bound = (min?: number, max?: number, suffix = '') =>
    [min !== undefined ? `≥ ${min}${suffix}` : '', max !== undefined ? `≤ ${max}${suffix}` : '']
      .filter(Boolean)
      .join(', ');
  if (t.kind === 'ratio') return `${bound(t.min, t.max, '×')} ${t.peer === 'aedes' ? 'Aedes' : 'Mosquitto'}`;
  // A yes/no figure is 1 or 0: its target is "= yes" (at least 1) or "= no" (at most 0).
  if (unit === 'yes/no') return t.min !== undefined && t.min >= 1 ? '= yes' : '= no';
  if (unit === '×') return bound(t.min, t.max, '×');
  return `${bound(t.min, t.max)} ${unit}`;
}

export const peers = systemNames.filter((s): s is Exclude<SystemName, 'bulwark'> => s !== 'bulwark');
