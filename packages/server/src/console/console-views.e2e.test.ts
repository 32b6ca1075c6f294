import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cycloneDx, initTuf, releaseInput, makeImage, shipRelease } from '../test-support/firmware.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import {
  CHROMIUM,
  accounts,
  haveChromium,
  launchChromium,
  nav,
  screenshots,
  signedInPage,
  type SignIn,
} from './browser.fixture.ts';

const ADVISORY = fileURLToPath(new URL('../risk/fixtures/osv/GHSA-35jh-r3h4-6jhm.json', import.meta.url));
const PUMPS = ['pump-1', 'pump-2', 'pump-3', 'pump-4'];

/**
 * The compliance, audit log and firmware pages in Debian's Chromium, over what the platform made: two compliance
 * runs (a trend), a signed release with an SBOM that has a known vulnerability, a draft release, and a rollout of
 * two phases whose first has one device updated and one failed. An auditor reads everything and steers nothing; an
 * admin runs the checks, downloads reports, pauses, resumes and aborts the rollout; a viewer sees Firmware only.
 */
describe.skipIf(!haveChromium)(
  `the compliance, audit and firmware pages in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped'})`,
  { timeout: 240_000 },
  () => {
    let s: TestServer;
    let browser: Browser;
    let people: Record<'admin' | 'auditor' | 'viewer', SignIn>;
    let rolloutId: string;
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    /** A rollout of pump-fw 1.0.0 to the pumps in two phases: in the first, one device updated and one failed. */
    async function rolloutWithProgress(targetPath: string): Promise<string> {
      const rollouts = s.platform.firmware.rollouts;
      const created = await rollouts.create(
        {
          release: 'pump-fw@1.0.0',
          selector: { groups: ['pumps'] },
          settings: {
            phases: [
              { percent: 50, soakMs: 3_600_000 },
              { percent: 100, soakMs: 0 },
            ],
            failureThreshold: 100,
            maxRetries: 0,
          },
        },
        'test',
      );
      let first: { deviceId: string; attempts: number }[] = [];
      for (let i = 0; i < 100; i++) {
        await rollouts.tick();
        first = await rollouts.devices(created.id, { phase: 0 });
        if (first.length === 2 && first.every((d) => d.attempts === 1)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const [ok, bad] = first;
      if (!ok || !bad) throw new Error('the first phase has no two devices');
      const report = { target: targetPath, rolloutId: created.id, attempt: 1, ts: Date.now() };
      await rollouts.report(ok.deviceId, { ...report, step: 'succeeded' });
      await rollouts.report(bad.deviceId, { ...report, step: 'failed', reason: 'artifact_modified' });
      return created.id;
    }

    beforeAll(async () => {
      s = await startTestServer();
      people = await accounts(s);
      for (const id of PUMPS) await enrollInProcess(s, id, 'pumps');
      // Firmware: signed pump-fw 1.0.0 with an SBOM (lodash 4.17.20 has a known advisory), a draft valve-fw.
      const keys = await initTuf(s.platform);
      const { release } = await shipRelease(s.platform, keys, {
        sbom: cycloneDx(['pkg:npm/lodash@4.17.20', 'pkg:npm/mqtt@5.10.0', 'pkg:generic/busybox@1.36.1']),
      });
      await s.platform.firmware.releases.create(
        releaseInput(makeImage(1024), { name: 'valve-fw', version: '2.0.0', hardwareIds: ['valve-v1'] }),
        'test',
      );
      await s.platform.risk.vulnerabilities.importFrom(ADVISORY, 'test');
      rolloutId = await rolloutWithProgress(release.targetPath);
      // Compliance: two runs, so that there is a trend.
      await s.platform.compliance.run({ trigger: 'manual', actor: 'test' });
      await s.platform.compliance.run({ trigger: 'manual', actor: 'test' });
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
    });

    it('shows an auditor compliance, the audit log (live) and firmware, with no control to change anything', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/compliance`, {
        as: people.auditor,
      });

      // Compliance: a score per standard, the trend of two runs, failing checks with evidence, reports.
      await page.getByRole('heading', { name: 'Compliance', level: 1 }).waitFor();
      const scores = page.getByRole('list', { name: 'Score per standard', exact: true });
      await scores.getByText('ETSI EN 303 645', { exact: true }).waitFor();
      expect(await scores.locator('li').filter({ hasText: 'ETSI EN 303 645' }).textContent()).toMatch(
        /\d+%$/,
      );
      await page.getByRole('heading', { name: 'Trend over the last 2 runs' }).waitFor();
      expect(await page.getByRole('img', { name: /^Score per standard over 2 runs: / }).count()).toBe(1);
      const failing = page.locator('details.check');
      await page.getByRole('heading', { name: /^Failing checks \(\d+\)$/ }).waitFor();
      const withEvidence = failing.filter({ has: page.locator('table.evidence') }).first();
      await withEvidence.locator('summary').click();
      await withEvidence.getByRole('table', { name: /^Evidence: / }).waitFor();
      expect(await page.getByRole('button', { name: 'Run now' }).count()).toBe(0);
      const download = page.waitForEvent('download');
      await page.getByRole('link', { name: /^ETSI EN 303 645.* report, OSCAL$/ }).click();
      const oscal = await download;
      expect(oscal.suggestedFilename()).toMatch(/^bulwark-etsi-en-303-645-.+\.oscal\.json$/);
      const oscalFile = await oscal.path();
      expect(JSON.parse(readFileSync(oscalFile, 'utf8'))).toHaveProperty('assessment-results');
      await shot(page, 'auditor-compliance');

      // Audit log: chain intact, newest first, older pages, filters, a new entry arriving live.
      await nav(page, 'Audit log').click();
      await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
      await page.getByText(/^Chain intact: [\d,]+ entries up to #\d+/).waitFor();
      await page.getByRole('status').filter({ hasText: 'Live: new entries appear' }).waitFor();
      const rows = page.getByRole('table', { name: 'Audit log entries, newest first' }).locator('tbody tr');
      await rows.first().waitFor();
      // A page of 50 (and what the live stream added since: the platform keeps writing).
      expect(await rows.count()).toBeGreaterThanOrEqual(50);
      const seqs = async () => (await rows.locator('td:first-child').allTextContents()).map(Number);
      const newest = await seqs();
      expect(newest).toEqual([...newest].sort((a, b) => b - a));
      await page.getByRole('button', { name: 'Older entries' }).click();
      await expect.poll(async () => Math.min(...(await seqs()))).toBeLessThan(Math.min(...newest));
      const paged = await seqs();
      expect(paged).toEqual([...new Set(paged)].sort((a, b) => b - a));
      await page.getByLabel('Type starts with').fill('rollout.');
      await page.getByRole('button', { name: 'Apply' }).click();
      await expect
        .poll(async () => new Set(await rows.locator('td:nth-child(3)').allTextContents()))
        .toEqual(new Set(['rollout.created', 'rollout.phase_started']));
      await page.getByLabel('Type starts with').fill('device.');
      await page.getByLabel('Subject').fill('device:valve-9');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByText('No entries match.').waitFor();
      // Live: the entry is written after the page was read; it appears without a reload.
      await s.platform.devices.add({ id: 'valve-9', group: 'valves' }, 'test');
      await rows.filter({ hasText: 'device.added' }).filter({ hasText: 'device:valve-9' }).waitFor();
      expect(await page.getByRole('button', { name: 'Refresh' }).count()).toBe(0);
      await shot(page, 'auditor-audit');

      // Firmware: releases (signed, SBOM, a known vulnerability), the rollout by phase, no Pause/Resume/Abort.
      await nav(page, 'Firmware').click();
      const releases = page.getByRole('table', { name: 'Firmware releases, newest first' });
      const pump = releases.getByRole('row').filter({ hasText: 'pump-fw' });
      await pump.waitFor();
      for (const text of ['1.0.0', 'ready', 'signed', '3', '1 (worst high)'])
        await pump.getByText(text, { exact: true }).waitFor();
      await releases.getByRole('row').filter({ hasText: 'valve-fw' }).getByText('not signed').waitFor();
      const rollout = page.getByRole('region', { name: 'pump-fw 1.0.0' });
      await rollout.getByText('running', { exact: true }).waitFor();
      const phases = rollout.getByRole('table', { name: 'Progress by phase of pump-fw 1.0.0' });
      expect(await phases.getByRole('row').filter({ hasText: 'Phase 1' }).textContent()).toContain(
        '2 devices: 1 succeeded · 1 failed',
      );
      expect(await phases.getByRole('row').filter({ hasText: 'Phase 2' }).textContent()).toContain(
        '2 devices: 2 pending',
      );
      expect(await page.getByRole('button', { name: /^(Pause|Resume|Abort|Approve)/ }).count()).toBe(0);
      await shot(page, 'auditor-firmware');

      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('lets an admin run the checks, download a report, and pause, resume and abort the rollout', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/compliance`, {
        as: people.admin,
      });

      // Compliance: Run now adds a run to the trend; the HTML report downloads.
      await page.getByRole('heading', { name: 'Trend over the last 2 runs' }).waitFor();
      await page.getByRole('button', { name: 'Run now' }).click();
      await page
        .getByRole('status')
        .filter({ hasText: /^Run finished: \d+ failing checks?\.$/ })
        .waitFor({
          timeout: 60_000,
        });
      await page.getByRole('heading', { name: 'Trend over the last 3 runs' }).waitFor();
      const download = page.waitForEvent('download');
      await page.getByRole('link', { name: /^ETSI EN 303 645.* report, HTML$/ }).click();
      const html = await download;
      expect(html.suggestedFilename()).toMatch(/^bulwark-etsi-en-303-645-.+\.html$/);
      expect(readFileSync(await html.path(), 'utf8')).toContain('ETSI EN 303 645');
      await shot(page, 'compliance');
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);
      await page.emulateMedia({ colorScheme: 'dark' });
      await shot(page, 'compliance-dark');
      await page.emulateMedia({ colorScheme: 'light' });

      // Firmware: pause, resume, then abort after a confirmation (Escape cancels it first).
      await nav(page, 'Firmware').click();
      const rollout = page.getByRole('region', { name: 'pump-fw 1.0.0' });
      const status = page.getByRole('status').filter({ hasText: /^Rollout of pump-fw 1\.0\.0/ });
      await rollout.getByRole('button', { name: 'Pause: rollout of pump-fw 1.0.0' }).click();
      await status.filter({ hasText: 'paused: now paused.' }).waitFor();
      expect((await s.platform.firmware.rollouts.get(rolloutId)).status).toBe('paused');
      await rollout.getByRole('button', { name: 'Resume: rollout of pump-fw 1.0.0' }).click();
      await status.filter({ hasText: 'resumed: now running.' }).waitFor();
      expect((await s.platform.firmware.rollouts.get(rolloutId)).status).toBe('running');
      const abort = rollout.getByRole('button', { name: 'Abort: rollout of pump-fw 1.0.0' });
      await abort.click();
      const dialog = page.getByRole('dialog', { name: 'Abort the rollout of pump-fw 1.0.0?' });
      await dialog.waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      expect((await s.platform.firmware.rollouts.get(rolloutId)).status).toBe('running');
      await abort.click();
      await dialog.getByLabel('Reason (recorded in the audit log)').fill('bad build');
      await shot(page, 'firmware-abort');
      await dialog.getByRole('button', { name: 'Abort the rollout' }).click();
      await status.filter({ hasText: 'aborted: now aborted.' }).waitFor();
      const aborted = await s.platform.firmware.rollouts.get(rolloutId);
      expect(aborted).toMatchObject({ status: 'aborted', pauseReason: 'bad build' });
      await rollout.getByText('bad build').waitFor();
      expect(await rollout.getByRole('button').count()).toBe(0);
      await shot(page, 'firmware');
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);

      // The audit log has what the admin just did.
      await nav(page, 'Audit log').click();
      await page
        .getByRole('table', { name: 'Audit log entries, newest first' })
        .getByRole('row')
        .filter({ hasText: 'rollout.aborted' })
        .filter({ hasText: 'reason=bad build' })
        .waitFor();
      await shot(page, 'audit');
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);

      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('offers a viewer Firmware but not Compliance or the audit log', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/firmware`, {
        as: people.viewer,
        colorScheme: 'dark',
      });
      await page
        .getByRole('table', { name: 'Firmware releases, newest first' })
        .getByText('pump-fw')
        .waitFor();
      expect(await nav(page, 'Firmware').count()).toBe(1);
      expect(await nav(page, 'Compliance').count()).toBe(0);
      expect(await nav(page, 'Audit log').count()).toBe(0);
      expect(await page.getByRole('button', { name: /^(Pause|Resume|Abort|Approve)/ }).count()).toBe(0);
      // A page the role may not read says so instead of calling the API.
      await page.goto(`${s.httpsUrl}/audit`);
      await page.getByText('Your role (viewer) does not allow this page.').waitFor();
      expect(watch.problems).toEqual([]);
      await context.close();
    });
  },
);
