import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';

const base31 = { AV: 'NALP', AC: 'LH', PR: 'NLH', UI: 'NR', S: 'UC', C: 'HLN', I: 'HLN', A: 'HLN' };

describe('bulwark risk cvss', () => {
  it('scores a file of every 3.1 base combination as JSON, naming the line of a bad vector', async () => {
    const vectors = Object.entries(base31).reduce<string[]>(
      (acc, [name, values]) => acc.flatMap((v) => [...values].map((x) => `${v}/${name}:${x}`)),
      ['CVSS:3.1'],
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-cvss-'));
    const file = path.join(dir, 'vectors.txt');
    writeFileSync(file, ['# every base combination', ...vectors, 'CVSS:3.1/AV:N/AC:L'].join('\n'));
    const r = await bulwarkInProcess('risk', 'cvss', '--file', file, '--json');
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      scores: { where: string; vector: string; score?: number; error?: string }[];
      refused: number;
    };
    expect(out.scores).toHaveLength(2593);
    expect(out.refused).toBe(1);
    expect(out.scores.filter((s) => s.score !== undefined)).toHaveLength(2592);
    expect(out.scores[0]).toMatchObject({
      where: 'line 2',
      vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H',
      score: 9.8,
    });
    expect(out.scores.at(-1)).toMatchObject({
      where: 'line 2594',
      error: expect.stringMatching(/base metrics PR, UI, S, C, I, A missing/) as unknown,
    });
  });

  it('prints a table for vectors given as arguments; a JSON file must hold strings', async () => {
    const r = await bulwarkInProcess(
      'risk',
      'cvss',
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N',
    );
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toMatch(/^VECTOR\s+BASE\s+TEMPORAL\/THREAT\s+ENVIRONMENTAL\s+SCORE\s+SEVERITY\n/);
    expect(r.stdout).toMatch(/SA:N\s+9\.3\s+9\.3\s+critical\n$/);
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-cvss-'));
    writeFileSync(path.join(dir, 'v.json'), '[1, 2]');
    const bad = await bulwarkInProcess('risk', 'cvss', '--file', path.join(dir, 'v.json'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/a JSON file must be an array of vector strings/);
    // A file saved on Windows: a byte-order mark and CRLF line ends.
    writeFileSync(
      path.join(dir, 'windows.txt'),
      '\uFEFFCVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\r\nCVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N\r\n',
    );
    const windows = await bulwarkInProcess('risk', 'cvss', '--file', path.join(dir, 'windows.txt'), '--json');
    expect(windows.code, windows.stderr).toBe(0);
    expect(
      (JSON.parse(windows.stdout) as { scores: { score: number }[] }).scores.map((s) => s.score),
    ).toEqual([9.8, 5.3]);
    const none = await bulwarkInProcess('risk', 'cvss');
    expect(none.stderr).toMatch(/name at least one vector, or --file FILE/);
  });

  it('rates the sample TARA, prints its threats and writes the HTML report; a bad document names the field', async () => {
    const sample = fileURLToPath(
      new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url),
    );
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-tara-'));
    const html = path.join(dir, 'tara.html');
    const r = await bulwarkInProcess('risk', 'tara', sample, '--html', html);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+ASSET\s+THREAT\s+FEASIBILITY\s+IMPACT\s+RISK\s+TREATMENT\n/);
    expect(r.stdout).toMatch(/TS3\s+firmware\s+.*\s+high\s+severe\s+5\s+reduce\n/);
    expect(readFileSync(html, 'utf8')).toContain('<h1>TARA: PC-200 dosing-pump controller</h1>');
    const json = await bulwarkInProcess('risk', 'tara', sample, '--json');
    expect((JSON.parse(json.stdout) as { risks: object }).risks).toEqual({
      '1': 0,
      '2': 1,
      '3': 0,
      '4': 1,
      '5': 1,
    });
    writeFileSync(
      path.join(dir, 'bad.yaml'),
      readFileSync(sample, 'utf8').replace('safety: severe, operational: major', ''),
    );
    const bad = await bulwarkInProcess('risk', 'tara', path.join(dir, 'bad.yaml'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(
      /damageScenarios\.0\.impact: rate at least one of safety, financial, operational, privacy/,
    );
  });
});
