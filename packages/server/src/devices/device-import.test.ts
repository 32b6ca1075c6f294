import { describe, expect, it } from 'vitest';
import { importRows, parseCsv } from './device-import.ts';

const fields = (text: string) => parseCsv(text).map((r) => r.fields);

describe('parseCsv (RFC 4180)', () => {
  it('reads CRLF and LF records, quoted fields with commas, doubled quotes and line breaks', () => {
    expect(fields('a,b\r\n1,2\r\n')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
    expect(fields('a,b\n"x, y","say ""hi"""\n"two\r\nlines",\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['two\r\nlines', ''],
    ]);
    // The last record may end without a line break (§2.2); empty fields are kept; blank lines are skipped.
    expect(fields('a,,c\n\n,,\nlast')).toEqual([['a', '', 'c'], ['', '', ''], ['last']]);
    // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first field.
    expect(fields('\uFEFFid\nx')).toEqual([['id'], ['x']]);
  });

  it('numbers each record by the line it starts on, across quoted line breaks', () => {
    expect(parseCsv('id,note\n"a","1\n2\n3"\nb,x\n').map((r) => r.line)).toEqual([1, 2, 5]);
  });

  it('refuses what RFC 4180 does not allow, naming the line', () => {
    expect(() => parseCsv('id\nab"c\n')).toThrow(/not valid CSV: Invalid Opening Quote: .* at line 2/);
    expect(() => parseCsv('id\n"abc"x\n')).toThrow(/not valid CSV: Invalid Closing Quote: .* at line 2/);
    expect(() => parseCsv('id\n"abc\n\n')).toThrow(/not valid CSV: Quote Not Closed/);
  });
});

describe('importRows', () => {
  it('maps id, group and attr.NAME columns; a row with the wrong field count is an error for that line', () => {
    const rows = importRows(parseCsv('id,group,attr.line\np-1,g,l1\np-2,,\np-3,g\n'));
    expect(rows).toEqual([
      { line: 2, id: 'p-1', group: 'g', attributes: { line: 'l1' } },
      { line: 3, id: 'p-2', group: null, attributes: {} },
      { line: 4, id: 'p-3', error: '2 fields where the header has 3' },
    ]);
  });

  it('refuses a header it does not understand', () => {
    expect(() => importRows(parseCsv('id,colour\n'))).toThrow('line 1: unknown column "colour"');
    expect(() => importRows(parseCsv('group\n'))).toThrow('the header has no id column');
    expect(() => importRows(parseCsv('id,id\n'))).toThrow('column id appears twice');
    expect(() => importRows([])).toThrow('the file is empty');
  });
});
