import { existsSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';

/**
 * What the console's browser tests share: Debian's Chromium (never a downloaded browser), a browser context that
 * records every console error, uncaught error and CSP violation, and the main navigation.
 */

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

/**
 * Chromium logs each refused fetch ("Failed to load resource: … 401") as a console error. The sign-in steps
 * answer 401 by design (not signed in yet, a wrong password, a wrong code): those, and only those, are expected.
 */
const EXPECTED_REFUSAL =
  /^Failed to load resource: the server responded with a status of 401 .*\/api\/v1\/auth\/(session|sign-in|second-factor)$/;

/** While the test ends a session behind the browser's back, the next API call's 401 is expected too. */
const SESSION_GONE = /^Failed to load resource: the server responded with a status of 401 .*\/api\/v1\//;

/** What went wrong in a browser context: console errors, uncaught errors, CSP violations. */
export interface Watch {
  problems: string[];
  refusals: string[];
  sessionEnding: boolean;
}

export async function watched(browser: Browser, colorScheme: 'light' | 'dark' = 'light') {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true, // the test CA; the certificate itself is tested in http/tls.e2e.test.ts
    viewport: { width: 1280, height: 860 },
    colorScheme,
    acceptDownloads: true,
  });
  const watch: Watch = { problems: [], refusals: [], sessionEnding: false };
  // Bindings and init scripts come through the DevTools protocol, outside the page's CSP: they only watch.
  await context.exposeFunction('bulwarkViolation', (text: string) => watch.problems.push(`CSP: ${text}`));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      (window as unknown as { bulwarkViolation(t: string): void }).bulwarkViolation(
        `${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`,
      ),
    );
  });
  context.on('console', (m) => {
    const text = `${m.text()} ${m.location().url}`.trim();
    const expected = EXPECTED_REFUSAL.test(text) || (watch.sessionEnding && SESSION_GONE.test(text));
    if (m.type() === 'error' && expected) watch.refusals.push(text);
    else if (m.type() === 'error' || /Content.Security.Policy/i.test(text))
      watch.problems.push(`console: ${text}`);
  });
  context.on('weberror', (e) => watch.problems.push(`page error: ${e.error().message}`));
  return { context, watch };
}

/** A link of the main navigation (tiles and text elsewhere also link to the pages). */
export const nav = (page: Page, name: string) =>
  page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

/** Signs in on the console's page: password, then the TOTP code when the role has a second factor. */
export async function signInOnPage(
  page: Page,
  who: { username: string; password: string; totp?: () => string },
): Promise<void> {
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Continue' }).click();
  if (who.totp) {
    const code = page.getByLabel('Code from your authenticator app');
    await code.fill(who.totp());
    await code.press('Enter');
  }
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}
