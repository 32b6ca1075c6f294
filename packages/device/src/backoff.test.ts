import { describe, expect, it } from 'vitest';
import { backoffDelay, createBackoff, defaultBackoff } from './backoff.ts';

const noJitter = () => 0; // 1 - jitter * 0 = the nominal delay
const maxJitter = () => 0.999_999;

describe('backoffDelay', () => {
  it('starts at 1 s and doubles', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, defaultBackoff, noJitter))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000,
    ]);
  });

  it('is capped at 60 s, however many attempts failed', () => {
    expect(backoffDelay(6, defaultBackoff, noJitter)).toBe(60_000);
    expect(backoffDelay(10_000, defaultBackoff, noJitter)).toBe(60_000);
  });

  it('stays within [nominal * (1 - jitter), nominal]', () => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const nominal = Math.min(60_000, 1_000 * 2 ** attempt);
      expect(backoffDelay(attempt, defaultBackoff, maxJitter)).toBeGreaterThanOrEqual(nominal / 2);
      for (let i = 0; i < 200; i++) {
        const delay = backoffDelay(attempt, defaultBackoff);
        expect(delay).toBeGreaterThanOrEqual(nominal / 2);
        expect(delay).toBeLessThanOrEqual(nominal);
      }
    }
  });

  it('spreads a fleet out: retries after the same failure are not all equal', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4)));
    expect(delays.size).toBeGreaterThan(10);
  });
});

describe('createBackoff', () => {
  it('grows with each attempt and starts over after reset', () => {
    const backoff = createBackoff({ initialMs: 100, maxMs: 500, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([
      100, 200, 400, 500, 500,
    ]);
    expect(backoff.attempts).toBe(5);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(100);
  });

  it('rejects settings that would not back off', () => {
    expect(() => createBackoff({ initialMs: 0 })).toThrow(RangeError);
    expect(() => createBackoff({ initialMs: 2_000, maxMs: 1_000 })).toThrow(RangeError);
    expect(() => createBackoff({ factor: 0.5 })).toThrow(RangeError);
    expect(() => createBackoff({ jitter: 1.5 })).toThrow(RangeError);
  });
});
