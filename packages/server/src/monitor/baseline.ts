/**
 * Learned baselines: for each key (`device:pump-1:messages_sent`, `group:pumps:messages_sent`) an online
 * estimate of what one datapoint (a count over a fixed interval, e.g. messages per minute) normally is,
 * a score for each new datapoint and an alarm with hysteresis, so the caller raises one alert per episode.
 *
 * Model, per key, in `x = log1p(value)` space (a 10x jump is about 2.3 whatever the level):
 * - exponentially weighted mean and variance (West 1979 / Finch 2009 incremental form);
 * - the standard deviation is floored at `max(minSd, Poisson)`, where Poisson is the variance of
 *   `log1p` of a Poisson count with the expected rate (`lambda / (1 + lambda)^2`, taken at
 *   `lambda = 1` below 1), so sparse counts and constant series do not turn every wiggle into an outlier;
 * - a datapoint is an outlier when `score = (x - mean) / sd` is at least `threshold` *and* the
 *   ratio `(value + 1) / (expected + 1)` is at least `minRatio` (in the flagged direction): the score
 *   protects noisy low counts, the ratio protects high, very regular counts whose tiny noise would
 *   make a 20 % change look like 10 sd.
 *
 * No seasonal (time-of-day) table: the mean forgets with a half-life of ~14 datapoints, which follows a
 * daily rhythm of 0.3x to 1.7x with a lag under 10 %, while a table needs several days before each
 * bucket is trusted, and many IoT fleets have no daily rhythm at all. The price: a change slower than
 * the mean's memory (a ramp over an hour or more) is absorbed, like a legitimate growth; absolute
 * ceilings are the job of rule behaviours.
 *
 * Limits, measured on simulated Poisson traffic with a daily rhythm: a 10x jump alarms within two
 * datapoints when the key's expected count is about 10 or more per interval; at 1 to 3 per interval
 * it is often later or never (one minute of a sparse count is weak evidence): give sparse metrics a
 * longer interval. After an episode the expected value stays raised for an hour or two, as the mean
 * comes back at the slow rate. Feeding zeros for hours (a disconnected device) drags the mean down
 * and the reconnection then alarms: pass no datapoint while the subject is absent.
 *
 * Pure: no I/O, no timers, no clock (times are passed in), no imports.
 *
 * @example
 * ```ts
 * const baselines = createBaselines({ interval: 60_000 });
 * const v = baselines.observe('device:pump-1:messages_sent', 42, Date.now());
 * if (v.transition === 'raised') openAlert(v);
 * if (v.transition === 'cleared') resolveAlert(v);
 * await save(baselines.export()); // ... later, after a restart: baselines.restore(await load());
 * ```
 */

/** Which outliers count towards an alarm. Outliers in either direction are learned slowly regardless. */
export const baselineDirections = ['up', 'down', 'both'] as const;
export type BaselineDirection = (typeof baselineDirections)[number];

export interface BaselineSettings {
  /** Weight of a new datapoint in the mean and variance (0.05: half-life of ~14 datapoints). */
  alpha: number;
  /**
   * Suspect datapoints (half-way to an outlier: half the threshold, the square root of minRatio) and
   * every datapoint while the alarm is on are learned at `alpha / slowdown`, their distance to the
   * mean capped at `log(minRatio)`.
   */
  slowdown: number;
  /** Datapoints seen before the first verdict. */
  warmup: number;
  /** Minimum |score|, in standard deviations of `log1p(value)`, for an outlier. */
  threshold: number;
  /** Minimum `(value + 1) / (expected + 1)` (or its inverse for drops) for an outlier. */
  minRatio: number;
  /** Consecutive outliers that raise the alarm. */
  toAlarm: number;
  /** Consecutive datapoints that clear it: not even suspect (see `slowdown`) in the flagged direction. */
  toClear: number;
  direction: BaselineDirection;
  /** Floor on the standard deviation of `log1p(value)` (0.05: about 5 %). */
  minSd: number;
  /** Length of one datapoint's interval, in ms: the unit of `maxGap`. */
  interval: number;
  /** A silence longer than this many intervals makes the mean stale (see `rewarm`). */
  maxGap: number;
  /**
   * After a stale silence, this many datapoints re-anchor the mean (a running average that starts
   * from the stale mean, the learned variance kept) with status `warming`; 0 never re-anchors. Not
   * while the alarm is on: an attack must not become normal by pausing.
   */
  rewarm: number;
}

