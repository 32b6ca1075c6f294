import { durationMs } from '@bulwark/protocol';

/**
 * Parses a duration in protocol's one grammar (`500ms`, `30s`, `15m`, `24h`, `7d`). Configuration files
 * also accept a bare number of milliseconds and a space before the unit (`30 s`), as they always have.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    const ms = Math.round(Number(trimmed));
    return Number.isSafeInteger(ms) ? ms : undefined;
  }
  return durationMs(trimmed.replace(/^(\d+(?:\.\d+)?)\s+/, '$1'));
}
