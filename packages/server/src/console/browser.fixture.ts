import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect } from 'vitest';
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

/** Whom a test signs in as on the console's page: the TOTP code only for a role with a second factor. */
export interface SignIn {
  username: string;
  password: string;
  totp?: () => string;
}

/** The roles the browser tests sign in as, each with its usual account: ada the admin, otto, vic. */
type Role = 'admin' | 'auditor' | 'viewer';
const USUAL: Record<Role, { username: string; password: string }> = {
  admin: { username: 'ada', password: ADMIN_PASSWORD },
  auditor: { username: 'otto', password: AUDITOR_PASSWORD },
  viewer: { username: 'vic', password: VIEWER_PASSWORD },
};

/** Makes an account (by default the role's usual one) and says how to sign in as it. */
export async function signInAs(s: TestServer, role: Role, username = USUAL[role].username): Promise<SignIn> {
  const { password } = USUAL[role];
  const secret = await account(s, { username, role, password });
  if (secret === undefined) return { username, password };
  // The enrolment used this step's code (a code works once); the next step is within the allowed drift.
  return { username, password, totp: () => totpCode(secret, Date.now() + 30_000) };
}

/** The usual accounts of the roles given (all three unless said), made in that order. */
export async function accounts<R extends Role>(
  s: TestServer,
  roles: readonly R[] = ['admin', 'auditor', 'viewer'] as R[],
): Promise<Record<R, SignIn>> {
  const made: Partial<Record<R, SignIn>> = {};
  for (const role of roles) made[role] = await signInAs(s, role);
  return made as Record<R, SignIn>;
}

/**
 * Chromium logs each refused fetch ("Failed to load resource: … 401") as a console error. The sign-in steps
 * answer 401 by design (not signed in yet, a wrong password, a wrong code): those are always expected; any
 * other refusal only where the test declares it.
 */
const EXPECTED_REFUSAL =
  /^Failed to load resource: the server responded with a status of 401 .*\/api\/v1\/auth\/(session|sign-in|second-factor)$/;

/** While the test ends a session behind the browser's back, the next API call's 401 is expected too. */
const SESSION_GONE = /^Failed to load resource: the server responded with a status of 401 .*\/api\/v1\//;

/** How Chromium logs a response with an error status: the status, then (in the location) the URL. */
const FAILED_LOAD = /^Failed to load resource: the server responded with a status of (\d+) /;

/** A refusal the test provokes on purpose: the API call's method, its path (no query) and the status. */
export interface Refusal {
  method: string;
  path: string | RegExp;
  status: number;
}

/** What went wrong in a browser context: console errors, uncaught errors, CSP violations. */
export interface Watch {
  /** Everything unexpected: read it once the page is done (a declared refusal is matched to its request). */
  readonly problems: string[];
  /** The sign-in steps' and an ending session's refusals, as Chromium logged them. */
  refusals: string[];
  /** The declared refusals that happened, in order, as `METHOD path status`. */
  readonly declared: string[];
  sessionEnding: boolean;
}

export interface WatchOptions {
  colorScheme?: 'light' | 'dark';
  /** Refusals the test provokes: Chromium logs them as errors, and they are not problems. */
  refusals?: readonly Refusal[];
}

const pathOf = (url: string) => new URL(url).pathname;
const isDeclared = (refusals: readonly Refusal[], seen: { method: string; url: string; status: number }) =>
  refusals.some(
    (r) =>
      r.status === seen.status &&
      r.method === seen.method &&
      (typeof r.path === 'string' ? r.path === pathOf(seen.url) : r.path.test(pathOf(seen.url))),
  );

