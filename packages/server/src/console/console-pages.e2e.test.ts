import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

/**
 * The device page, policies and zones, users and tokens, and the alert queue meeting a real detector, in Debian's
 * Chromium: an admin quarantines and releases a device (the platform agrees), simulates a decision, creates and
 * revokes an API token (its secret shown once) and sees a tamper report become an alert on the open Alerts page;
 * an auditor reads the same pages with no control to change anything.
 */
describe.skipIf(!haveChromium)(
  `the device, policies and users pages in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped'})`,
  { timeout: 240_000 },
  () => {
    let s: TestServer;
    let browser: Browser;
    let people: Record<'admin' | 'auditor' | 'viewer', SignIn>;
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    beforeAll(async () => {
      s = await startTestServer();
      people = await accounts(s);
      for (const id of ['pump-1', 'pump-2', 'pump-3']) await enrollInProcess(s, id, 'pumps');
      await s.platform.access.putZone(
        { name: 'plant', securityLevel: 2, members: { groups: ['pumps'] } },
        'test',
      );
      await s.platform.access.putZone(
        { name: 'office', securityLevel: 1, members: { groups: ['office'] } },
        'test',
      );
      await s.platform.access.putConduit(
        {
          name: 'up',
          from: 'plant',
          to: 'office',
          topics: ['telemetry/#'],
          direction: 'one-way',
          rateCap: 100,
        },
        'test',
      );
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
    });

    it('lets an admin quarantine and release a device, simulate a decision, manage tokens, and see a detector alert arrive', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/devices`, {
        as: people.admin,
      });

      // Device page, from the list: identity, effective access and why, its audit trail.
      await page.getByRole('link', { name: 'pump-1', exact: true }).click();
      await page.getByRole('heading', { name: 'pump-1', level: 1 }).waitFor();
      const identity = page.getByRole('region', { name: 'Identity' });
      await identity.getByText('pumps', { exact: true }).waitFor();
      await identity.getByText('plant', { exact: true }).waitFor();
      const access = page.getByRole('region', { name: 'Effective access now' });
      const statements = access.getByRole('table', { name: 'Statements that apply now' });
      await statements.waitFor();
      expect(await statements.getByRole('row').count()).toBeGreaterThan(1);
      await page.getByRole('region', { name: 'Audit trail' }).getByText('device.added').first().waitFor();

      // Quarantine (Escape cancels once), then release; the platform agrees each time.
      await page.getByRole('button', { name: 'Quarantine', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Quarantine pump-1?' });
      await dialog.waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      expect((await s.platform.access.describeAccess('pump-1')).quarantined).toBe(false);
      await page.getByRole('button', { name: 'Quarantine', exact: true }).click();
      await page.getByRole('button', { name: 'Quarantine pump-1', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'pump-1 quarantined.' }).waitFor();
      expect((await s.platform.access.describeAccess('pump-1')).quarantined).toBe(true);
      await access.getByText(/^quarantined/).waitFor();
      await shot(page, 'device-quarantined');
      await page.getByRole('button', { name: 'Release', exact: true }).click();
      await page.getByRole('button', { name: 'Release pump-1', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'pump-1 released from quarantine.' }).waitFor();
      expect((await s.platform.access.describeAccess('pump-1')).quarantined).toBe(false);
      await page.getByRole('button', { name: 'Quarantine', exact: true }).waitFor();
      for (const name of ['Mark lost', 'Decommission', 'Revoke'])
        await page.getByRole('button', { name, exact: true }).waitFor();

      // Policies: zones and conduits, and a simulated decision naming its deciding statement.
      await nav(page, 'Policies').click();
      await page.getByRole('heading', { name: 'Policies and zones', level: 1 }).waitFor();
      const zones = page.getByRole('table', { name: 'Zones (IEC 62443-3-2)' });
      expect(await zones.getByRole('row').filter({ hasText: 'plant' }).textContent()).toMatch(/SL 2.*3$/);
      await page.getByRole('table', { name: 'Conduits' }).getByText('plant → office').waitFor();
      await page.getByLabel('Device id').fill('pump-3');
      await page.getByLabel('Action').selectOption('publish');
      await page.getByLabel('Topic').fill('devices/pump-3/telemetry');
      await page.getByRole('button', { name: 'Simulate' }).click();
      const decision = page.getByRole('status', { name: 'Decision' });
      await decision.getByText('allowed', { exact: true }).waitFor();
      const expected = await s.platform.access.simulate({
        deviceId: 'pump-3',
        action: 'publish',
        topic: 'devices/pump-3/telemetry',
      });
      expect(expected.statement).toBeTruthy();
      await decision.getByText(`${expected.policy}/${expected.statement}`).waitFor();
      await shot(page, 'policies');

      // Users and tokens: the secret is shown once; revoking it is confirmed; the platform agrees.
      await nav(page, 'Users').click();
      await page.getByRole('heading', { name: 'Users and tokens', level: 1 }).waitFor();
      const users = page.getByRole('table', { name: 'Users' });
      await users.getByRole('row').filter({ hasText: 'otto' }).getByText('auditor').waitFor();
      await users.getByRole('row').filter({ hasText: 'ada' }).getByText(/^TOTP/).waitFor();
      await page.getByLabel('Token name').fill('ci-reader');
      await page.getByLabel('Token role').selectOption('auditor');
      await page.getByRole('button', { name: 'Create token' }).click();
      const secret = (await page.getByLabel('New token: secret').textContent()) ?? '';
      expect(secret.length).toBeGreaterThan(20);
      const tokenRow = page.getByRole('row').filter({ hasText: 'ci-reader' });
      await tokenRow.getByText('active').waitFor();
      const withToken = await s.server.app.inject({
        url: '/api/v1/audit?limit=1',
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(withToken.statusCode).toBe(200);
      await page.getByRole('button', { name: 'Done' }).click();
      expect(await page.getByText(secret).count()).toBe(0); // shown once
      await tokenRow.getByRole('button', { name: 'Revoke token ci-reader' }).click();
      await page.getByRole('button', { name: 'Revoke ci-reader', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'Token ci-reader revoked.' }).waitFor();
      await tokenRow.getByText('revoked').waitFor();
      const afterRevoke = await s.server.app.inject({
        url: '/api/v1/audit?limit=1',
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(afterRevoke.statusCode).toBe(401);
      await shot(page, 'users');

      // Users: add one (its one-time setup secret works once), change its role and disable it, reset it.
      await page.getByLabel('Username').fill('eve');
      await page.getByLabel('Role of the new user').selectOption('viewer');
      await page.getByLabel('Device groups (comma-separated; empty: all)').fill('pumps');
      await page.getByRole('button', { name: 'Add user' }).click();
      const setupSecret = (await page.getByLabel('Setup secret: secret').textContent()) ?? '';
      const eve = await s.platform.users.get('eve');
      expect([eve?.role, eve?.groups, eve?.setupPending]).toEqual(['viewer', ['pumps'], true]);
      await page.getByRole('button', { name: 'Done' }).click();
      await users.getByRole('button', { name: 'Edit eve' }).click();
      const edit = page.getByRole('form', { name: 'Edit eve' });
      await edit.getByLabel('Role', { exact: true }).selectOption('auditor');
      await edit.getByLabel('Account disabled').check();
      await edit.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('status').filter({ hasText: 'eve updated' }).waitFor();
      const edited = await s.platform.users.get('eve');
      expect([edited?.role, edited?.disabled]).toEqual(['auditor', true]);
      await users.getByRole('row').filter({ hasText: 'eve' }).getByText('disabled').waitFor();
      await users.getByRole('button', { name: 'Reset eve' }).click();
      await page.getByRole('button', { name: 'Reset eve', exact: true }).last().click();
      const newSecret = (await page.getByLabel('Setup secret: secret').textContent()) ?? '';
      expect(newSecret).not.toBe(setupSecret);
      expect(newSecret.length).toBeGreaterThan(20);
      await page.getByRole('button', { name: 'Done' }).click();

      // Alerts: a tamper report (as the attestation module records a verified one) becomes a detector alert,
      // which the open page shows within seconds: it follows the alert stream (the 15 s refresh is only its fallback).
      await nav(page, 'Alerts').click();
      await page.getByRole('heading', { name: 'Alerts', level: 1 }).waitFor();
      await page.getByText('No alerts here. All quiet.').waitFor();
      await s.platform.events.emit({
        type: 'device.tamper_reported',
        actor: 'device:pump-2',
        subject: 'device:pump-2',
        data: { reason: 'enclosure-opened', source: 'tamper', reportedAt: Date.now(), seq: 1, keyId: '0a1b' },
      });
      await page
        .getByRole('row')
        .filter({ hasText: 'pump-2 reported tampering: enclosure-opened' })
        .getByText('tamper_report')
        .waitFor({ timeout: 8_000 });
      const [alert] = await s.platform.monitor.alerts.list({ detector: 'tamper_report', deviceId: 'pump-2' });
      expect(alert?.status).toBe('open');
      await shot(page, 'alerts-detector');

      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('shows an auditor the device, policies and users pages without any control to change them', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/devices/pump-3`, {
        as: people.auditor,
      });
      await page.getByRole('heading', { name: 'pump-3', level: 1 }).waitFor();
      await page.getByRole('region', { name: 'Effective access now' }).getByRole('table').waitFor();
      await page.getByRole('region', { name: 'Attestation' }).getByText('Standing').waitFor();
      await page.getByRole('region', { name: 'Audit trail' }).getByText('device.added').first().waitFor();
      for (const name of ['Quarantine', 'Release', 'Mark lost', 'Decommission', 'Revoke'])
        expect(await page.getByRole('button', { name, exact: true }).count()).toBe(0);
      await shot(page, 'auditor-device');

      await nav(page, 'Policies').click();
      await page.getByText('Read-only: your role does not change policies.').waitFor();
      await nav(page, 'Users').click();
      await page.getByRole('table', { name: 'Users' }).getByText('ada', { exact: true }).waitFor();
      // An auditor reads users but changes none: no add, edit or reset control.
      expect(await page.getByRole('button', { name: 'Add user' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: /^(Edit|Reset) / }).count()).toBe(0);
      expect(watch.problems).toEqual([]);
      await context.close();
    });

    it('offers a viewer neither Policies nor Users, and a device page without actions', async () => {
      const { context, watch, page } = await signedInPage(browser, `${s.httpsUrl}/users`, {
        as: people.viewer,
      });
      await notOfferedToViewer(page, ['Policies', 'Users']);
      await nav(page, 'Devices').click();
      await page.getByRole('link', { name: 'pump-3', exact: true }).click();
      await page.getByRole('heading', { name: 'pump-3', level: 1 }).waitFor();
      await page.getByRole('region', { name: 'Effective access now' }).getByRole('table').waitFor();
      expect(await page.getByRole('region', { name: 'Audit trail' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Quarantine', exact: true }).count()).toBe(0);
      expect(watch.problems).toEqual([]);
      await context.close();
    });
  },
);
