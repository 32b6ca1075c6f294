import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { TestServer } from '../test-support/server.ts';
import { totpCode } from '../users/index.ts';

/**
 * What the console's browser tests share: Debian's Chromium (never a downloaded browser), a browser context that
 * records every console error, uncaught error and CSP violation, and the main navigation.
 */

export const CHROMIUM = '/usr/bin/chromium';
export const haveChromium = existsSync(CHROMIUM);

export const launchChromium = () => chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });

/** The passwords of the accounts the browser tests make. */
export const ADMIN_PASSWORD = 'Correct-Horse-Battery-Staple-42';
export const AUDITOR_PASSWORD = 'Auditor-Passphrase-Long-Enough-8';
export const VIEWER_PASSWORD = 'Viewer-Passphrase-Long-Enough-9';

/**
 * Where the screenshots go, kept after the run (on disk, not in /dev/shm: they are for a person to look at), and a
 * function that takes one of a whole page. `dir` is the test's BULWARK_ARTIFACTS, or a fresh folder.
 */
export function screenshots(dir: string | undefined) {
  const artifacts = dir ?? mkdtempSync(path.join(tmpdir(), 'bulwark-console-'));
  mkdirSync(artifacts, { recursive: true });
  return (page: Page, name: string) =>
    page.screenshot({ path: path.join(artifacts, `console-${name}.png`), fullPage: true });
}

/** Makes an account with its password; an admin also enrols TOTP, and its secret is returned. */
export async function account(
  s: TestServer,
  who: { username: string; role: 'admin' | 'auditor' | 'viewer'; password: string },
): Promise<string | undefined> {
  const { username, role, password } = who;
  const users = s.platform.users;
  const { setupSecret } = await users.create({ username, role }, 'test');
  const ticket = await users.completeSetup({ username, setupSecret, password, address: '127.0.0.1' });
  if (role !== 'admin') return undefined;
  const enrolling = await users.resolveSession(ticket.id);
  if (!enrolling) throw new Error('no session after setup');
  const { secret } = await users.beginTotp(enrolling);
  await users.confirmTotp(enrolling, totpCode(secret, Date.now()), '127.0.0.1');
  return secret;
}

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
