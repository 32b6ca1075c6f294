import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { feedText, kevJson, parseEpss, parseKev, scoreDateOfName } from './feeds.ts';
import { epssCsv, kevCatalog, kevEntries, kevEntry } from './feeds.fixtures.ts';

const ROWS = [
  'CVE-2021-44228,0.97565,0.99996',
  'CVE-2019-10744,0.01243,0.85178',
  'CVE-2023-1234567,0.00043,0.05',
] as const;

describe('KEV catalog', () => {
  it('reads a catalog as CISA publishes it', () => {
    const catalog = parseKev(kevCatalog());
    expect(catalog.version).toBe('2024.09.21');
    expect(catalog.released).toBe('2024-09-21T16:30:00.0688Z');
    expect(catalog.entries).toEqual([
      {
        cve: 'CVE-2021-44228',
        vendor: 'Apache',
        product: 'Log4j2',
        name: 'Apache Log4j2 Remote Code Execution Vulnerability',
        dateAdded: '2021-12-10',
        dueDate: '2021-12-24',
        ransomware: 'Known',
      },
      expect.objectContaining({ cve: 'CVE-2019-10744', dateAdded: '2024-02-29', ransomware: 'Unknown' }),
      expect.objectContaining({ cve: 'CVE-2023-1234567', ransomware: null }),
    ]);
  });

  it.each([
    [
      'a cveID not of the pattern',
      [{}, { cveID: 'CVE-21-44228' }],
      /^vulnerabilities\.1\.cveID: must be a CVE id/,
    ],
    ['a lower-case cveID', [{ cveID: 'cve-2021-44228' }], /^vulnerabilities\.0\.cveID: /],
    [
      'a date that does not exist',
      [{}, {}, { dateAdded: '2023-02-29' }],
      /^vulnerabilities\.2\.dateAdded: must be a date, YYYY-MM-DD/,
    ],
    ['a date in another format', [{ dueDate: '12/24/2021' }], /^vulnerabilities\.0\.dueDate: must be a date/],
    ['a missing due date', [{}, { dueDate: undefined }], /^vulnerabilities\.1\.dueDate: is required$/],
    [
      'a missing vendor',
      [{}, {}, { vendorProject: undefined }],
      /^vulnerabilities\.2\.vendorProject: is required$/,
    ],
    [
      'a ransomware use neither Known nor Unknown',
      [{ knownRansomwareCampaignUse: 'Yes' }],
      /^vulnerabilities\.0\.knownRansomwareCampaignUse: must be Known or Unknown/,
    ],
    [
      'a CWE not of the pattern',
      [{ cwes: ['CWE-79', 'XSS'] }],
      /^vulnerabilities\.0\.cwes\.1: must be a CWE id/,
    ],
    ['a field of the wrong type', [{ product: 42 }], /^vulnerabilities\.0\.product: /],
  ])('refuses %s, naming the entry and field', (_what, changes, message) => {
    const entries = kevEntries().map((e, i) => ({ ...e, ...(changes[i] ?? {}) }));
    expect(() => parseKev(kevCatalog(entries))).toThrow(message);
    try {
      parseKev(kevCatalog(entries));
    } catch (err) {
      expect(err).toMatchObject({ code: 'validation_failed' });
    }
  });

  it('refuses a catalog whose head is wrong', () => {
    expect(() => parseKev(kevCatalog(undefined, { catalogVersion: undefined }))).toThrow(
      /^catalogVersion: is required$/,
    );
    expect(() => parseKev(kevCatalog(undefined, { dateReleased: '2024-09-21' }))).toThrow(
      /^dateReleased: must be a date-time/,
    );
    expect(() => parseKev(kevCatalog(undefined, { count: '3' }))).toThrow(/^count: /);
    expect(() => parseKev(kevCatalog(undefined, { vulnerabilities: {} }))).toThrow(/^vulnerabilities: /);
    expect(() => parseKev([kevCatalog()])).toThrow(/^a KEV catalog: Invalid input: expected object/);
    expect(() => parseKev(null)).toThrow(/^a KEV catalog: /);
  });

  it('refuses a count that is not the number of entries', () => {
    expect(() => parseKev(kevCatalog(undefined, { count: 4 }))).toThrow(
      /^count: says 4 vulnerabilities, the catalog lists 3$/,
    );
  });

  it('refuses a CVE listed twice, naming both entries', () => {
    const entries = [...kevEntries(), kevEntry('CVE-2019-10744')];
    expect(() => parseKev(kevCatalog(entries))).toThrow(
      /^vulnerabilities\.3\.cveID: CVE-2019-10744 is listed twice \(also vulnerabilities\.1\)$/,
    );
  });

  it('refuses an empty catalog (it would erase the stored one) and counts further problems', () => {
    expect(() => parseKev(kevCatalog([]))).toThrow(/^vulnerabilities: the catalog lists none/);
    const bad = kevEntries().map((e) => ({ ...e, cveID: 'x' }));
    expect(() => parseKev(kevCatalog(bad))).toThrow(
      /^vulnerabilities\.0\.cveID: .* \(and 2 more problems\)$/,
    );
  });

  it('reads JSON text, naming what is not JSON', () => {
    expect(kevJson('{"a": 1}', 'kev.json')).toEqual({ a: 1 });
    expect(() => kevJson('{"a": ', 'kev.json')).toThrow(/^kev\.json: not JSON: /);
  });
});

