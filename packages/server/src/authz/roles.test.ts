import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { can, permissions, roles } from './roles.ts';

describe('roles', () => {
  it('are documented in docs/users.md exactly as roles.ts grants them', () => {
    const doc = readFileSync(new URL('../../../../docs/users.md', import.meta.url), 'utf8');
    const header = doc.split('\n').find((l) => /^\|\s*permission\s*\|/.test(l));
    expect(header, 'the role table of docs/users.md').toBeDefined();
    const columns = header!
      .split('|')
      .slice(2, -1)
      .map((c) => c.trim());
    expect(columns).toEqual([...roles]);
    for (const permission of permissions) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${permission}\``));
      expect(row, `${permission} has a row`).toBeDefined();
      const marks = row!
        .split('|')
        .slice(2, -1)
        .map((c) => c.trim() === '✓');
      expect({ permission, marks }).toEqual({ permission, marks: roles.map((r) => can(r, permission)) });
    }
  });
});
