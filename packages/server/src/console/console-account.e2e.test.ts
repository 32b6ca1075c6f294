import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/server.ts';
import { totpCode } from '../users/index.ts';
import {
  ADMIN_PASSWORD,
  CHROMIUM,
  VIEWER_PASSWORD,
  account,
  haveChromium,
  launchChromium,
  passwordStep,
  screenshots,
  setUpOnPage,
  watched,
} from './browser.fixture.ts';

const STEP_UP_WINDOW_MS = 5 * 60_000; // auth.stepUpWindow's default
const ada = { username: 'ada', password: ADMIN_PASSWORD };

/**
 * A platform authenticator (built in, user-verifying, holding resident keys) in Chrome's DevTools protocol: the
 * browser's real WebAuthn code path talks to it as to a laptop's. The page's own target keeps it across reloads.
 */
async function virtualAuthenticator(context: BrowserContext, page: Page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
  return {
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
  };
}

/** The header's own sign-out (the account page also has "Sign out everywhere"). */
const signOutButton = (page: Page) => page.getByRole('button', { name: 'Sign out', exact: true });

async function withRecoveryCode(page: Page, code: string) {
  await page.getByRole('button', { name: 'Use a recovery code instead' }).click();
  await page.getByLabel('Recovery code').fill(code);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await signOutButton(page).waitFor();
}

async function openAccount(page: Page, username: string) {
  await page.getByRole('banner').getByRole('link', { name: username, exact: true }).click();
  await page.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
}

/**
 * The signed-in user's account page and passkeys in Debian's Chromium with a virtual authenticator: an admin who
 * signs in with TOTP registers a passkey, signs in again with password and passkey, replaces the recovery codes
 * (one of them then signs in), confirms it is them with the passkey when the step-up window has passed, and signs
 * out everywhere (another browser's session ends too); an idle session warns, can be kept, and then ends.
 */
