import { describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { attackKinds, olderVersion, parseAttackKinds } from './attacks.ts';

describe('simulated attacks', () => {
  it('reads --attack as a list, "all" in the order they rotate, each kind once', () => {
    expect(parseAttackKinds('tamper,scan')).toEqual(['tamper', 'scan']);
    expect(parseAttackKinds(' Scan , tamper,scan ')).toEqual(['scan', 'tamper']);
    expect(parseAttackKinds('all')).toEqual([...attackKinds]);
    expect(parseAttackKinds('flood,all')[0]).toBe('flood');
    expect(() => parseAttackKinds('ddos')).toThrow(BulwarkError);
    expect(() => parseAttackKinds('ddos')).toThrow(
      'unknown attack "ddos": one of tamper, flood, scan, guess, clone, rogue-firmware, or all',
    );
  });

  it('offers the rogue image as a version below the installed one', () => {
    expect(olderVersion('2.3.1')).toBe('2.2.0');
    expect(olderVersion('1.0.7')).toBe('0.9.0');
    expect(olderVersion('0.0.3')).toBe('0.0.1');
    expect(olderVersion(null)).toBe('0.9.0');
    expect(olderVersion('factory')).toBe('0.9.0');
  });
});
