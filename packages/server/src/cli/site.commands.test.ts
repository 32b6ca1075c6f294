import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import { withPlatform } from './context.ts';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';

describe('bulwark site', { timeout: 90_000 }, () => {
  let data: string;
  const bulwark = (...args: string[]) => bulwarkInProcess(...args, '--data', data);
  /** `bulwark … --json`, exit code 0, its output parsed. */
  const json = async (...args: string[]): Promise<unknown> => {
    const r = await bulwark(...args, '--json');
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(async () => {
    data = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-cli-site-')), 'data');
    await withPlatform({ data }, () => Promise.resolve(), { create: true });
  });

  it('sets a site, grants access with a review date, shows, lists and revokes it', async () => {
    const set = await bulwark(
      'site',
      'set',
      'plant-1',
      '--owner',
      'Facilities',
      '--group',
      'floor',
      '--group',
      'lab',
    );
    expect(set).toMatchObject({ code: 0, stdout: 'site plant-1: owner Facilities, floor, lab\n' });
    const site = api.attestation.putSite.response[200]
      .strict()
      .parse(await json('site', 'set', 'plant-1', '--owner', 'Facilities', '--description', 'North gate'));
    expect(site).toMatchObject({ name: 'plant-1', description: 'North gate', groups: [], updatedBy: 'cli' });

    const access = api.attestation.grantAccess.response[201]
      .strict()
      .parse(
        await json('site', 'grant', 'plant-1', 'Grace Hopper', '--review-at', '90d', '--role', 'maintenance'),
      );
    expect(access).toMatchObject({
      site: 'plant-1',
      person: 'Grace Hopper',
      role: 'maintenance',
      grantedBy: 'cli',
    });
    expect(access.reviewAt - access.grantedAt).toBe(90 * 86_400_000);
    const dated = await bulwark(
      'site',
      'grant',
      'plant-1',
      'Alan',
      '--review-at',
      '2099-01-31',
      '--expires-at',
      '2099-12-31',
    );
    expect(dated.code, dated.stderr).toBe(0);
    expect(dated.stdout).toMatch(
      /^access \S+: Alan may access plant-1 \(review by 2099-01-31, expires 2099-12-31\)\n$/,
    );

    const shown = await bulwark('site', 'show', 'plant-1');
    expect(shown.stdout).toMatch(
      /^site plant-1, owner Facilities\n {2}North gate\n {2}device groups: \(none\)\n/,
    );
    expect(shown.stdout).toMatch(/\nID\s+PERSON\s+ROLE\s+REVIEW\s+EXPIRES\s+GRANTED BY\n/);
    expect(shown.stdout).toContain('Grace Hopper');

    const listed = api.attestation.listSites.response[200].strict().parse(await json('site', 'list'));
    expect(listed.sites.map((s) => [s.name, s.access.length])).toEqual([['plant-1', 2]]);
    const table = await bulwark('site', 'list');
    expect(table.stdout).toMatch(
      /^NAME\s+OWNER\s+GROUPS\s+ACCESS\s+REVIEW DUE\nplant-1\s+Facilities\s+2\s+0\n$/,
    );

    const revoked = await bulwark('site', 'revoke', 'plant-1', access.id, '--reason', 'left the company');
    expect(revoked).toMatchObject({ code: 0, stdout: `access ${access.id} to plant-1 revoked\n` });
    const again = await bulwark('site', 'revoke', 'plant-1', access.id, '--reason', 'again');
    expect(again).toMatchObject({
      code: 1,
      stderr: `bulwark: site plant-1 has no access record ${access.id}\n`,
    });
  });

  it('exits 1 with a one-line reason on bad input', async () => {
    const noSite = await bulwark('site', 'grant', 'nowhere', 'Grace', '--review-at', '30d');
    expect(noSite).toMatchObject({ code: 1, stderr: 'bulwark: no site "nowhere"\n' });
    const badWhen = await bulwark('site', 'grant', 'plant-1', 'Grace', '--review-at', 'soon');
    expect(badWhen.code).toBe(1);
    expect(badWhen.stderr).toMatch(/^bulwark: reviewAt: "soon" is neither a duration/);
    const badName = await bulwark('site', 'set', '../etc', '--owner', 'x');
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/^bulwark: site "\.\.\/etc": names are 1-64/);
    const noOwner = await bulwark('site', 'set', 'plant-9');
    expect(noOwner.code).not.toBe(0);
    expect(noOwner.stderr).toContain("required option '--owner <owner>' not specified");
  });
});
