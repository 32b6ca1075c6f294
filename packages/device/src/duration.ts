import { BulwarkError, DURATION_PATTERN, durationMs } from '@bulwark/protocol';

/**
 * The agent's intervals are whole numbers of ms, s, m or h: protocol's duration grammar (DURATION_PATTERN)
 * without fractions or days, which no agent interval needs.
 */
const agentUnits = new Set(['ms', 's', 'm', 'h']);

/**
 * Parses a human duration (`500ms`, `30s`, `5m`, `1h`) into milliseconds, with protocol's grammar. A unit is
 * required so `--heartbeat-interval 30` cannot be misread as 30 ms or 30 min.
 *
 * @example
 * ```ts
 * parseDuration('30s'); // 30000
 * ```
 */
export function parseDuration(text: string): number {
  const match = DURATION_PATTERN.exec(text.trim());
  const ms = durationMs(text);
  if (!match || match[1]?.includes('.') || !agentUnits.has(match[2] ?? '') || ms === undefined) {
    throw new BulwarkError(
      'validation_failed',
      `invalid duration "${text}": use a number and a unit, e.g. 30s, 5m, 1h`,
    );
  }
  if (ms <= 0) {
    throw new BulwarkError('validation_failed', `invalid duration "${text}": must be greater than zero`);
  }
  return ms;
}
