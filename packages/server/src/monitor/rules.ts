import { SIZE_BUCKETS, bucketMiddleBytes, hotMetrics, slot } from './meter.ts';
import type { Behaviour, Operator } from './profile.ts';

/** One rule behaviour of a device's profile, with the figures of its current window. */
export interface RuleState {
  b: Behaviour & { profile: string };
  /** HOT index for counters the broker bumps, -1 otherwise. */
  hot: number;
  start: number;
  base: number;
  sum: number;
  count: number;
  max: number;
  min: number;
  last: number;
  hist: Uint32Array | undefined;
  values: number[] | undefined;
  seen: Set<string> | undefined;
  violations: string[];
  breached: boolean;
  consecutive: number;
  clean: number;
  alarmed: boolean;
}

export function newRule(b: Behaviour & { profile: string }, totals: Float64Array, at: number): RuleState {
  const hot = (hotMetrics as readonly string[]).indexOf(b.metric);
  const percentile = b.statistic.startsWith('p');
  return {
    b,
    hot,
    start: at,
    base: hot >= 0 ? slot(totals, hot) : 0,
    sum: 0,
    count: 0,
    max: -Infinity,
    min: Infinity,
    last: 0,
    hist: b.metric === 'message_size' && percentile ? new Uint32Array(SIZE_BUCKETS) : undefined,
    values: percentile && b.metric !== 'message_size' ? [] : undefined,
    seen: b.metric === 'distinct_topics' || b.metric === 'distinct_source_addresses' ? new Set() : undefined,
    violations: [],
    breached: false,
    consecutive: 0,
    clean: 0,
    alarmed: false,
  };
}

/** A counter the broker bumps, judged by its sum: read from the meter's totals, not accumulated. */
export const isHotSum = (r: RuleState) => r.hot >= 0 && r.b.statistic === 'sum';

export const compare = (op: Operator, value: number, threshold: number) =>
  op === 'gt'
    ? value > threshold
    : op === 'gte'
      ? value >= threshold
      : op === 'lt'
        ? value < threshold
        : value <= threshold;

function percentileOfHist(hist: Uint32Array, p: number): number {
  let total = 0;
  for (const n of hist) total += n;
  if (total === 0) return 0;
  const rank = Math.ceil(total * p);
  let acc = 0;
  for (let i = 0; i < hist.length; i++) {
    acc += slot(hist, i);
    if (acc >= rank) return bucketMiddleBytes(i);
  }
  return bucketMiddleBytes(hist.length - 1);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] ?? 0;
}

/** The rule's statistic over its window so far. */
export function valueOf(totals: Float64Array, r: RuleState): number {
  if (isHotSum(r)) return slot(totals, r.hot) - r.base;
  if (r.seen) return r.seen.size;
  // max and min are set by the hot path on the offending message, before the tick counts the message.
  switch (r.b.statistic) {
    case 'sum':
      return r.sum;
    case 'max':
      return r.max === -Infinity ? 0 : r.max;
    case 'min':
      return r.min === Infinity ? 0 : r.min;
    case 'avg':
      return r.count === 0 ? 0 : r.sum / r.count;
    case 'latest':
      return r.last;
    default: {
      const p = r.b.statistic === 'p50' ? 0.5 : r.b.statistic === 'p90' ? 0.9 : 0.99;
      return r.hist ? percentileOfHist(r.hist, p) : percentile(r.values ?? [], p);
    }
  }
}

/** A number the rule watches, accumulated into its window. */
export function accumulate(r: RuleState, value: number) {
  r.sum += value;
  r.count += 1;
  if (value > r.max) r.max = value;
  if (value < r.min) r.min = value;
  r.last = value;
  if (r.values && r.values.length < 1000) r.values.push(value);
}

/** Starts the rule's next window (after as many whole windows as have passed). */
export function nextWindow(r: RuleState, totals: Float64Array, at: number) {
  const windows = Math.max(1, Math.floor((at - r.start) / r.b.window));
  r.start += windows * r.b.window;
  if (r.hot >= 0) r.base = slot(totals, r.hot);
  r.sum = 0;
  r.count = 0;
  r.max = -Infinity;
  r.min = Infinity;
  r.hist?.fill(0);
  if (r.values) r.values.length = 0;
  r.seen?.clear();
  r.violations = [];
  r.breached = false;
}

/**
 * A window without a single datapoint (no report, no message) says nothing about a max, min, avg, latest
 * or percentile, nor about an allow-list: it neither breaches nor counts as clean. Before, a device
 * reporting less often than the window had its alert resolved and raised again at each report. Sums of
 * nothing are 0, and are judged (messages_sent lt 1 is silence by rule).
 */
export const hasNoData = (r: RuleState) =>
  r.count === 0 && r.hot < 0 && !r.seen && (r.b.kind === 'set' || r.b.statistic !== 'sum');

/** Whether a closing window's value breaches a numeric rule. */
export const breachesAtClose = (r: RuleState, value: number) =>
  r.b.kind !== 'set' &&
  r.b.threshold !== undefined &&
  r.b.operator !== undefined &&
  compare(r.b.operator, value, r.b.threshold);