describe('EPSS scores', () => {
  it('reads the daily file with its comment line', () => {
    expect(parseEpss(epssCsv(ROWS))).toEqual({
      modelVersion: 'v2023.03.01',
      scoreDate: '2024-03-01',
      rows: [
        { cve: 'CVE-2021-44228', score: 0.97565, percentile: 0.99996 },
        { cve: 'CVE-2019-10744', score: 0.01243, percentile: 0.85178 },
        { cve: 'CVE-2023-1234567', score: 0.00043, percentile: 0.05 },
      ],
    });
  });

  it('reads a file without the comment line, with CRLF line ends and a byte-order mark', () => {
    const text = '\uFEFF' + epssCsv(ROWS, '').replace(/\n/g, '\r\n');
    expect(parseEpss(text)).toMatchObject({ modelVersion: null, scoreDate: null, rows: { length: 3 } });
    expect(parseEpss(epssCsv(['CVE-2021-44228,1,0'], '#model_version:v2025.03.14'))).toMatchObject({
      modelVersion: 'v2025.03.14',
      scoreDate: null,
      rows: [{ score: 1, percentile: 0 }],
    });
  });

  it.each([
    [
      'a CVE id that is not one',
      [ROWS[0], 'CVE-2021-442,0.1,0.2'],
      /^line 4: cve "CVE-2021-442" is not a CVE id/,
    ],
    [
      'a score above 1',
      [ROWS[0], ROWS[1], 'CVE-2020-1234,1.5,0.2'],
      /^line 5: epss "1.5" is not a probability from 0 to 1$/,
    ],
    ['a negative score', ['CVE-2020-1234,-0.1,0.2'], /^line 3: epss "-0.1" is not a probability/],
    [
      'a percentile that is not a number',
      ['CVE-2020-1234,0.1,high'],
      /^line 3: percentile "high" is not a number from 0 to 1$/,
    ],
    ['an empty score', ['CVE-2020-1234,,0.2'], /^line 3: epss "" is not a probability/],
    ['a CVE scored twice', [ROWS[0], ROWS[1], ROWS[0]], /^line 5: cve CVE-2021-44228 is scored twice$/],
    ['a line with a missing field', [ROWS[0], 'CVE-2020-1234,0.1'], /^not valid CSV: .*on line 4/],
    ['a line with one field too many', ['CVE-2020-1234,0.1,0.2,x'], /^not valid CSV: .*on line 3/],
  ])('refuses %s, naming the line', (_what, rows, message) => {
    expect(() => parseEpss(epssCsv(rows))).toThrow(message);
  });

  it('names the line a bad record starts on after blank lines and quoted multi-line fields', () => {
    const text = epssCsv([
      '"CVE-2020-1234",0.1,0.2',
      '',
      '"CVE-2020-12345",0.1,"0.2"',
      'CVE-2020-123456,0.1,2',
    ]);
    expect(() => parseEpss(text)).toThrow(/^line 6: percentile "2"/);
    const multiLine = epssCsv(['"CVE-2020-1234\n",0.1,0.2']);
    expect(() => parseEpss(multiLine)).toThrow(/^line 3: cve "CVE-2020-1234\n" is not a CVE id/);
  });

  it('refuses a wrong header, a bad comment line and a file that scores nothing', () => {
    expect(() => parseEpss('#model_version:v2023.03.01\ncve,score,percentile\n' + ROWS[0])).toThrow(
      /^line 2: the header must be cve,epss,percentile, not cve,score,percentile$/,
    );
    expect(() => parseEpss('cve,epss\nCVE-2020-1234,0.1')).toThrow(
      /^line 1: the header must be cve,epss,percentile/,
    );
    expect(() => parseEpss(epssCsv(ROWS, '#model_version:v2023.03.01,score_date:yesterday'))).toThrow(
      /^line 1: score_date "yesterday" is not a date/,
    );
    expect(() => parseEpss(epssCsv(ROWS, '#model_version v2023'))).toThrow(
      /^line 1: "model_version v2023" is not key:value/,
    );
    expect(() => parseEpss(epssCsv(ROWS, '#model_version:<script>'))).toThrow(
      /^line 1: model_version "<script>"/,
    );
    expect(() => parseEpss(epssCsv([]))).toThrow(/scores no CVE/);
    expect(() => parseEpss('')).toThrow(/^line 1: the header must be cve,epss,percentile, not missing$/);
    expect(() => parseEpss(epssCsv(['"CVE-2020-1234,0.1,0.2']))).toThrow(/^not valid CSV: Quote Not Closed/);
  });

  it('takes the score date from a file name as FIRST names its files', () => {
    expect(scoreDateOfName('epss_scores-2024-03-01.csv.gz')).toBe('2024-03-01');
    expect(scoreDateOfName('epss_scores-current.csv')).toBeNull();
    expect(scoreDateOfName('epss_scores-2024-02-30.csv')).toBeNull();
  });
});