export async function watched(browser: Browser, options: WatchOptions = {}) {
  const { colorScheme = 'light', refusals: expected = [] } = options;
  const context = await browser.newContext({
    ignoreHTTPSErrors: true, // the test CA; the certificate itself is tested in http/tls.e2e.test.ts
    viewport: { width: 1280, height: 860 },
    colorScheme,
    acceptDownloads: true,
  });
  const problems: string[] = [];
  /** Logged failures that may be declared refusals, and the responses that were: paired when read. */
  const failedLoads: { text: string; url: string; status: number }[] = [];
  const declaredResponses: { method: string; url: string; status: number }[] = [];
  const pair = () => {
    const unpaired = [...declaredResponses];
    const declared: string[] = [];
    const left: string[] = [];
    for (const f of failedLoads) {
      const i = unpaired.findIndex((r) => r.url === f.url && r.status === f.status);
      const [hit] = i < 0 ? [] : unpaired.splice(i, 1);
      if (hit) declared.push(`${hit.method} ${pathOf(hit.url)} ${hit.status}`);
      else left.push(`console: ${f.text}`);
    }
    return { declared, left };
  };
  const watch: Watch = {
    get problems() {
      return [...problems, ...pair().left];
    },
    refusals: [],
    get declared() {
      return pair().declared;
    },
    sessionEnding: false,
  };
  if (expected.length > 0)
    context.on('response', (r) => {
      const seen = { method: r.request().method(), url: r.url(), status: r.status() };
      if (isDeclared(expected, seen)) declaredResponses.push(seen);
    });
  // Bindings and init scripts come through the DevTools protocol, outside the page's CSP: they only watch.
  await context.exposeFunction('bulwarkViolation', (text: string) => problems.push(`CSP: ${text}`));
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) =>
      (window as unknown as { bulwarkViolation(t: string): void }).bulwarkViolation(
        `${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`,
      ),
    );
  });
  context.on('console', (m) => {
    const url = m.location().url;
    const text = `${m.text()} ${url}`.trim();
    const expectedAlways = EXPECTED_REFUSAL.test(text) || (watch.sessionEnding && SESSION_GONE.test(text));
    const status = Number(FAILED_LOAD.exec(m.text())?.[1]);
    if (m.type() === 'error' && expectedAlways) watch.refusals.push(text);
    else if (m.type() === 'error' && expected.some((r) => r.status === status))
      failedLoads.push({ text, url, status });
    else if (m.type() === 'error' || /Content.Security.Policy/i.test(text)) problems.push(`console: ${text}`);
  });
  context.on('weberror', (e) => problems.push(`page error: ${e.error().message}`));
  return { context, watch };
}

/** A link of the main navigation (tiles and text elsewhere also link to the pages). */
export const nav = (page: Page, name: string) =>
  page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });

/** The password step of signing in; the second factor, if any, is the caller's. */
export async function passwordStep(page: Page, who: { username: string; password: string }): Promise<void> {
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Continue' }).click();
}

/**
 * A page the viewer may not read says so (and calls no API), and the main navigation, there, offers none of
 * `absent` (Devices it always offers).
 */
export async function notOfferedToViewer(page: Page, absent: readonly string[]): Promise<void> {
  await page.getByText('Your role (viewer) does not allow this page.').waitFor();
  await nav(page, 'Devices').waitFor();
  for (const name of absent) expect(await nav(page, name).count()).toBe(0);
}

/** Signs in on the console's page: password, then the TOTP code when the role has a second factor. */
export async function signInOnPage(page: Page, who: SignIn): Promise<void> {
  await passwordStep(page, who);
  if (who.totp) {
    const code = page.getByLabel('Code from your authenticator app');
    await code.fill(who.totp());
    await code.press('Enter');
  }
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** A new watched browser context with one page, opened at `url` and signed in there `as` someone. */
export async function signedInPage(browser: Browser, url: string, options: WatchOptions & { as: SignIn }) {
  const { context, watch } = await watched(browser, options);
  const page = await context.newPage();
  await page.goto(url);
  await signInOnPage(page, options.as);
  return { context, watch, page };
}

/** Sets up an account on the console's page from its one-time secret, up to the next step the role needs. */
export async function setUpOnPage(
  page: Page,
  who: { username: string; setupSecret: string; password: string },
): Promise<void> {
  await page.getByRole('button', { name: 'Set up your account with a setup secret' }).click();
  await page.getByLabel('Username').fill(who.username);
  await page.getByLabel('Setup secret').fill(who.setupSecret);
  await page.getByLabel('New password').fill(who.password);
  await page.getByRole('button', { name: 'Set password' }).click();
}
