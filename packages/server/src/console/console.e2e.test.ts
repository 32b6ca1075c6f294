import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { SESSION_COOKIE, totpCode } from '../users/index.ts';
import {
  CHROMIUM,
  haveChromium,
  launchChromium,
  nav,
  passwordStep,
  screenshots,
  setUpOnPage,
  watched,
} from './browser.fixture.ts';
import { CONSOLE_CSP } from './index.ts';

const TARA = fileURLToPath(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url));
const PASSWORD = 'Correct-Horse-Battery-Staple-42';
const VIEWER_PASSWORD = 'Viewer-Passphrase-Long-Enough-7';

describe.skipIf(!haveChromium)(
  `the web console in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped: /usr/bin/chromium is missing'})`,
  { timeout: 180_000 },
  () => {
    let s: TestServer;
    let browser: Browser;
    let totpSecret: string;
    let recoveryCodes: string[];
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    beforeAll(async () => {
      s = await startTestServer();
      const users = s.platform.users;
      // An administrator as `bulwark admin create` and the first sign-in make one: password, then TOTP enrolled.
      const { setupSecret } = await users.create({ username: 'ada', role: 'admin' }, 'test');
      const ticket = await users.completeSetup({
        username: 'ada',
        setupSecret,
        password: PASSWORD,
        address: '127.0.0.1',
      });
      const enrolling = await users.resolveSession(ticket.id);
      if (!enrolling) throw new Error('no session after setup');
      totpSecret = (await users.beginTotp(enrolling)).secret;
      recoveryCodes = (await users.confirmTotp(enrolling, totpCode(totpSecret, Date.now()), '127.0.0.1'))
        .recoveryCodes;
      const viewer = await users.create({ username: 'vic', role: 'viewer' }, 'test');
      await users.completeSetup({
        username: 'vic',
        setupSecret: viewer.setupSecret,
        password: VIEWER_PASSWORD,
        address: '127.0.0.1',
      });
      // The fleet: two enrolled pumps, a valve not yet enrolled, an alert, a TARA in the register.
      await enrollInProcess(s, 'pump-1', 'pumps');
      await enrollInProcess(s, 'pump-2', 'pumps');
      await s.platform.devices.add({ id: 'valve-1', group: 'valves' }, 'test');
      await s.platform.monitor.alerts.raise({
        detector: 'auth_failures',
        subject: 'device:pump-1',
        deviceId: 'pump-1',
        severity: 'high',
        title: 'Repeated refused connects from pump-1',
        evidence: { refused: 12 },
        at: Date.now(),
      });
      await s.platform.risk.register.saveTara('pump', parseYaml(readFileSync(TARA, 'utf8')), 'test');
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
    });

    it('signs an admin in with password and TOTP, shows the fleet, acknowledges an alert, revokes a device, shows the risk register; session expiry and sign-out go back to sign-in', async () => {
      const { context, watch } = await watched(browser);
      const page = await context.newPage();
      const response = await page.goto(`${s.httpsUrl}/`);
      expect(response?.headers()['content-security-policy']).toBe(CONSOLE_CSP);

      // Wrong password first, then the right one, by keyboard only.
      await page.getByLabel('Username').fill('ada');
      await page.getByLabel('Password').fill('not the password at all');
      await page.keyboard.press('Enter');
      await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
      await new Promise((r) => setTimeout(r, 200)); // past the (test-sized) back-off after a failure
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByLabel('Password').press('Enter');
      const code = page.getByLabel('Code from your authenticator app');
      await code.waitFor();
      await shot(page, 'second-factor');
      await code.fill('000000');
      await code.press('Enter');
      await page.getByRole('alert').filter({ hasText: 'Wrong code' }).waitFor();
      await new Promise((r) => setTimeout(r, 200));
      // The enrolment used the current step: the next one, within the ±1 step the server accepts.
      await code.fill(totpCode(totpSecret, Date.now() + 30_000));
      await code.press('Enter');

      // Overview: the device count, the open alert, compliance (run now), the top risks.
      await page.getByTestId('device-count').filter({ hasText: '3 devices' }).waitFor();
      await page.getByRole('heading', { name: 'Open alerts by severity' }).waitFor();
      await page.getByText('1 open alert', { exact: true }).waitFor();
      await page.getByRole('button', { name: 'Run the checks now' }).click();
      await page.getByText(/\d+ failing checks?/).waitFor({ timeout: 60_000 });
      await page
        .getByRole('list', { name: 'Compliance score per standard' })
        .getByText('ETSI EN 303 645')
        .waitFor();
      await page.getByRole('heading', { name: 'Top live risks' }).waitFor();
      await page.locator('.top-risks li').first().waitFor();
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);
      await shot(page, 'overview');

      // Alerts: one click acknowledges; the platform agrees.
      await nav(page, 'Alerts').click();
      await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Acknowledge: Repeated refused connects from pump-1' }).click();
      await page.getByRole('status').filter({ hasText: 'Acknowledged: Repeated refused connects' }).waitFor();
      const [alert] = await s.platform.monitor.alerts.list({ deviceId: 'pump-1' });
      expect(alert).toMatchObject({
        status: 'acknowledged',
        acknowledgedBy: expect.stringContaining('ada') as string,
      });
      await shot(page, 'alerts');

      // Devices: Revoke asks first (Escape cancels), then revokes; the platform agrees.
      await nav(page, 'Devices').click();
      const table = page.getByRole('table', { name: 'Devices' });
      await table.getByRole('rowheader', { name: 'valve-1' }).waitFor();
      expect(await table.getByRole('row').filter({ hasText: 'valves' }).textContent()).toContain(
        'registered',
      );
      await page.getByRole('button', { name: 'Revoke pump-2' }).click();
      const dialog = page.getByRole('dialog', { name: 'Revoke pump-2?' });
      await dialog.waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      expect((await s.platform.devices.find('pump-2'))?.status).toBe('active');
      await page.getByRole('button', { name: 'Revoke pump-2' }).click();
      await dialog.getByLabel('Reason (RFC 5280)').selectOption('keyCompromise');
      await shot(page, 'revoke-confirm');
      await dialog.getByRole('button', { name: 'Revoke pump-2' }).click();
      await page.getByRole('status').filter({ hasText: 'pump-2 revoked' }).waitFor();
      expect((await s.platform.devices.find('pump-2'))?.status).toBe('revoked');
      await table.getByRole('row').filter({ hasText: 'pump-2' }).getByText('revoked').waitFor();
      expect(await page.getByRole('button', { name: 'Revoke pump-2' }).count()).toBe(0);
      await shot(page, 'devices');

      // Risk: the register and the matrix.
      await nav(page, 'Risk').click();
      await page.getByRole('table', { name: 'Impact × attack feasibility (live)' }).waitFor();
      expect(
        await page
          .getByRole('table', { name: 'The risk register, highest live risk first' })
          .getByRole('row')
          .count(),
      ).toBeGreaterThan(1);
      await shot(page, 'risk');

      // The saved TARA with its report, and one risk: give it an owner and a due date, record a review.
      const taras = page.getByRole('table', { name: 'Saved threat analyses and risk assessments' });
      await taras.getByRole('row').filter({ hasText: 'pump' }).waitFor();
      const report = await page.request.get(
        `${s.httpsUrl}${await taras.getByRole('link', { name: /TARA pump report/ }).getAttribute('href')}`,
      );
      expect(report.status()).toBe(200);
      expect(await report.text()).toMatch(/<html[\s\S]*pump/i);
      await page.getByRole('link', { name: 'R-1', exact: true }).click();
      await page.getByRole('heading', { name: /^R-1: / }).waitFor();
      await page.getByLabel('Owner').fill('Ada Lovelace');
      await page.getByLabel('Due').fill('2027-03-31');
      await page.getByLabel('Note for the history (optional)').fill('owner named in the console');
      await page.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
      const saved = await s.platform.risk.register.get('R-1');
      expect([saved?.risk.owner, saved?.risk.due]).toEqual(['Ada Lovelace', '2027-03-31']);
      await page.getByLabel('What was re-assessed').fill('TS1 re-read against the new enclosure');
      await page.getByRole('button', { name: 'Record the review' }).click();
      const history = page.getByRole('table', { name: "The risk's history, newest first" });
      await history.getByRole('row').filter({ hasText: 'TS1 re-read against the new enclosure' }).waitFor();
      await shot(page, 'risk-detail');
      await nav(page, 'Risk').click();

      // A reload on a client-side route stays there (the server answers the page), still signed in.
      await page.reload();
      await page.getByRole('heading', { name: 'Risk', level: 1 }).waitFor();

      // Dark: the same page follows the system's colour scheme.
      await page.emulateMedia({ colorScheme: 'dark' });
      expect(await page.locator('html').evaluate((el) => getComputedStyle(el).backgroundColor)).toBe(
        'rgb(15, 20, 27)',
      );
      await shot(page, 'risk-dark');
      await page.emulateMedia({ colorScheme: 'light' });

      // The session ends on the server (expiry, sign-out elsewhere): the next call brings sign-in back.
      const cookie = (await context.cookies()).find((c) => c.name === SESSION_COOKIE);
      const principal = cookie && (await s.platform.users.resolveSession(cookie.value));
      if (!principal) throw new Error('the browser holds no live session');
      await s.platform.users.signOut(principal, false);
      watch.sessionEnding = true;
      await nav(page, 'Devices').click();
      await page.getByText('Your session has ended. Sign in again.').waitFor();
      watch.sessionEnding = false;

      // Sign in again (both TOTP steps the server accepts now are used: a recovery code), then sign out.
      await page.getByLabel('Username').fill('ada');
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
      await page.getByLabel('Recovery code').fill(recoveryCodes[0] ?? '');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.getByText('You are signed out.').waitFor();
      expect((await context.cookies()).some((c) => c.name === SESSION_COOKIE)).toBe(false);
      await shot(page, 'signed-out');

      expect(watch.problems).toEqual([]);
      expect(watch.refusals.length).toBeGreaterThan(0); // the watch sees console errors at all
      await context.close();
    });

    it('sets up a new account from its one-time secret: password, TOTP enrolment from the QR code, recovery codes', async () => {
      const { setupSecret } = await s.platform.users.create(
        { username: 'sol', role: 'security-officer' },
        'test',
      );
      const { context, watch } = await watched(browser);
      const page = await context.newPage();
      await page.goto(`${s.httpsUrl}/`);
      await setUpOnPage(page, { username: 'sol', setupSecret, password: 'Another-Long-Passphrase-99' });
      // The role needs a second factor: enrol TOTP before anything else.
      await page.getByRole('img', { name: 'QR code of your TOTP secret' }).waitFor();
      const secret = (await page.locator('code.secret').textContent()) ?? '';
      await shot(page, 'enrol-totp');
      await page.getByLabel('Code from your authenticator app').fill(totpCode(secret, Date.now()));
      await page.getByRole('button', { name: 'Confirm' }).click();
      await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
      expect(await page.locator('ul.codes li').count()).toBe(10);
      await page.getByRole('button', { name: 'I have saved them' }).click();
      await page.getByTestId('device-count').waitFor();
      expect((await s.platform.users.get('sol')).twoFactor.totp).toBe(true);
      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('shows a viewer no control its role may not use: no Revoke, no Acknowledge, no Risk page', async () => {
      const { context, watch } = await watched(browser, { colorScheme: 'dark' });
      const page = await context.newPage();
      await page.goto(`${s.httpsUrl}/devices`);
      await passwordStep(page, { username: 'vic', password: VIEWER_PASSWORD });
      // A viewer needs no second factor: straight in, on the page asked for.
      await page.getByRole('heading', { name: 'Devices', level: 1 }).waitFor();
      await page.getByRole('rowheader', { name: 'pump-1' }).waitFor();
      expect(await page.getByRole('button', { name: /^Revoke/ }).count()).toBe(0);
      await shot(page, 'viewer-devices');
      await nav(page, 'Alerts').click();
      await page.getByText('Repeated refused connects from pump-1').waitFor();
      expect(await page.getByRole('button', { name: /^Acknowledge/ }).count()).toBe(0);
      expect(await nav(page, 'Risk').count()).toBe(0);
      await nav(page, 'Overview').click();
      await page.getByTestId('device-count').filter({ hasText: '3 devices' }).waitFor();
      expect(await page.getByRole('heading', { name: 'Top live risks' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Run the checks now' }).count()).toBe(0);
      await shot(page, 'viewer-overview');
      expect(watch.problems).toEqual([]);
      await context.close();
    });
  },
);
