import { describe, expect, it } from 'vitest';
import { parseDuration } from './duration.ts';

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
  ])('%s is %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['30', '0s', '-5s', '1.5s', '5 m', '5d', '', 's'])('rejects "%s"', (text) => {
    expect(() => parseDuration(text)).toThrow(/invalid duration/);
  });
});
