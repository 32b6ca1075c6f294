import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { cycloneDx, releaseInput } from '../test-support/firmware.ts';
import { withPlatform } from './context.ts';
import { bulwarkInProcess as bulwark } from '../test-support/cli-in-process.ts';

const FIXTURES = fileURLToPath(new URL('../risk/fixtures/osv', import.meta.url));

describe('bulwark firmware: option values are checked where they enter', { timeout: 60_000 }, () => {
  let data: string;

  beforeAll(async () => {
    // One device running a release whose SBOM has lodash 4.17.11: a critical and a high advisory.
    data = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-fw-'));
    await withPlatform(
      { data },
      async (p) => {
        await p.devices.add({ id: 'pump-1', group: 'pumps' }, 'test');
        const release = await p.firmware.releases.create(
          releaseInput(
            { size: 100, sha256: randomBytes(32).toString('hex') },
            { sbom: cycloneDx(['pkg:npm/lodash@4.17.11']) },
          ),
          'test',
        );
        await p.firmware.fleet.recordState('pump-1', {
          hardwareId: 'pump-v2',
          target: release.targetPath,
          version: release.version,
          securityVersion: 1,
          ts: Date.now(),
        });
        await p.risk.vulnerabilities.importFrom(FIXTURES, 'test');
      },
      { create: true },
    );
  });
  afterEach(() => vi.restoreAllMocks());

  it('takes a severity in any case: --min-severity Critical lists the device exposed to a critical advisory', async () => {
    for (const level of ['Critical', 'CRITICAL', 'critical', 'High']) {
      const run = await bulwark('firmware', 'exposure', '--min-severity', level, '--json', '--data', data);
      expect(run, level).toMatchObject({ code: 0, stderr: '' });
      const devices = JSON.parse(run.stdout) as { deviceId: string; worstSeverity: string }[];
      expect(
        devices.map((d) => [d.deviceId, d.worstSeverity]),
        level,
      ).toEqual([['pump-1', 'critical']]);
    }
  });

  it('refuses a severity off the scale with one line naming the choices and a non-zero exit, before any work', async () => {
    const run = await bulwark('firmware', 'exposure', '--min-severity', 'severe', '--data', data);
    expect(run).toEqual({
      code: 1,
      stdout: '',
      stderr: 'bulwark: --min-severity "severe" is not one of low, medium, high, critical\n',
    });
    const list = await bulwark('firmware', 'advisories', 'list', '--severity', 'urgent', '--data', data);
    expect(list).toEqual({
      code: 1,
      stdout: '',
      stderr: 'bulwark: --severity "urgent" is not one of critical, high, medium, low, none, unknown\n',
    });
  });

  it('lists advisories by severity in any case, including the advisory-only states', async () => {
    const run = await bulwark(
      'firmware',
      'advisories',
      'list',
      '--severity',
      'High',
      '--json',
      '--data',
      data,
    );
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as { severity: string }[]).map((a) => a.severity)).toEqual(['high']);
    const none = await bulwark(
      'firmware',
      'advisories',
      'list',
      '--severity',
      'Unknown',
      '--json',
      '--data',
      data,
    );
    expect(JSON.parse(none.stdout)).toEqual([]);
  });

  it('records reference PCR values from --reference-values FILE and --pcr, and shows them', async () => {
    const file = path.join(data, 'golden.json');
    writeFileSync(file, JSON.stringify({ sha256: { '0': 'a'.repeat(64), '7': 'b'.repeat(64) } }));
    const create = (version: string, ...extra: string[]) =>
      bulwark(
        ...['firmware', 'create', `pump-fw@${version}`, '--hardware', 'pump-v2', '--security-version', '3'],
        ...['--end-of-support', '2031-12-31', '--sha256', 'c'.repeat(64), '--size', '100'],
        ...[...extra, '--json', '--data', data],
      );
    const run = await create('3.0.0', '--reference-values', file, '--pcr', `SHA256:07=${'D'.repeat(64)}`);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect((JSON.parse(run.stdout) as { referenceValues: unknown }).referenceValues).toEqual({
      sha256: { '0': 'a'.repeat(64), '7': 'd'.repeat(64) },
    });
    const show = await bulwark('firmware', 'show', 'pump-fw@3.0.0', '--data', data);
    expect(show.stdout).toContain(
      `reference sha256:0 ${'a'.repeat(64)}\nreference sha256:7 ${'d'.repeat(64)}\n`,
    );
    const plain = await create('3.0.1');
    expect((JSON.parse(plain.stdout) as { referenceValues: unknown }).referenceValues).toBeNull();
    expect((await bulwark('firmware', 'show', 'pump-fw@3.0.1', '--data', data)).stdout).toContain(
      'no reference PCR values',
    );
  });

  it('refuses reference values of the wrong size or shape with one line and creates nothing', async () => {
    const base = ['firmware', 'create', 'pump-fw@4.0.0', '--hardware', 'pump-v2', '--security-version', '4'];
    const rest = [
      '--end-of-support',
      '2031-12-31',
      '--sha256',
      'c'.repeat(64),
      '--size',
      '100',
      '--data',
      data,
    ];
    const short = await bulwark(...base, '--pcr', `sha256:7=${'a'.repeat(40)}`, ...rest);
    expect(short).toEqual({
      code: 1,
      stdout: '',
      stderr:
        'bulwark: referenceValues.sha256.7: a sha256 PCR value is 64 hex characters (32 bytes), not 40\n',
    });
    const shape = await bulwark(...base, '--pcr', 'sha256-7=ab', ...rest);
    expect(shape.code).toBe(1);
    expect(shape.stderr).toMatch(/^bulwark: --pcr "sha256-7=ab" must be BANK:INDEX=HEX/);
    const file = path.join(data, 'not-json.json');
    writeFileSync(file, '{"sha256": ');
    const notJson = await bulwark(...base, '--reference-values', file, ...rest);
    expect(notJson).toMatchObject({ code: 1, stderr: `bulwark: reference values ${file} is not JSON\n` });
    expect((await bulwark('firmware', 'show', 'pump-fw@4.0.0', '--data', data)).code).toBe(1);
  });

  it('refuses a duration outside the one grammar', async () => {
    const run = await bulwark('firmware', 'stale', '--max-age', 'forever', '--data', data);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      'bulwark: --max-age "forever" is not a duration: use a number and a unit, e.g. 500ms, 30s, 15m, 24h, 7d\n',
    );
    expect((await bulwark('firmware', 'stale', '--max-age', '180d', '--json', '--data', data)).code).toBe(0);
  });
});
