import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tableOwners, type TableName } from './table-owners.ts';

/**
 * Each module owns its tables (DESIGN.md rule 2): a Kysely write (`insertInto`, `updateTable`, `deleteFrom`,
 * `replaceInto`, `mergeInto`) or a raw `sql` INSERT/UPDATE/DELETE on a table outside the writing module fails
 * here, naming the file and the table. Reads are not checked.
 */
const srcRoot = path.resolve(import.meta.dirname, '..');

/** Migrations evolve every table's schema (and backfill it): the store's own business, not a module's write. */
const exemptFiles = new Set(['store/migrations.ts']);

/**
 * Writes waiting for their owner's door (each entry names the module, the table and why). An entry that no
 * longer matches a write fails too, so the list only shrinks.
 */
const allowed: { module: string; table: TableName; why: string }[] = [];

export interface Write {
  file: string;
  line: number;
  /** The table written, or undefined when the code names it at run time. */
  table: string | undefined;
  how: string;
}

const builderWrite = /\.\s*(insertInto|updateTable|deleteFrom|replaceInto|mergeInto)\s*\(\s*([^)]*?)\s*[),]/g;
const sqlTemplate = /\bsql\s*(?:<[^>]*>)?\s*`([^`]*)`/g;
const sqlWrite =
  /\b(insert\s+into|replace\s+into|delete\s+from|update)\s+"?([a-z_][a-z0-9_]*)"?(\s+set\b)?/gi;

const lineAt = (text: string, index: number) => text.slice(0, index).split('\n').length;

/** The writes in one source file's text. */
export function writesIn(file: string, text: string): Write[] {
  const found: Write[] = [];
  for (const m of text.matchAll(builderWrite)) {
    const arg = m[2] ?? '';
    const line = lineAt(text, m.index);
    const how = `${m[1]}(${arg})`;
    const literal = /^(['"])([a-z_][a-z0-9_]*)(?:\s+as\s+\w+)?\1$/i.exec(arg);
    if (literal) {
      found.push({ file, line, table: literal[2], how });
      continue;
    }
    // `for (const table of ['a', 'b'] as const) tx.deleteFrom(table)`: the tables the loop names.
    const loop = /^[A-Za-z_$][\w$]*$/.test(arg)
      ? new RegExp(`(?:const|let)\\s+${arg}\\s+of\\s+\\[([^\\]]*)\\]`).exec(text)
      : null;
    const listed = loop ? [...(loop[1] ?? '').matchAll(/['"]([a-z_][a-z0-9_]*)['"]/g)].map((x) => x[1]) : [];
    if (listed.length === 0) found.push({ file, line, table: undefined, how });
    for (const table of listed) found.push({ file, line, table, how });
  }
  for (const t of text.matchAll(sqlTemplate)) {
    for (const w of (t[1] ?? '').matchAll(sqlWrite)) {
      const verb = (w[1] ?? '').toLowerCase();
      // `update x set` is a write; `do update set` (an upsert's tail) names no table.
      if (verb === 'update' && !w[3]) continue;
      found.push({
        file,
        line: lineAt(text, t.index + 1 + w.index),
        table: w[2],
        how: `sql ${verb} ${w[2]}`,
      });
    }
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'test-support' ? [] : sourceFiles(full);
    return /\.ts$/.test(entry.name) && !/\.(test|bench)\.ts$/.test(entry.name) ? [full] : [];
  });
}

const moduleOf = (file: string) => (file.includes('/') ? (file.split('/')[0] ?? '') : '(root)');

function allWrites(): Write[] {
  return sourceFiles(srcRoot).flatMap((full) => {
    const file = path.relative(srcRoot, full).split(path.sep).join('/');
    return exemptFiles.has(file) ? [] : writesIn(file, readFileSync(full, 'utf8'));
  });
}

describe('table ownership', () => {
  const writes = allWrites();

  it('every table in the schema has an owner, and every owner is a module folder', () => {
    const schema = readFileSync(path.join(srcRoot, 'store', 'schema.ts'), 'utf8');
    const body = /export interface Database \{([^}]*)\}/.exec(schema)?.[1] ?? '';
    const tables = [...body.matchAll(/^\s*([a-z_][a-z0-9_]*)\s*:/gm)].map((m) => m[1]);
    expect(tables.length).toBeGreaterThan(10);
    expect(tables.filter((t) => !(t !== undefined && t in tableOwners))).toEqual([]);
    // `risk` is the module vulnerability data is moving to; it may not exist yet.
    const folders = new Set(
      readdirSync(srcRoot, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name),
    );
    const owners = new Set<string>(Object.values(tableOwners));
    expect([...owners].filter((o) => o !== 'risk' && !folders.has(o))).toEqual([]);
  });

  it('finds the writes (the scanner is not blind)', () => {
    expect(writes.filter((w) => w.table === 'devices').length).toBeGreaterThan(0);
    expect(writesIn('x/y.ts', "await db\n  .insertInto('bans')\n  .values(row)").map((w) => w.table)).toEqual(
      ['bans'],
    );
    expect(writesIn('x/y.ts', "q.deleteFrom(kind === 'a' ? 'zones' : 'conduits')")[0]?.table).toBeUndefined();
    expect(
      writesIn('x/y.ts', "for (const table of ['sessions', 'api_tokens'] as const) tx.deleteFrom(table)").map(
        (w) => w.table,
      ),
    ).toEqual(['sessions', 'api_tokens']);
    expect(
      writesIn(
        'x/y.ts',
        'await sql`UPDATE devices SET x = 1`.execute(db); sql`insert into t (a) values (1) on conflict do update set a = 2`',
      ).map((w) => w.table),
    ).toEqual(['devices', 't']);
  });

  it('only a table’s owner writes it', () => {
    const violations = writes
      .filter((w) => {
        const module = moduleOf(w.file);
        if (w.table === undefined) return true;
        const owner: string | undefined = (tableOwners as Record<string, string>)[w.table];
        if (owner === module) return false;
        return !allowed.some((a) => a.module === module && a.table === w.table);
      })
      .map((w) =>
        w.table === undefined
          ? `${w.file}:${w.line}: ${w.how} names its table at run time (name it literally)`
          : `${w.file}:${w.line}: ${moduleOf(w.file)} writes ${w.table}, owned by ${(tableOwners as Record<string, string>)[w.table] ?? 'no module'} (${w.how})`,
      );
    expect(violations).toEqual([]);
  });

  it('every allow-list entry still matches a write (the list only shrinks)', () => {
    const stale = allowed.filter(
      (a) => !writes.some((w) => moduleOf(w.file) === a.module && w.table === a.table),
    );
    expect(stale).toEqual([]);
  });
});
