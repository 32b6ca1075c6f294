import { describe, expect, it } from 'vitest';
import { renewalDue } from './renewal.ts';

describe('renewalDue', () => {
  const validity = { notBefore: 0, notAfter: 90_000 };

  it('waits while at least a third of the lifetime remains', () => {
    expect(renewalDue(validity, 0)).toBe(false);
    expect(renewalDue(validity, 60_000)).toBe(false); // exactly a third left
  });

  it('renews once less than a third remains, and after expiry', () => {
    expect(renewalDue(validity, 60_001)).toBe(true);
    expect(renewalDue(validity, 120_000)).toBe(true);
  });

  it('honours another threshold', () => {
    expect(renewalDue(validity, 30_000, 0.5)).toBe(false);
    expect(renewalDue(validity, 50_000, 0.5)).toBe(true);
  });
});
