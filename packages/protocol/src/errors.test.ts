import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BulwarkError, errorCodes, httpStatusOf, mqttConnackOf } from './index.ts';

describe('error codes', () => {
  it('maps every code to an HTTP status and a CONNACK code', () => {
    for (const code of errorCodes) {
      expect(httpStatusOf(code)).toBeGreaterThanOrEqual(400);
      expect([1, 2, 3, 4, 5]).toContain(mqttConnackOf(code));
    }
  });

  it('documents every code in docs/errors.md with its status', () => {
    const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    for (const code of errorCodes) {
      expect(doc).toMatch(
        new RegExp(
          `\\|\\s*\`${code}\`\\s*\\|\\s*${httpStatusOf(code)}\\s*\\|\\s*${mqttConnackOf(code)}\\s*\\|`,
        ),
      );
    }
  });

  it('wraps unknown throws as internal, keeping the cause', () => {
    const cause = new Error('disk on fire');
    const e = BulwarkError.from(cause);
    expect(e.code).toBe('internal');
    expect(e.cause).toBe(cause);
    expect(e.message).not.toContain('disk');
  });
});