export const defaultBaselineSettings: Readonly<BaselineSettings> = Object.freeze({
  alpha: 0.05,
  slowdown: 10,
  warmup: 30,
  threshold: 4,
  minRatio: 3,
  toAlarm: 2,
  toClear: 5,
  direction: 'up',
  minSd: 0.05,
  interval: 60_000,
  maxGap: 20,
  rewarm: 10,
});

/** What one key has learned: plain JSON, to save and {@link Baselines.restore} after a restart. */
export interface BaselineState {
  /** Format version; `restore` rejects other versions. */
  v: 1;
  /** EWMA of `log1p(value)`. */
  mean: number;
  /** EWM variance of `log1p(value)` (before the floor). */
  variance: number;
  /** Datapoints seen. */
  samples: number;
  /** Time of the last datapoint (epoch ms). */
  lastAt: number;
  /** Datapoints left in a re-anchoring after a stale silence (0: none). */
  rewarm: number;
  alarm: boolean;
  /** Consecutive outliers (alarm off) or non-outliers (alarm on) so far. */
  streak: number;
}

export interface BaselineVerdict {
  key: string;
  /** `warming` until `warmup` datapoints (and while re-anchoring); then the alarm state. */
  status: 'warming' | 'normal' | 'anomalous';
  /** Set on the datapoint that raised or cleared the alarm: one alert per episode. */
  transition?: 'raised' | 'cleared';
  /** Whether this datapoint counts towards an alarm (outlier in the flagged direction). */
  outlier: boolean;
  value: number;
  /** The typical value learned before this datapoint: `expm1(mean)`. */
  expected: number;
  /** `(log1p(value) - mean) / sd`: positive above the expected value, negative below. */
  score: number;
  /** `(value + 1) / (expected + 1)`. */
  ratio: number;
  samples: number;
}

export interface Baselines {
  readonly settings: Readonly<BaselineSettings>;
  /**
   * Scores `value` (a count over the interval ending at `at`, epoch ms) against what `key` has
   * learned, then learns from it. Allocates the returned verdict (and the key's state the first time).
   * Pass no datapoint for intervals where the subject was absent (a disconnected device): a silence
   * longer than `maxGap` re-anchors instead of alerting on the rhythm's drift.
   */
  observe(key: string, value: number, at: number): BaselineVerdict;
  /** A copy of what `key` has learned. */
  get(key: string): BaselineState | undefined;
  /** Copies of every key's state, JSON-safe. */
  export(): Record<string, BaselineState>;
  /**
   * Loads saved states (replacing those keys): no new warm-up, and the same verdicts as if never
   * stopped. Returns the keys whose state was malformed and skipped.
   */
  restore(states: Record<string, unknown>): string[];
  delete(key: string): boolean;
  size(): number;
}