describe('feed bytes', () => {
  const csv = epssCsv(ROWS);

  it('gunzips what starts with the gzip magic bytes, whatever its name, and reads UTF-8', () => {
    expect(feedText(gzipSync(csv), 'scores.csv')).toBe(csv);
    expect(feedText(Buffer.from(csv), 'scores.csv.gz')).toBe(csv);
    expect(feedText(Buffer.from('\uFEFF' + csv), 'scores.csv')).toBe(csv);
    expect(parseEpss(feedText(gzipSync(csv), 'epss.csv.gz')).rows).toHaveLength(3);
  });

  it('refuses input over the limit, compressed or inflated, naming the limit', () => {
    const limit = 1024 * 1024;
    const big = Buffer.alloc(limit + 1, 0x61);
    expect(() => feedText(big, 'big.csv', limit)).toThrow(/^big\.csv: larger than the limit of 1 MiB$/);
    // A small gzip that inflates past the limit stops inflating there (a "zip bomb" allocates nothing more).
    const bomb = gzipSync(Buffer.alloc(8 * limit, 0x61));
    expect(bomb.length).toBeLessThan(limit);
    expect(() => feedText(bomb, 'bomb.csv.gz', limit)).toThrow(
      /^bomb\.csv\.gz: gunzipped, larger than the limit of 1 MiB$/,
    );
  });

  it('refuses a damaged gzip and text that is not UTF-8', () => {
    const damaged = gzipSync(csv).subarray(0, 20);
    expect(() => feedText(damaged, 'cut.csv.gz')).toThrow(/^cut\.csv\.gz: not valid gzip: /);
    expect(() => feedText(Buffer.from([0x63, 0x76, 0x65, 0xff, 0xfe]), 'latin.csv')).toThrow(
      /^latin\.csv: not UTF-8 text$/,
    );
  });
});
