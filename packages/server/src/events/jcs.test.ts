import canonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './jcs.ts';

/** A small seeded PRNG, so a failure can be reproduced. */
function prng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

function randomValue(rand: () => number, depth: number): unknown {
  const pick = Math.floor(rand() * (depth > 3 ? 5 : 7));
  const strings = [
    '',
    'a',
    'B',
    'é',
    '\u20ac',
    '\ud83d\ude00',
    'line\nbreak',
    'quote"back\\slash',
    '\u0001',
    'Z',
    'aa',
  ];
  const numbers = [
    0,
    -0,
    1,
    -1,
    0.1,
    1e21,
    1e-7,
    123456789.123,
    Number.MAX_SAFE_INTEGER,
    5e-324,
    -2.5e300,
    0.1 + 0.2,
  ];
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return numbers[Math.floor(rand() * numbers.length)];
    case 3:
    case 4:
      return strings[Math.floor(rand() * strings.length)];
    case 5:
      return Array.from({ length: Math.floor(rand() * 4) }, () => randomValue(rand, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rand() * 5); i > 0; i--)
        o[strings[Math.floor(rand() * strings.length)]! + String(Math.floor(rand() * 3))] = randomValue(
          rand,
          depth + 1,
        );
      return o;
    }
  }
}

describe('canonical JSON (RFC 8785)', () => {
  it('agrees with the canonicalize package on 5,000 random JSON values', () => {
    const rand = prng(42);
    for (let i = 0; i < 5000; i++) {
      const value = randomValue(rand, 0);
      expect(canonicalJson(value)).toBe(canonicalize(value));
    }
  });

  it('sorts keys by UTF-16 code units and writes numbers as ECMAScript does (RFC 8785 §3.2.3, appendix B)', () => {
    expect(canonicalJson({ '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, '1': 4, '\u0080': 5, ö: 6 })).toBe(
      '{"\\r":2,"1":4,"\u0080":5,"ö":6,"\u20ac":1,"\ud83d\ude00":3}',
    );
    expect(canonicalJson([1e21, 1e-7, -0, 0.000001, 333333333.3333333])).toBe(
      '[1e+21,1e-7,0,0.000001,333333333.3333333]',
    );
    expect(canonicalJson({ a: undefined, b: [undefined] })).toBe('{"b":[null]}');
    expect(() => canonicalJson({ n: NaN })).toThrow(/NaN/);
  });
});
