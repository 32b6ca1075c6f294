import { BulwarkError } from '@bulwark/protocol';

/** A CSV record and the line it starts on (a quoted field may span lines). */
export interface CsvRecord {
  line: number;
  fields: string[];
}

/** Bounds checked before anything is parsed (principle 8: everything bounded before it is allocated). */
export const IMPORT_MAX_BYTES = 16 * 1024 * 1024;
export const IMPORT_MAX_ROWS = 100_000;

/**
 * Parses CSV as RFC 4180 §2 defines it: records end with CRLF (a bare LF is accepted too), fields are
 * separated by commas, a field with a comma, quote or line break is enclosed in double quotes and a quote
 * inside it is doubled (§2.6, §2.7). Anything else — a quote inside an unquoted field, text after a closing
 * quote, a quote left open — is an error naming the line, and nothing is imported: a file whose structure
 * is in doubt cannot be split into rows safely. Blank lines are skipped. A UTF-8 BOM is ignored.
 */
export function parseCsv(text: string): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let value = '';
      if (text[i] === '"') {
        const opened = line;
        i++;
        for (;;) {
          if (i >= n)
            throw new BulwarkError('validation_failed', `line ${opened}: a quoted field is not closed`);
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              value += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          value += c;
          i++;
        }
        const next = text[i];
        if (i < n && next !== ',' && next !== '\n' && !(next === '\r' && text[i + 1] === '\n'))
          throw new BulwarkError('validation_failed', `line ${line}: text after a closing quote`);
      } else {
        let j = i;
        while (j < n && text[j] !== ',' && text[j] !== '\n' && !(text[j] === '\r' && text[j + 1] === '\n')) {
          if (text[j] === '"')
            throw new BulwarkError(
              'validation_failed',
              `line ${line}: a quote inside an unquoted field (enclose the field in quotes and double the quote)`,
            );
          j++;
        }
        value = text.slice(i, j);
        i = j;
      }
      fields.push(value);
      if (text[i] === ',') {
        i++;
        continue;
      }
      break; // end of record (line break or end of text)
    }
    if (text[i] === '\r') i++;
    if (text[i] === '\n') {
      i++;
      line++;
    }
    if (!(fields.length === 1 && fields[0] === '')) {
      records.push({ line: start, fields });
      if (records.length > IMPORT_MAX_ROWS + 1)
        throw new BulwarkError('validation_failed', `more than ${IMPORT_MAX_ROWS} rows: split the file`);
    }
  }
  return records;
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
    for (const name of names)
      if (name.startsWith('attr.') && cell(name) !== '') attributes[name.slice(5)] = cell(name)!;
    const group = cell('group');
    return { line: record.line, id, group: group === undefined || group === '' ? null : group, attributes };
  });
}