describe.skipIf(!haveChromium)(
  `the account page, passkeys and session timeout in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped'})`,
  { timeout: 240_000 },
  () => {
    let s: TestServer;
    let idle: TestServer;
    let browser: Browser;
    let adminTotp = '';
    // The server's clock runs this far ahead once the test lets the step-up window pass.
    let ahead = 0;
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    beforeAll(async () => {
      s = await startTestServer({}, { now: () => Date.now() + ahead });
      adminTotp = (await account(s, { username: 'ada', role: 'admin', password: ADMIN_PASSWORD })) ?? '';
      // A short idle time, to see the warning and the end within the test.
      idle = await startTestServer({ 'auth.sessionIdle': '30s' });
      await account(idle, { username: 'vic', role: 'viewer', password: VIEWER_PASSWORD });
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
      await idle?.stop();
    });

    it('registers a passkey, signs in with it, replaces recovery codes, steps up with it and signs out everywhere', async () => {
      // The one refusal that asks for the step-up (403 step_up_required), by design.
      const { context, watch } = await watched(browser, {
        refusals: [
          { method: 'DELETE', path: /^\/api\/v1\/auth\/webauthn\/credentials\/[A-Za-z0-9_-]+$/, status: 403 },
        ],
      });
      const page = await context.newPage();
      const authenticator = await virtualAuthenticator(context, page);
      await page.goto(`${s.httpsUrl}/`);
      await passwordStep(page, ada);
      // A TOTP-only account is offered no passkey. The enrolment used this step's code; the next one is in the window.
      const code = page.getByLabel('Code from your authenticator app');
      await code.fill(totpCode(adminTotp, Date.now() + 30_000));
      expect(await page.getByRole('button', { name: 'Use your passkey' }).count()).toBe(0);
      await code.press('Enter');
      await signOutButton(page).waitFor();

      // The account page, from the user's name: TOTP on, no passkey, the recovery codes of the enrolment.
      await openAccount(page, 'ada');
      expect(new URL(page.url()).pathname).toBe('/account');
      const totp = page.getByRole('region', { name: 'Authenticator app (TOTP)' });
      await totp.getByText('on', { exact: true }).waitFor();
      const passkeys = page.getByRole('region', { name: 'Passkeys' });
      await passkeys.getByText('You have no passkey.').waitFor();
      const recovery = page.getByRole('region', { name: 'Recovery codes' });
      await recovery.getByText('10 recovery codes left.', { exact: false }).waitFor();

      // Register a passkey: navigator.credentials.create() answered by the virtual authenticator.
      await passkeys.getByLabel('Passkey name').fill('Laptop');
      await passkeys.getByRole('button', { name: 'Register a passkey' }).click();
      await passkeys.getByRole('status').filter({ hasText: 'Passkey Laptop registered.' }).waitFor();
      const laptop = passkeys.getByRole('row').filter({ hasText: 'Laptop' });
      await laptop.getByRole('cell', { name: 'never' }).waitFor();
      expect(await authenticator.credentials()).toHaveLength(1);
      expect((await s.platform.users.get('ada')).twoFactor.webauthn).toBe(1);
      await shot(page, 'account-passkey');

      // Sign out, then password and passkey.
      await signOutButton(page).click();
      await page.getByText('You are signed out.').waitFor();
      await passwordStep(page, ada);
      await page.getByRole('button', { name: 'Use your passkey' }).click();
      await signOutButton(page).waitFor();
      await page.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
      await laptop.getByRole('cell', { name: 'just now' }).waitFor();

      // New recovery codes, shown once; the confirmation can be cancelled.
      await recovery.getByRole('button', { name: 'Generate new recovery codes' }).click();
      await page.keyboard.press('Escape');
      await page.getByRole('dialog').waitFor({ state: 'detached' });
      await recovery.getByRole('button', { name: 'Generate new recovery codes' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Generate new codes' }).click();
      const list = recovery.getByRole('list', { name: 'Recovery codes' });
      await list.waitFor();
      const codes = (await list.getByRole('listitem').allTextContents()).map((c) => c.trim());
      expect(codes).toHaveLength(10);
      expect(new Set(codes).size).toBe(10);
      await recovery.getByRole('button', { name: 'I have saved them' }).click();
      await list.waitFor({ state: 'detached' });
      await recovery.getByText('10 recovery codes left.', { exact: false }).waitFor();

      // One of the new codes signs in (and is then used up).
      await signOutButton(page).click();
      await passwordStep(page, ada);
      await withRecoveryCode(page, codes[0] ?? '');
      expect((await s.platform.users.get('ada')).twoFactor.recoveryCodesLeft).toBe(9);

      // A second browser signs in as the same user (another code) and stays on the overview.
      const other = await watched(browser);
      const otherPage = await other.context.newPage();
      await otherPage.goto(`${s.httpsUrl}/`);
      await passwordStep(otherPage, ada);
      await withRecoveryCode(otherPage, codes[1] ?? '');

      // Past the step-up window, removing the passkey asks for the second factor again: the passkey gives it.
      ahead = STEP_UP_WINDOW_MS + 60_000;
      await laptop.getByRole('button', { name: 'Remove passkey Laptop' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Remove Laptop' }).click();
      const stepUp = page.getByRole('dialog', { name: 'Confirm it is you' });
      await stepUp.waitFor();
      await shot(page, 'account-step-up');
      await stepUp.getByRole('button', { name: 'Use your passkey' }).click();
      await stepUp.waitFor({ state: 'detached' });
      await passkeys.getByRole('status').filter({ hasText: 'Passkey Laptop removed.' }).waitFor();
      await passkeys.getByText('You have no passkey.').waitFor();
      expect((await s.platform.users.get('ada')).twoFactor.webauthn).toBe(0);

      // Sign out everywhere: this session and the other browser's end.
      other.watch.sessionEnding = true;
      const sessions = page.getByRole('region', { name: 'Sessions' });
      await sessions.getByRole('button', { name: 'Sign out everywhere' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Sign out everywhere' }).click();
      // Both browsers' sessions, and any other this account still had.
      const ended = page.getByText(/^Signed out everywhere: \d+ sessions ended\.$/);
      await ended.waitFor();
      expect(Number(/\d+/.exec((await ended.textContent()) ?? '')?.[0])).toBeGreaterThanOrEqual(2);
      await page.getByLabel('Username').waitFor();
      await otherPage.reload();
      await otherPage.getByLabel('Username').waitFor();
      expect(await signOutButton(otherPage).count()).toBe(0);

      expect(watch.declared).toHaveLength(1);
      expect(watch.problems).toEqual([]);
      expect(other.watch.problems).toEqual([]);
      await other.context.close();
      await context.close();
    });

    it('sets up a new account with a passkey instead of TOTP at the enrolment step', async () => {
      const { setupSecret } = await s.platform.users.create({ username: 'bea', role: 'admin' }, 'test');
      const { context, watch } = await watched(browser);
      const page = await context.newPage();
      const authenticator = await virtualAuthenticator(context, page);
      await page.goto(`${s.httpsUrl}/`);
      await setUpOnPage(page, { username: 'bea', setupSecret, password: 'Tulip-Harbour-Lantern-Quietly-7' });
      await page.getByRole('heading', { name: 'Set up two-factor sign-in' }).waitFor();
      await page.getByRole('button', { name: 'register a passkey instead' }).click();
      await page.getByRole('heading', { name: 'Save your recovery codes' }).waitFor();
      expect(await page.getByRole('list', { name: 'Recovery codes' }).getByRole('listitem').count()).toBe(10);
      await page.getByRole('button', { name: 'I have saved them' }).click();
      await signOutButton(page).waitFor();
      expect(await authenticator.credentials()).toHaveLength(1);
      const bea = await s.platform.users.get('bea');
      expect(bea.twoFactor).toEqual({ totp: false, webauthn: 1, recoveryCodesLeft: 10 });
      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('warns before an idle session ends, keeps it on request, then shows the sign-in page when it ended', async () => {
      const { context, watch } = await watched(browser);
      const page = await context.newPage();
      // The account page reads once and polls nothing: only the user keeps the session alive here.
      await page.goto(`${idle.httpsUrl}/account`);
      await passwordStep(page, { username: 'vic', password: VIEWER_PASSWORD });
      await page.getByRole('heading', { name: 'Your account', level: 1 }).waitFor();
      await page.getByText('A session ends after 30 seconds without use.', { exact: false }).waitFor();

      // 30 s idle: the notice comes with 15 s left, and blocks nothing.
      const notice = page.getByRole('status', { name: 'Session timeout' });
      await notice.waitFor({ timeout: 25_000 });
      expect(await notice.textContent()).toMatch(/Your session ends in 0:\d\d without activity\./);
      await shot(page, 'account-session-timeout');
      await page.getByRole('region', { name: 'Recovery codes' }).waitFor();
      await notice.getByRole('button', { name: 'Stay signed in' }).click();
      await notice.waitFor({ state: 'detached' });

      // Left alone again, it comes back, and then the session ends: the sign-in page says so.
      await notice.waitFor({ timeout: 25_000 });
      await page.getByText('Your session has ended. Sign in again.').waitFor({ timeout: 30_000 });
      await page.getByLabel('Username').waitFor();
      expect(watch.refusals.some((r) => r.includes('/api/v1/auth/session'))).toBe(true);
      expect(watch.problems).toEqual([]);
      await context.close();
    });
  },
);
