/**
 * Values every operation shares, defined once: the severity scale, the duration grammar and the page shape.
 * Routes, the CLI and the console validate with these, so `--min-severity Critical` and `?minSeverity=critical`
 * mean the same thing or fail the same way.
 */
import { BulwarkError } from './errors.ts';

/** The one severity scale (alerts, advisories, notification filters), lowest first. */
export const severities = ['low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof severities)[number];

/** Parses a severity as a person types it (any case); anything else is a validation error naming the choices. */
export function parseSeverity(text: string, field = 'severity'): Severity {
  const value = text.trim().toLowerCase();
  const found = severities.find((s) => s === value);
  if (!found)
    throw new BulwarkError('validation_failed', `${field} "${text}" is not one of ${severities.join(', ')}`);
  return found;
}

/** Orders severities: `severityRank('high') > severityRank('medium')`. */
export function severityRank(severity: Severity): number {
  return severities.indexOf(severity);
}

const durationUnits = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** The one duration grammar: a number and a unit, `500ms`, `30s`, `15m`, `24h`, `7d`. */
export const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/** Milliseconds of a duration in the one grammar, or undefined when it is not one. */
export function durationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const ms = Math.round(Number(match[1]) * durationUnits[match[2] as keyof typeof durationUnits]);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** As durationMs, or a validation error naming the field and the grammar. */
export function parseDurationMs(text: string, field = 'duration'): number {
  const ms = durationMs(text);
  if (ms === undefined || ms <= 0)
    throw new BulwarkError(
      'validation_failed',
      `${field} "${text}" is not a duration: use a number and a unit, e.g. 500ms, 30s, 15m, 24h, 7d`,
    );
  return ms;
}

/** The one page shape: items, and the cursor for the next page (null on the last). */
export interface Page<T> {
  items: T[];
  next: string | null;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A payload's text when it is valid UTF-8, else undefined (never a text with replacement characters). */
export function utf8Text(payload: Uint8Array | string): string | undefined {
  if (typeof payload === 'string') return payload;
  try {
    return strictUtf8.decode(payload);
  } catch {
    return undefined;
  }
}

/** A payload as a JSON value when it is UTF-8 JSON, else undefined. */
export function jsonOfPayload(payload: Uint8Array | string): unknown {
  const text = utf8Text(payload);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