/** Creates an empty set of baselines. Throws `RangeError` on settings out of range. */
export function createBaselines(overrides: Partial<BaselineSettings> = {}): Baselines {
  const settings = resolveSettings(overrides);
  const { alpha, warmup, threshold, toAlarm, toClear, minSd, direction } = settings;
  const slowAlpha = alpha / settings.slowdown;
  const logMinRatio = Math.log(settings.minRatio);
  const halfLogRatio = logMinRatio / 2;
  const halfThreshold = threshold / 2;
  const minVariance = minSd * minSd;
  const staleAfter = settings.maxGap * settings.interval;
  const flagUp = direction !== 'down';
  const flagDown = direction !== 'up';
  const states = new Map<string, BaselineState>();

  /** The alarm: `toAlarm` outliers in a row raise it, `toClear` datapoints in a row that are not suspect clear it. */
  function judge(s: BaselineState, outlier: boolean, suspect: boolean): BaselineVerdict['transition'] {
    if (!s.alarm) {
      s.streak = outlier ? s.streak + 1 : 0;
      if (s.streak < toAlarm) return undefined;
      s.alarm = true;
      s.streak = 0;
      return 'raised';
    }
    s.streak = suspect ? 0 : s.streak + 1;
    if (s.streak < toClear) return undefined;
    s.alarm = false;
    s.streak = 0;
    return 'cleared';
  }

  /**
   * Learns from a datapoint (`d`: its distance from the mean, `s.samples` already counting it). False while
   * warming up or re-anchoring: the datapoint is learned but not judged.
   */
  function update(s: BaselineState, d: number, suspect: boolean): boolean {
    const n = s.samples - 1;
    if (n < warmup) {
      // Warm-up: a plain running mean and variance (weight 1/(n+1)) until the EWMA's own weight is
      // larger, so the first datapoints are not over-weighted by an EWMA started from nothing.
      learn(s, d, Math.max(alpha, 1 / (n + 1)));
      return false;
    }
    if (s.rewarm > 0) {
      // Re-anchoring: a running average that counts the stale mean as one datapoint. The variance (the
      // key's noise) is kept: relearning it from scratch would under-estimate it and then alert.
      const seen = Math.max(0, settings.rewarm - s.rewarm);
      learnMean(s, d, Math.max(alpha, 1 / (seen + 2)));
      s.rewarm -= 1;
      return false;
    }
    // A suspect datapoint in either direction does not move the variance, and the mean only slowly
    // and by a bounded step (a zero is infinitely far from 200 in log space): an attack or an outage
    // does not become the new normal within minutes, a lasting change does within hours. The variance
    // floor keeps sparse counts, whose tails are skipped here, honest.
    if (s.alarm || suspect) {
      const bounded = Math.min(logMinRatio, Math.max(-logMinRatio, d));
      if (suspect) learnMean(s, bounded, slowAlpha);
      else learn(s, bounded, slowAlpha);
    } else {
      learn(s, d, alpha);
    }
    return true;
  }

  function observe(key: string, value: number, at: number): BaselineVerdict {
    if (!(value >= 0 && value < Infinity)) throw new RangeError(`baseline ${key}: value ${value}`);
    if (!Number.isFinite(at)) throw new RangeError(`baseline ${key}: time ${at}`);
    const x = Math.log1p(value);
    let s = states.get(key);
    if (s === undefined) {
      s = { v: 1, mean: x, variance: 0, samples: 0, lastAt: at, rewarm: 0, alarm: false, streak: 0 };
      states.set(key, s);
    }
    const n = s.samples;
    if (n >= warmup && !s.alarm && s.rewarm === 0 && at - s.lastAt > staleAfter) {
      s.rewarm = settings.rewarm;
      s.streak = 0;
    }

    const mean = s.mean;
    const d = x - mean;
    const sd = Math.sqrt(Math.max(s.variance, minVariance, countVariance(mean)));
    const score = d / sd;
    // Outliers raise the alarm. Half as far (half the score, the square root of the ratio) is the
    // band where a datapoint is suspect: learned slowly, and not yet normal enough to clear an alarm.
    // Without that band a 10x jump of a sparse count, whose datapoints score around the threshold,
    // would be half learned at full speed and never alarm; and an alarm would clear and re-raise.
    const suspectUp = score >= halfThreshold && d >= halfLogRatio;
    const suspectDown = score <= -halfThreshold && d <= -halfLogRatio;
    const outlier =
      (flagUp && suspectUp && score >= threshold && d >= logMinRatio) ||
      (flagDown && suspectDown && score <= -threshold && d <= -logMinRatio);
    const verdict: BaselineVerdict = {
      key,
      status: 'warming',
      outlier: false,
      value,
      expected: Math.expm1(mean),
      score,
      ratio: Math.exp(d),
      samples: n + 1,
      transition: undefined, // one object shape for every verdict
    };
    s.samples = n + 1;
    s.lastAt = at;

    if (!update(s, d, suspectUp || suspectDown)) return verdict;

    verdict.outlier = outlier;
    verdict.transition = judge(s, outlier, (flagUp && suspectUp) || (flagDown && suspectDown));
    verdict.status = s.alarm ? 'anomalous' : 'normal';
    return verdict;
  }

  return {
    settings,
    observe,
    get: (key) => {
      const s = states.get(key);
      return s === undefined ? undefined : copy(s);
    },
    export: () => {
      const out: Record<string, BaselineState> = {};
      for (const [key, s] of states) out[key] = copy(s);
      return out;
    },
    restore: (saved) => {
      const rejected: string[] = [];
      for (const [key, s] of Object.entries(saved)) {
        // Copied field by field: a saved row must not smuggle anything else into the hot path's objects.
        if (isBaselineState(s)) states.set(key, copy(s));
        else rejected.push(key);
      }
      return rejected;
    },
    delete: (key) => states.delete(key),
    size: () => states.size,
  };
}

