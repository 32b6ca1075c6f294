import { BulwarkError } from '@bulwark/protocol';

const units = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const durationPattern = /^(\d+)(ms|s|m|h)$/;

/**
 * Parses a human duration (`500ms`, `30s`, `5m`, `1h`) into milliseconds. A unit is required so
 * `--heartbeat-interval 30` cannot be misread as 30 ms or 30 min.
 *
 * @example
 * ```ts
 * parseDuration('30s'); // 30000
 * ```
 */
export function parseDuration(text: string): number {
  const match = durationPattern.exec(text.trim());
  const amount = match?.[1];
  const unit = match?.[2] as keyof typeof units | undefined;
  if (amount === undefined || unit === undefined) {
    throw new BulwarkError(
      'validation_failed',
      `invalid duration "${text}": use a number and a unit, e.g. 30s, 5m, 1h`,
    );
  }
  const ms = Number(amount) * units[unit];
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new BulwarkError('validation_failed', `invalid duration "${text}": must be greater than zero`);
  }
  return ms;
}
