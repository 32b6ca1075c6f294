import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { cycloneDx, releaseInput } from '../test-support/firmware.ts';
import { bulwarkInProcess as bulwark } from '../test-support/cli-in-process.ts';
import { withPlatform } from './context.ts';

const OSV = fileURLToPath(new URL('../risk/fixtures/osv', import.meta.url));

const kevEntry = (cveID: string, knownRansomwareCampaignUse: string) => ({
  cveID,
  vendorProject: 'Lodash',
  product: 'lodash',
  vulnerabilityName: 'Lodash Prototype Pollution Vulnerability',
  dateAdded: '2024-02-29',
  shortDescription: 'Prototype pollution.',
  requiredAction: 'Apply updates per vendor instructions.',
  dueDate: '2024-03-21',
  knownRansomwareCampaignUse,
});

const catalog = (vulnerabilities: object[]) => ({
  title: 'CISA Catalog of Known Exploited Vulnerabilities',
  catalogVersion: '2024.09.21',
  dateReleased: '2024-09-21T16:30:00.000Z',
  count: vulnerabilities.length,
  vulnerabilities,
});

/** A contract's answer as a strict schema: a field the contract does not name fails the check. */
const strictly = (schema: z.ZodType) => (schema instanceof z.ZodObject ? schema.strict() : schema);

describe('bulwark risk feeds', { timeout: 60_000 }, () => {
  let data: string;
  let dir: string;

  beforeAll(async () => {
    // One device running a release whose SBOM has lodash 4.17.11: two advisories (CVE-2019-10744, CVE-2021-23337).
    data = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-feeds-'));
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-feeds-files-'));
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
        await p.risk.vulnerabilities.importFrom(OSV, 'test');
      },
      { create: true },
    );
  });

  const write = (name: string, content: string | Buffer) => {
    const file = path.join(dir, name);
    writeFileSync(file, content);
    return file;
  };

  it('imports the KEV catalog and EPSS scores, prints what it stored, and marks exposure', async () => {
    const kev = write('kev.json', JSON.stringify(catalog([kevEntry('CVE-2021-23337', 'Unknown')])));
    const imported = await bulwark('risk', 'feeds', 'import-kev', kev, '--json', '--data', data);
    expect(imported.code, imported.stderr).toBe(0);
    expect(strictly(api.risk.importKev.response[200]).parse(JSON.parse(imported.stdout))).toEqual({
      entries: 1,
      version: '2024.09.21',
    });

    const csv = [
      '#model_version:v2023.03.01,score_date:2024-03-01T00:00:00+0000',
      'cve,epss,percentile',
      'CVE-2019-10744,0.03210,0.90000',
      'CVE-2021-23337,0.01243,0.85178',
    ].join('\n');
    const epss = write('epss_scores-2024-03-01.csv.gz', gzipSync(csv));
    const scored = await bulwark('risk', 'feeds', 'import-epss', epss, '--data', data);
    expect(scored.code, scored.stderr).toBe(0);
    expect(scored.stdout).toBe('EPSS v2023.03.01 scored 2024-03-01: 2 CVEs\n');

    const status = await bulwark('risk', 'feeds', 'status', '--json', '--data', data);
    expect(strictly(api.risk.feedsStatus.response[200]).parse(JSON.parse(status.stdout))).toMatchObject({
      kev: { entries: 1, importedAt: expect.any(Number) as unknown },
      epss: { entries: 2, importedAt: expect.any(Number) as unknown, scoreDate: '2024-03-01' },
    });
    const table = await bulwark('risk', 'feeds', 'status', '--data', data);
    expect(table.stdout).toMatch(/^FEED\s+ENTRIES\s+IMPORTED\s+SCORED\n/);
    expect(table.stdout).toMatch(/\nepss\s+2\s+\S+Z\s+2024-03-01\n$/);

    // The exposure table: the KEV marker, the device's highest EPSS, and `!` on the known-exploited advisory.
    const exposure = await bulwark('firmware', 'exposure', '--data', data);
    expect(exposure.stdout).toMatch(/^DEVICE\s+RELEASE\s+KEV\s+WORST\s+SCORE\s+EPSS\s+ADVISORIES\n/);
    expect(exposure.stdout).toMatch(
      /pump-1\s+pump-fw@1\.0\.0\s+KEV\s+critical\s+9\.1\s+0\.032\s+GHSA-35jh-r3h4-6jhm!,GHSA-jf85-cpcp-j695\n/,
    );
    const json = await bulwark('firmware', 'exposure', '--json', '--data', data);
    expect(z.array(strictly(api.risk.exposedDevice)).parse(JSON.parse(json.stdout))).toMatchObject([
      { deviceId: 'pump-1', knownExploited: true, epss: 0.0321 },
    ]);
  });

  it('refuses a bad file naming where it is wrong, and keeps what was stored', async () => {
    const before = JSON.parse(
      (await bulwark('risk', 'feeds', 'status', '--json', '--data', data)).stdout,
    ) as unknown;
    const kev = write(
      'bad-kev.json',
      JSON.stringify(catalog([kevEntry('CVE-2021-23337', 'Unknown'), kevEntry('CVE-2019-10744', 'Perhaps')])),
    );
    const refusedKev = await bulwark('risk', 'feeds', 'import-kev', kev, '--data', data);
    expect(refusedKev.code).not.toBe(0);
    expect(refusedKev.stderr).toMatch(
      /vulnerabilities\.1\.knownRansomwareCampaignUse: must be Known or Unknown/,
    );
    const epss = write('bad.csv', 'cve,epss,percentile\nCVE-2019-10744,0.5,0.5\nCVE-2021-23337,2,0.5\n');
    const refusedEpss = await bulwark('risk', 'feeds', 'import-epss', epss, '--data', data);
    expect(refusedEpss.code).not.toBe(0);
    expect(refusedEpss.stderr).toMatch(/line 3: epss "2" is not a probability from 0 to 1/);
    const after = JSON.parse(
      (await bulwark('risk', 'feeds', 'status', '--json', '--data', data)).stdout,
    ) as unknown;
    expect(after).toEqual(before);
  });
});
