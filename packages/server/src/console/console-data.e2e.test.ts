import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../test-support/clients.ts';
import { roomSensor } from '../test-support/data-schemas.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import {
  CHROMIUM,
  accounts,
  haveChromium,
  launchChromium,
  nav,
  notOfferedToViewer,
  screenshots,
  signedInPage,
  type SignIn,
} from './browser.fixture.ts';

const DAY_MS = 86_400_000;

/** No page is laid out wider than the 1280-pixel screen the console is made for. */
const fitsTheScreen = async (page: Page) =>
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(1280);

/**
 * The Applications and Privacy pages in Debian's Chromium, over the real server: an admin adds an app (its
 * errors shown under the field they are about, nothing added meanwhile), grants it the pumps' telemetry, issues
 * a token whose secret (shown once, copied) then authenticates over MQTT and receives a pump's reading as its
 * purpose allows, revokes it (the session ends), and revokes the app; on the Privacy page, sees an overdue
 * request, a data schema the platform holds with its fields, tries payloads, records an erasure (its deadline
 * shown) and runs it (the platform agrees), exports a subject, and reads and downloads the record of
 * processing. An auditor reads both pages with no control to change anything; a viewer is offered neither.
 */
describe.skipIf(!haveChromium)(
  `the applications and privacy pages in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped'})`,
  { timeout: 300_000 },
  () => {
    let s: TestServer;
    let browser: Browser;
    let ca: string;
    let people: Record<'admin' | 'auditor' | 'viewer', SignIn>;
    let overdueId = '';
    /** The platform's clock runs this far from the real one (a request received long ago). */
    let shift = 0;
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    beforeAll(async () => {
      s = await startTestServer({}, { now: () => Date.now() + shift });
      ca = readFileSync(s.caFile, 'utf8');
      // A request received 40 days ago and never run: past its one-month deadline, marked overdue.
      shift = -40 * DAY_MS;
      const old = await s.platform.privacy.createRequest(
        { subject: 'u-99', kind: 'access', hold: true },
        'user:test',
      );
      shift = 0;
      overdueId = old.request.id;
      expect(await s.platform.privacy.checkOverdue(Date.now())).toBe(1);

      people = await accounts(s);
      await s.platform.access.putZone(
        { name: 'plant', securityLevel: 2, members: { groups: ['pumps'] } },
        'test',
      );
      await s.platform.privacy.putSchema(roomSensor(), 'user:test');
      await s.platform.privacy.addSubject({ id: 'u-17', kind: 'customer', devices: [] }, 'user:test');
      await s.platform.privacy.setConsent(
        'u-17',
        { purpose: 'essential.service.operations', noticeVersion: 'v3', status: 'given' },
        'user:test',
      );
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
    });

    const connectApp = (password: string) =>
      mqtt.connectAsync(s.mqttUrl, {
        ca,
        clientId: 'dashboard/console-test',
        username: 'dashboard',
        password,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
      });
    const closed = (c: MqttClient) =>
      new Promise<void>((resolve) => (c.connected ? c.once('close', () => resolve()) : resolve()));

    it('lets an admin add an app, grant it, issue a token that works over MQTT, revoke it, and run privacy requests', async () => {
      // The two refusals provoked below (the misspelt purpose, the misspelt grant scope), once each.
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/apps`, {
        as: people.admin,
        refusals: [
          { method: 'POST', path: '/api/v1/apps', status: 400 },
          { method: 'PUT', path: '/api/v1/apps/dashboard/grants', status: 400 },
        ],
      });
      await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: s.httpsUrl });
      await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor();
      await page.getByText('No applications yet.').waitFor();

      // Bad input: the error stands under its field, and nothing is added.
      const form = page.getByRole('form', { name: 'New application' });
      await form.getByLabel('Name').fill('Bad Name');
      await form.getByRole('button', { name: 'Add application' }).click();
      await form
        .locator('#app-name-error')
        .getByText(/app name must be 1-48 characters/)
        .waitFor();
      expect(await form.getByLabel('Name').getAttribute('aria-invalid')).toBe('true');
      await form.getByLabel('Name').fill('dashboard');
      await form.getByLabel('Purpose (fideslang data use)').fill('analytics.reportng');
      await form.getByRole('button', { name: 'Add application' }).click();
      // The server's refusal, under the purpose.
      await form
        .locator('#app-purpose-error')
        .getByText(/did you mean analytics\.reporting/)
        .waitFor();
      expect(await form.locator('#app-name-error').count()).toBe(0);
      expect(await s.platform.apps.list()).toEqual([]);

      await form.getByLabel('Purpose (fideslang data use)').fill('analytics.reporting');
      await form.getByLabel('Zone', { exact: true }).fill('plant');
      await form.getByLabel('Description').fill('Reports on the pumps');
      await form.getByRole('button', { name: 'Add application' }).click();
      await page.getByRole('heading', { name: 'dashboard', level: 1 }).waitFor();
      expect(page.url()).toBe(`${s.httpsUrl}/apps/dashboard`);
      const about = page.getByRole('region', { name: 'About' });
      await about.getByText('analytics.reporting', { exact: true }).waitFor();
      await about.getByText('plant', { exact: true }).waitFor();
      expect(await s.platform.apps.get('dashboard')).toMatchObject({
        purpose: 'analytics.reporting',
        zone: 'plant',
        grants: [],
      });

      // Grants: a wrong scope is refused under that grant and changes nothing; the right one is saved.
      const grants = page.getByRole('region', { name: 'Grants' });
      await grants.getByRole('button', { name: 'Add a grant' }).click();
      await grants.getByLabel('Grant 1', { exact: true }).fill('subscribe devices/+/telemetry grup:pumps');
      await grants.getByRole('button', { name: 'Save grants' }).click();
      await grants
        .locator('#grant-0-error')
        .getByText(/^grant 1 \(/)
        .waitFor();
      expect((await s.platform.apps.get('dashboard')).grants).toEqual([]);
      await grants.getByLabel('Grant 1', { exact: true }).fill('subscribe devices/+/telemetry group:pumps');
      await grants.getByRole('button', { name: 'Save grants' }).click();
      await page.getByRole('status').filter({ hasText: 'Grants of dashboard saved: 1.' }).waitFor();
      expect((await s.platform.apps.get('dashboard')).grants).toEqual([
        'subscribe devices/+/telemetry group:pumps',
      ]);
      expect(await grants.getByLabel('Grant 1', { exact: true }).inputValue()).toBe(
        'subscribe devices/+/telemetry group:pumps',
      );

      // A token: a lifetime that is not a duration is refused under its field; then the secret, shown once.
      const tokens = page.getByRole('region', { name: 'Tokens' });
      await tokens.getByLabel('Expires after (empty: never)').fill('forever');
      await tokens.getByRole('button', { name: 'Issue token' }).click();
      await tokens
        .locator('#token-ttl-error')
        .getByText(/is not a duration/)
        .waitFor();
      await tokens.getByLabel('Expires after (empty: never)').fill('30d');
      await tokens.getByRole('button', { name: 'Issue token' }).click();
      const secret = (await tokens.getByLabel('New token: secret').textContent()) ?? '';
      expect(secret).toMatch(/^bwa_/);
      await tokens.getByRole('button', { name: 'Copy the new token' }).click();
      await tokens.getByText('Copied.', { exact: true }).waitFor();
      expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
      const [stored] = await s.platform.apps.listTokens('dashboard');
      expect(stored?.expiresAt).toBeGreaterThan(Date.now() + 29 * DAY_MS);
      await shot(page, 'app-token');

      // The token is the app's MQTT password: it receives a pump's reading, shaped for its purpose.
      const app = await connectApp(secret);
      const readings: Record<string, unknown>[] = [];
      app.on('message', (_topic, payload) =>
        readings.push(JSON.parse(payload.toString()) as Record<string, unknown>),
      );
      const [granted] = await app.subscribeAsync('devices/+/telemetry', { qos: 1 });
      expect(granted?.qos).toBe(1);
      const pump = await connectMqtt(s.mqttUrl, ca, await enrollInProcess(s, 'pump-1', 'pumps'));
      await pump.publishAsync('devices/pump-1/telemetry', JSON.stringify({ user_id: 'u-17', temp: 21.5 }), {
        qos: 1,
      });
      await expect.poll(() => readings.length).toBe(1);
      // analytics.reporting is not among user_id's uses: a pseudonym, never the id (docs/privacy.md).
      expect(readings[0]).toMatchObject({ temp: 21.5 });
      expect(readings[0]?.user_id).toMatch(/^ps1\./);

      await tokens.getByRole('button', { name: 'Done' }).click();
      expect(await page.getByText(secret).count()).toBe(0);
      const row = tokens.getByRole('row').filter({ hasText: stored?.id ?? '?' });
      await row.getByText('active', { exact: true }).waitFor();
      const ended = closed(app);
      await row.getByRole('button', { name: `Revoke token ${stored?.id ?? '?'}` }).click();
      await page.getByRole('dialog', { name: 'Revoke this token?' }).waitFor();
      await page.getByRole('button', { name: 'Revoke the token', exact: true }).click();
      await row.getByText('revoked', { exact: true }).waitFor();
      await ended;
      await expect(connectApp(secret)).rejects.toBeDefined();
      expect((await s.platform.apps.listTokens('dashboard'))[0]?.revokedAt).not.toBeNull();
      await fitsTheScreen(page);

      // Privacy: the overdue request, highlighted.
      await nav(page, 'Privacy').click();
      await page.getByRole('heading', { name: 'Privacy', level: 1 }).waitFor();
      const overdue = page.getByRole('row').filter({ hasText: overdueId });
      await overdue.getByText(/^overdue by 10 days$/).waitFor();
      expect(await overdue.getAttribute('class')).toBe('overdue');

      // The schema the platform holds, with its fields' classification.
      await page.getByRole('button', { name: 'room-sensor', exact: true }).click();
      const fields = page.getByRole('table', { name: 'Fields of room-sensor' });
      const userId = fields.getByRole('row').filter({ hasText: 'user.unique_id' });
      await userId.getByText('pseudonymise').waitFor();
      await userId.getByText('30 days').waitFor();

      // A payload tried against it: refused with the reason, then what a purpose receives.
      const test = page.getByRole('form', { name: 'Test a payload' });
      await test.getByLabel('Topic').fill('devices/pump-1/telemetry');
      await test.getByLabel('Payload').fill('{"user_id":"u-17","temp":"hot"}');
      await test.getByRole('button', { name: 'Test' }).click();
      const outcome = page.getByRole('status', { name: 'Test result' });
      await outcome.getByText('refused', { exact: true }).waitFor();
      await outcome.getByText(/temp/).first().waitFor();
      await test.getByLabel('Payload').fill('{"user_id":"u-17","temp":21.5}');
      await test.getByLabel("Consumer's purpose (empty: a device)").fill('analytics.reporting');
      await test.getByRole('button', { name: 'Test' }).click();
      await outcome.getByText('valid', { exact: true }).waitFor();
      expect(await outcome.getByLabel('Delivered').textContent()).toMatch(/"user_id": "ps1\./);

      // An erasure request: a malformed subject is refused under its field; then recorded with its deadline.
      const record = page.getByRole('form', { name: 'New request' });
      await record.getByLabel('Subject id').fill('u 17');
      await record.getByRole('button', { name: 'Record the request' }).click();
      await record
        .locator('#request-subject-error')
        .getByText(/a subject id/)
        .waitFor();
      expect(await s.platform.privacy.listRequests()).toHaveLength(1);
      await record.getByLabel('Subject id').fill('u-17');
      await record.getByLabel('Request').selectOption('erasure');
      await record.getByRole('button', { name: 'Record the request' }).click();
      await page
        .getByRole('status', { name: 'Request outcome' })
        .getByText(/recorded: open, due /)
        .waitFor();
      const erasure = (await s.platform.privacy.listRequests({ status: 'open' })).find(
        (r) => r.kind === 'erasure',
      );
      expect(erasure?.subject).toBe('u-17');
      const erasureRow = page.getByRole('row').filter({ hasText: erasure?.id ?? '?' });
      await erasureRow.getByText('30 days left', { exact: true }).waitFor();
      await shot(page, 'privacy-requests');

      // Run it (after a confirmation): the platform erased the subject and completed the request.
      await erasureRow.getByRole('button', { name: `Run ${erasure?.id ?? '?'}` }).click();
      const confirm = page.getByRole('dialog', { name: 'Run the erasure request of u-17?' });
      await confirm.getByRole('button', { name: `Run ${erasure?.id ?? '?'}`, exact: true }).click();
      await page
        .getByRole('status', { name: 'Request outcome' })
        .getByText(/\(erasure\) completed/)
        .waitFor();
      await erasureRow.getByText('completed', { exact: true }).waitFor();
      expect((await s.platform.privacy.getRequest(erasure?.id ?? '?')).status).toBe('completed');
      await expect(s.platform.privacy.getSubject('u-17')).rejects.toMatchObject({ code: 'not_found' });

      // An access request run at once: its export downloads as JSON.
      await record.getByLabel('Subject id').fill('u-5');
      await record.getByLabel('Request').selectOption('access');
      await record.getByLabel('Run it now').check();
      await record.getByRole('button', { name: 'Record the request' }).click();
      const exported = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download the export (JSON)' }).click();
      const exportFile = await exported;
      expect(exportFile.suggestedFilename()).toBe('bulwark-export-u-5.json');
      expect(JSON.parse(readFileSync(await exportFile.path(), 'utf8'))).toMatchObject({ subject: 'u-5' });

      // The record of processing: readable, and as JSON.
      const activity = page.getByRole('region', { name: 'Processing activity room-sensor' });
      await activity
        .getByRole('row')
        .filter({ hasText: 'dashboard' })
        .getByText('analytics.reporting')
        .waitFor();
      const downloaded = page.waitForEvent('download');
      await page.getByRole('link', { name: 'Download JSON' }).click();
      const recordFile = await downloaded;
      const json = JSON.parse(readFileSync(await recordFile.path(), 'utf8')) as {
        activities: { name: string }[];
      };
      expect(json.activities.map((a) => a.name)).toEqual(['room-sensor']);
      await fitsTheScreen(page);
      await shot(page, 'privacy');

      // Revoking the app, confirmed: the platform agrees.
      await nav(page, 'Apps').click();
      await page.getByRole('link', { name: 'dashboard', exact: true }).click();
      await page.getByRole('button', { name: 'Revoke application' }).click();
      await page.getByLabel('Reason (recorded in the audit log)').fill('replaced');
      await page.getByRole('button', { name: 'Revoke dashboard', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'dashboard revoked' }).waitFor();
      expect((await s.platform.apps.get('dashboard')).status).toBe('revoked');
      expect(await page.getByRole('button', { name: 'Save grants' }).count()).toBe(0);

      pump.end(true);
      expect(watch.declared).toEqual(['POST /api/v1/apps 400', 'PUT /api/v1/apps/dashboard/grants 400']);
      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('shows an auditor the applications and privacy without any control to change them', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/apps/dashboard`, {
        as: people.auditor,
      });
      await page.getByRole('heading', { name: 'dashboard', level: 1 }).waitFor();
      await page
        .getByRole('list', { name: 'Grants' })
        .getByText('subscribe devices/+/telemetry group:pumps')
        .waitFor();
      await page.getByRole('region', { name: 'Tokens' }).getByText('revoked', { exact: true }).waitFor();
      for (const name of ['Save grants', 'Issue token', 'Revoke application', 'Sign the request'])
        expect(await page.getByRole('button', { name }).count()).toBe(0);

      await nav(page, 'Apps').click();
      await page.getByText('Read-only: your role does not change applications.', { exact: false }).waitFor();
      expect(await page.getByRole('form', { name: 'New application' }).count()).toBe(0);

      await nav(page, 'Privacy').click();
      await page.getByText('Read-only: your role does not change privacy data.').waitFor();
      await page
        .getByRole('row')
        .filter({ hasText: overdueId })
        .getByText(/^overdue by/)
        .waitFor();
      await page.getByRole('button', { name: 'room-sensor', exact: true }).waitFor();
      await page.getByRole('region', { name: 'Processing activity room-sensor' }).waitFor();
      expect(await page.getByRole('form', { name: 'New request' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: /^(Run|Reject|Complete) pr_/ }).count()).toBe(0);
      await shot(page, 'auditor-privacy');
      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('offers a viewer neither Apps nor Privacy', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/privacy`, {
        as: people.viewer,
      });
      await notOfferedToViewer(page, ['Apps', 'Privacy']);
      await page.goto(`${s.httpsUrl}/apps/dashboard`);
      await page.getByText('Your role (viewer) does not allow this page.').waitFor();
      // A device's page, under the same routing as an app's, is the viewer's to read.
      await page.goto(`${s.httpsUrl}/devices/pump-1`);
      await page.getByRole('heading', { name: 'pump-1', level: 1 }).waitFor();
      expect(watch.problems).toEqual([]);
      await context.close();
    });
  },
);
