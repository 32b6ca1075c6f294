import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { riskTestbed, type RiskTestbed } from '../test-support/risk.ts';
import type { Risk } from './index.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/osv', import.meta.url));
const DAY = 86_400_000;

/** The risk module's compliance facts: advisories known, the last import, advisories affecting what runs. */
describe.each(testDialects)('vulnerability compliance facts (%s)', (dialect) => {
  let t: TestStore;
  let risk: Risk;
  let clock: RiskTestbed['clock'];
  let release: RiskTestbed['release'];
  let runs: RiskTestbed['runs'];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    ({ risk, clock, release, runs } = await riskTestbed(t, { deviceIds: ['dev-1', 'dev-2', 'dev-3'] }));
  });
  afterEach(async () => t.cleanup());

  it('states no advisories and no import before the first import', async () => {
    expect(await risk.complianceFacts()).toEqual({ advisories: 0, lastImportAt: null, exposures: [] });
  });

  it('states the advisories, the newest import (even one that changed nothing) and the exposures', async () => {
    const old = await release('1.0.0', ['pkg:npm/lodash@4.17.11']);
    const mid = await release('1.1.0', ['pkg:npm/lodash@4.17.15']);
    await release('1.2.0', ['pkg:npm/lodash@4.17.11']); // affected, but no device runs it
    await runs('dev-1', old.targetPath);
    await runs('dev-2', mid.targetPath);
    await runs('dev-3', mid.targetPath);
    const importedAt = clock.now;
    await risk.vulnerabilities.importFrom(FIXTURES, 'test');

    expect(await risk.complianceFacts()).toEqual({
      advisories: 2,
      lastImportAt: importedAt,
      exposures: [
        {
          advisory: 'GHSA-35jh-r3h4-6jhm',
          severity: 'high',
          score: 7.2,
          releases: ['pump-fw@1.0.0', 'pump-fw@1.1.0'],
          devices: ['dev-1', 'dev-2', 'dev-3'],
        },
        {
          advisory: 'GHSA-jf85-cpcp-j695',
          severity: 'critical',
          score: 9.1,
          releases: ['pump-fw@1.0.0'],
          devices: ['dev-1'],
        },
      ],
    });

    clock.now += 10 * DAY;
    await risk.vulnerabilities.importFrom(FIXTURES, 'test'); // unchanged: the store keeps its times
    expect((await risk.complianceFacts()).lastImportAt).toBe(clock.now);
  });
});