/**
 * Incremental exponentially weighted mean and variance (Finch 2009, "Incremental calculation of
 * weighted mean and variance", eq. 143), with `d` the datapoint minus the mean before it.
 */
function learn(s: BaselineState, d: number, a: number): void {
  const step = a * d;
  s.mean += step;
  s.variance = (1 - a) * (s.variance + d * step);
}

/** `learn` for the mean only: the variance (the key's noise) is kept. */
function learnMean(s: BaselineState, d: number, a: number): void {
  s.mean += a * d;
}

/**
 * Variance of `log1p(N)` for a Poisson count `N` of mean `lambda = expm1(mean)`, by the delta method:
 * `lambda / (1 + lambda)^2 = u (1 - u)` with `u = exp(-mean)`. Its maximum (0.25, at lambda = 1) is kept
 * below 1: an all-zero series still tolerates a few events.
 */
function countVariance(mean: number): number {
  const u = Math.exp(-Math.max(mean, Math.LN2));
  return u * (1 - u);
}

function resolveSettings(overrides: Partial<BaselineSettings>): Readonly<BaselineSettings> {
  const s: BaselineSettings = { ...defaultBaselineSettings, ...overrides };
  const checks: [keyof BaselineSettings, boolean][] = [
    ['alpha', s.alpha > 0 && s.alpha <= 1],
    ['slowdown', s.slowdown >= 1],
    ['warmup', Number.isInteger(s.warmup) && s.warmup >= 1],
    ['threshold', s.threshold > 0],
    ['minRatio', s.minRatio >= 1],
    ['toAlarm', Number.isInteger(s.toAlarm) && s.toAlarm >= 1],
    ['toClear', Number.isInteger(s.toClear) && s.toClear >= 1],
    ['direction', (baselineDirections as readonly string[]).includes(s.direction)],
    ['minSd', s.minSd > 0],
    ['interval', s.interval > 0],
    ['maxGap', s.maxGap >= 1],
    ['rewarm', Number.isInteger(s.rewarm) && s.rewarm >= 0],
  ];
  for (const [name, ok] of checks) {
    if (!ok) throw new RangeError(`baseline setting ${name}: ${String(s[name])}`);
  }
  return Object.freeze(s);
}

function copy(s: BaselineState): BaselineState {
  const { v, mean, variance, samples, lastAt, rewarm, alarm, streak } = s;
  return { v, mean, variance, samples, lastAt, rewarm, alarm, streak };
}

function isBaselineState(s: unknown): s is BaselineState {
  if (typeof s !== 'object' || s === null) return false;
  const o = s as Record<string, unknown>;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  return (
    o.v === 1 &&
    Number.isFinite(o.mean) &&
    Number.isFinite(o.variance) &&
    (o.variance as number) >= 0 &&
    count(o.samples) &&
    Number.isFinite(o.lastAt) &&
    count(o.rewarm) &&
    typeof o.alarm === 'boolean' &&
    count(o.streak)
  );
}
