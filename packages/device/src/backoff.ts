/** Exponential backoff settings. All durations in milliseconds. */
export interface BackoffOptions {
  /** Delay before the first retry. */
  readonly initialMs: number;
  /** Upper bound of any delay. */
  readonly maxMs: number;
  /** Growth per attempt. */
  readonly factor: number;
  /**
   * Fraction of each delay that is randomised, 0..1. With 0.5 a nominal 8 s delay becomes a random
   * value in [4 s, 8 s], so a fleet that lost its broker at the same instant does not reconnect in
   * lockstep ("equal jitter").
   */
  readonly jitter: number;
}

/** 1 s doubling to 60 s, half of each delay randomised. */
export const defaultBackoff: BackoffOptions = Object.freeze({
  initialMs: 1_000,
  maxMs: 60_000,
  factor: 2,
  jitter: 0.5,
});

/**
 * The delay before retry number `attempt` (0-based). Pure: pass `random` to make it deterministic.
 * The result is always in `[nominal * (1 - jitter), nominal]` where
 * `nominal = min(maxMs, initialMs * factor ** attempt)`.
 *
 * @example
 * ```ts
 * backoffDelay(0, defaultBackoff, () => 1); // 1000
 * backoffDelay(3, defaultBackoff, () => 1); // 8000
 * backoffDelay(20, defaultBackoff, () => 1); // 60000 (capped)
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = defaultBackoff,
  random: () => number = Math.random,
): number {
  const nominal = Math.min(options.maxMs, options.initialMs * options.factor ** Math.max(0, attempt));
  // `random()` is in [0, 1); 1 - random() is in (0, 1], so the nominal delay itself is reachable.
  return Math.round(nominal * (1 - options.jitter * random()));
}

/** A backoff sequence: {@link Backoff.next} grows the delay, {@link Backoff.reset} starts over. */
export interface Backoff {
  /** The delay to wait before the next attempt; each call counts one attempt. */
  next(): number;
  /** Call after a successful connection: the next failure waits `initialMs` again. */
  reset(): void;
  /** Attempts since the last reset. */
  readonly attempts: number;
}

/**
 * @example
 * ```ts
 * const backoff = createBackoff({ initialMs: 1000, maxMs: 60_000 });
 * setTimeout(reconnect, backoff.next());
 * client.on('connect', () => backoff.reset());
 * ```
 */
export function createBackoff(
  options: Partial<BackoffOptions> = {},
  random: () => number = Math.random,
): Backoff {
  const settings = validateBackoff({ ...defaultBackoff, ...options });
  let attempts = 0;
  return {
    next: () => backoffDelay(attempts++, settings, random),
    reset: () => {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

function validateBackoff(options: BackoffOptions): BackoffOptions {
  const { initialMs, maxMs, factor, jitter } = options;
  if (!(initialMs > 0) || !(maxMs >= initialMs) || !(factor >= 1) || !(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(
      `invalid backoff: need 0 < initialMs <= maxMs, factor >= 1, 0 <= jitter <= 1 (got ${JSON.stringify(options)})`,
    );
  }
  return Object.freeze({ ...options });
}
