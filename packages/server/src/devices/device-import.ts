import { parse } from 'csv-parse/sync';
import { BulwarkError } from '@bulwark/protocol';

/** A CSV record and the line it starts on (a quoted field may span lines). */
export interface CsvRecord {
  line: number;
  fields: string[];
}

/** Bounds checked before anything is parsed (principle 8: everything bounded before it is allocated). */
export const IMPORT_MAX_BYTES = 16 * 1024 * 1024;
export const IMPORT_MAX_ROWS = 100_000;

const lineBreaks = (value: string) => value.split('\n').length - 1;

/**
 * Parses CSV (RFC 4180) with csv-parse: records end with CRLF or LF, a field with a comma, quote or line
 * break is enclosed in double quotes and a quote inside it is doubled (§2.6, §2.7). Anything else — a quote
 * inside an unquoted field, text after a closing quote, a quote left open — is an error naming the line, and
 * nothing is imported: a file whose structure is in doubt cannot be split into rows safely. Blank lines are
 * skipped; a UTF-8 BOM is ignored. Each record keeps the line it starts on (a quoted field may span lines).
 */
export function parseCsv(text: string): CsvRecord[] {
  let parsed: { record: string[]; info: { lines: number } }[];
  try {
    // csv-parse's typings do not follow its `info` option, which wraps each record with its position.
    parsed = (parse as (input: string, options: object) => typeof parsed)(text, {
      bom: true,
      info: true,
      record_delimiter: ['\r\n', '\n'],
      relax_column_count: true, // a row with the wrong field count is an error for that row only (importRows)
      skip_empty_lines: true,
      to: IMPORT_MAX_ROWS + 2,
    });
  } catch (err) {
    const e = err as Error & { code?: string };
    throw new BulwarkError('validation_failed', `not valid CSV: ${e.message}`);
  }
  if (parsed.length > IMPORT_MAX_ROWS + 1)
    throw new BulwarkError('validation_failed', `more than ${IMPORT_MAX_ROWS} rows: split the file`);
  return parsed.map(({ record, info }) => ({
    line: info.lines - record.reduce((n, field) => n + lineBreaks(field), 0),
    fields: record,
  }));
}

/** One device to import: columns `id`, `group` and `attr.NAME` (an attribute, as `${device.attr.NAME}`). */
export interface ImportRow {
  line: number;
  id: string;
  group: string | null;
  attributes: Record<string, string>;
}

export type ImportResult =
  | { line: number; id: string; ok: true; token: string; expiresAt: number }
  | { line: number; id: string; ok: false; error: string };

/**
 * Reads the header and turns each record into a row, or into an error for that line (a wrong number of
 * fields). The header itself must be right, or nothing is imported.
 */
export function importRows(
  records: CsvRecord[],
): (ImportRow | { line: number; id: string; error: string })[] {
  const [header, ...rows] = records;
  if (!header)
    throw new BulwarkError(
      'validation_failed',
      'the file is empty: it needs a header line (id,group,attr.NAME…)',
    );
  const names = header.fields.map((f) => f.trim());
  const seen = new Set<string>();
  for (const name of names) {
    if (name !== 'id' && name !== 'group' && !/^attr\.[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(name))
      throw new BulwarkError(
        'validation_failed',
        `line ${header.line}: unknown column "${name}" (columns: id, group, attr.NAME)`,
      );
    if (seen.has(name))
      throw new BulwarkError('validation_failed', `line ${header.line}: column ${name} appears twice`);
    seen.add(name);
  }
  if (!seen.has('id'))
    throw new BulwarkError('validation_failed', `line ${header.line}: the header has no id column`);
  return rows.map((record) => {
    const cell = (name: string) => record.fields[names.indexOf(name)];
    const id = cell('id') ?? '';
    if (record.fields.length !== names.length)
      return {
        line: record.line,
        id,
        error: `${record.fields.length} fields where the header has ${names.length}`,
      };
    const attributes: Record<string, string> = {};
    for (const name of names) {
      const value = cell(name);
      if (name.startsWith('attr.') && value !== undefined && value !== '') attributes[name.slice(5)] = value;
    }
    const group = cell('group');
    return { line: record.line, id, group: group === undefined || group === '' ? null : group, attributes };
  });
}
