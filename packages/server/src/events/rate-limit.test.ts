import { describe, expect, it } from 'vitest';
import { createEventRateLimit } from './index.ts';

describe('event rate limit per source', () => {
  it('records up to max per window, then reports the suppressed count with the next recorded event', () => {
    let t = 0;
    const limit = createEventRateLimit({ max: 3, windowMs: 1000, now: () => t });
    const results = Array.from({ length: 5 }, () => limit.admit('10.0.0.1').record);
    expect(results).toEqual([true, true, true, false, false]);
    expect(limit.admit('10.0.0.2').record).toBe(true); // other sources are unaffected
    t = 1000;
    expect(limit.admit('10.0.0.1')).toEqual({ record: true, suppressed: 2 });
  });
});
