import { z } from 'zod';
import { durationMs, severities } from '../common.ts';

/**
 * A duration in the one grammar (`500ms`, `30s`, `15m`, `24h`, `7d`), parsed to milliseconds. Anything else
 * (a bare number, `forever`, zero) is a validation error naming the grammar.
 */
export const duration = z
  .string()
  .max(16)
  .describe('a duration: a number and a unit, e.g. 500ms, 30s, 15m, 24h, 7d')
  .transform((text, ctx) => {
    const ms = durationMs(text);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({
        code: 'custom',
        message: `"${text}" is not a duration: use a number and a unit, e.g. 500ms, 30s, 15m, 24h, 7d`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** The one severity scale as a schema (lower case, as stored and answered). */
export const severity = z.enum(severities);

/** Epoch milliseconds. */
export const epochMs = z.number().int();
