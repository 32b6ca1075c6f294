import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';
import {
  CHROMIUM,
  haveChromium,
  launchChromium,
  screenshots,
  signInAs,
  signedInPage,
  type SignIn,
} from './browser.fixture.ts';

/**
 * Issue 20's first hour, as a new operator sees it: `bulwark simulate` (the built CLI in its own process, real
 * devices enrolled over EST and connected over mutual TLS) runs a tamper attack; the platform's detector raises
 * the alert and the default profile quarantines the device; the console's overview, in Debian's Chromium, shows
 * the fleet, the alert and its automatic response.
 */
describe.skipIf(!haveChromium)(
  `a simulated attack on the console's overview in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped'})`,
  { timeout: 180_000 },
  () => {
    let s: TestServer;
    let browser: Browser;
    let ada: SignIn;
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    beforeAll(async () => {
      s = await startTestServer({ 'monitor.defaultProfile': true }); // as a new installation has it
      ada = await signInAs(s, 'admin');
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
    });

    it('shows the simulated fleet, the tamper alert and the quarantine that answered it', async () => {
      const run = s.cli([
        'simulate',
        '--url',
        s.httpsUrl,
        '--mqtt',
        s.mqttUrl,
        '--json',
        '--devices',
        '3',
        '--duration',
        '25s',
        '--interval',
        '2s',
        '--attack',
        'tamper',
      ]);
      const { context, watch, page } = await signedInPage(browser, s.httpsUrl, { as: ada });

      // The platform's own record first: the detector's alert with the default profile's quarantine.
      await waitFor('the tamper alert and its quarantine', async () => {
        const [a] = await s.platform.monitor.alerts.list({ detector: 'tamper_report', deviceId: 'sim-0001' });
        return a?.responsesRun.some((r) => r.action === 'quarantine' && r.ok && r.automatic) && a;
      });

      // The overview follows the alert stream: no reload needed.
      const latest = page.getByRole('region', { name: 'Latest alerts' });
      const alert = latest.getByRole('listitem').filter({ hasText: 'sim-0001 reported tampering' });
      await alert.waitFor();
      expect(await alert.textContent()).toMatch(/Response: quarantine \(automatic\)/);
      await expect
        .poll(() => page.getByTestId('device-count').textContent(), { timeout: 10_000 })
        .toMatch(/^3 devices/);
      const tiles = page.getByRole('region', { name: 'Needs attention' });
      expect(await tiles.getByRole('link', { name: /quarantined device/ }).textContent()).toMatch(/^1/);
      const spread = page.getByRole('list', { name: 'Devices by zone' });
      expect(await spread.textContent()).toMatch(/no zone\s*3/);
      await shot(page, 'overview-simulated-attack');

      // The device it names is quarantined on its page, and the alert links there.
      await alert.getByRole('link', { name: 'sim-0001' }).click();
      await page.getByRole('heading', { name: 'sim-0001' }).waitFor();
      expect(await page.getByText('quarantined').first().isVisible()).toBe(true);

      const result = await run;
      expect(result.code).toBe(0);
      expect(watch.problems).toEqual([]);
      await context.close();
    });
  },
);
