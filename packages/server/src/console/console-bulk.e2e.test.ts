import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHROMIUM,
  haveChromium,
  launchChromium,
  nav,
  screenshots,
  signInAs,
  signedInPage,
  type SignIn,
  type Watch,
} from './browser.fixture.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';

const line = Array.from({ length: 12 }, (_, i) => `line-${String(i + 1).padStart(2, '0')}`);
const spares = ['spare-1', 'spare-2', 'spare-3'];

/**
 * Dual control in Debian's Chromium against the real server: admin ada selects 12 devices (the baseline's
 * threshold is 10) and quarantines them in bulk; the request waits, ada has no control to approve it (and the
 * service refuses her), admin bob approves it from his own browser and all 12 are quarantined; the audit log has
 * the request, the approval and the execution. The three devices of a zone are quarantined at once,
 * without approval.
 */
describe.skipIf(!haveChromium)(
  `bulk device actions with a second person's approval in Debian's chromium (${haveChromium ? CHROMIUM : 'skipped'})`,
  { timeout: 240_000 },
  () => {
    let s: TestServer;
    let browser: Browser;
    const admins: Record<string, SignIn> = {};
    const shot = screenshots(process.env.BULWARK_ARTIFACTS);

    beforeAll(async () => {
      s = await startTestServer();
      for (const username of ['ada', 'bob']) admins[username] = await signInAs(s, 'admin', username);
      for (const id of line) await s.platform.devices.add({ id, group: 'line' }, 'test');
      for (const id of spares) await s.platform.devices.add({ id, group: 'spares' }, 'test');
      await s.platform.access.putZone(
        { name: 'spare-room', securityLevel: 1, members: { groups: ['spares'] } },
        'test',
      );
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await s?.stop();
    });

    async function signedIn(username: string, path: string): Promise<{ page: Page; watch: Watch }> {
      const who = admins[username];
      if (!who) throw new Error(`no admin ${username}`);
      const { watch, page } = await signedInPage(browser, `${s.httpsUrl}${path}`, { as: who });
      return { page, watch };
    }

    const quarantined = async (ids: readonly string[]) =>
      Promise.all(ids.map(async (id) => (await s.platform.access.describeAccess(id)).quarantined));

    it('holds a bulk quarantine of 12 for a second person, runs one of 3 at once', async () => {
      const ada = await signedIn('ada', '/devices');
      const page = ada.page;
      await expect
        .poll(() => page.getByRole('navigation', { name: 'Devices pages' }).textContent())
        .toContain('1–15 of 15');

      // A saved filter: the line's devices, saved, cleared, applied again.
      await page.getByLabel('Group', { exact: true }).selectOption('line');
      await page.getByLabel('Save current as').fill('production line');
      await page.getByRole('button', { name: 'Save filter' }).click();
      await page.getByLabel('Group', { exact: true }).selectOption('');
      await expect.poll(() => page.getByRole('checkbox', { name: /^Select (line|spare)/ }).count()).toBe(15);
      await page.getByLabel('Saved filter', { exact: true }).selectOption('production line');
      await page.getByRole('button', { name: 'Apply' }).click();
      await expect.poll(() => page.getByRole('checkbox', { name: /^Select (line|spare)/ }).count()).toBe(12);

      await page.getByRole('checkbox', { name: 'Select all devices on this page' }).check();
      const bar = page.getByRole('region', { name: 'Bulk actions' });
      await bar.getByText('12 selected').waitFor();
      await bar.getByRole('button', { name: 'Quarantine selected' }).click();
      const dialog = page.getByRole('dialog', { name: 'Quarantine 12 devices?' });
      await dialog.getByText(line.join(', ')).waitFor();
      await dialog.getByLabel('Reason (recorded in the audit log)').fill('line incident 42');
      await shot(page, 'bulk-confirm');
      await dialog.getByRole('button', { name: 'Quarantine 12 devices' }).click();
      await page.getByText(/Quarantine of 12 devices awaits a second person's approval/).waitFor();
      expect(await quarantined(line)).toEqual(line.map(() => false));

      const [pending] = await s.platform.operations.list(
        { status: 'pending', limit: 10 },
        { role: 'admin', groups: null },
      );
      expect(pending).toMatchObject({ count: 12, requestedBy: 'user:ada', reason: 'line incident 42' });
      const id = pending?.id ?? '';

      // Her own request: she may withdraw it, never approve it; the service refuses her anyway.
      await nav(page, 'Approvals').click();
      const own = page.getByRole('region', { name: 'Quarantine 12 devices, requested by ada' });
      await own.getByText('Your request: another person must approve it.').waitFor();
      expect(await own.getByRole('button', { name: 'Approve' }).count()).toBe(0);
      expect(await own.getByRole('button', { name: 'Withdraw' }).count()).toBe(1);
      await shot(page, 'approvals-own');
      await expect(
        s.platform.operations.approve(id, { actor: 'user:ada', scope: { role: 'admin', groups: null } }),
      ).rejects.toMatchObject({ code: 'forbidden' });

      // Bob, in a browser of his own, approves it: it runs.
      const bob = await signedIn('bob', '/approvals');
      const request = bob.page.getByRole('region', { name: 'Quarantine 12 devices, requested by ada' });
      await request.getByText(line.join(', ')).waitFor();
      await request.getByRole('button', { name: 'Approve' }).click();
      const approve = bob.page.getByRole('dialog', { name: 'Approve: quarantine of 12 devices?' });
      await approve.getByLabel('Note (recorded in the audit log)').fill('confirmed by phone');
      await approve.getByRole('button', { name: 'Approve and quarantine 12 devices' }).click();
      await bob.page.getByText('Quarantine of 12 devices ran: 12 done, 0 unchanged, 0 failed.').waitFor();
      await bob.page.getByText('Nothing waits for approval.').waitFor();
      await shot(bob.page, 'approvals-approved');
      expect(await quarantined(line)).toEqual(line.map(() => true));

      await s.platform.events.flush();
      const trail = await s.platform.audit.query({ subject: `operation:${id}`, limit: 10 });
      expect(trail.map((e) => [e.type, e.actor])).toEqual([
        ['operations.requested', 'user:ada'],
        ['operations.approved', 'user:bob'],
        ['operations.executed', 'user:bob'],
      ]);
      expect(trail[2]?.data).toMatchObject({ count: 12, ok: 12, failed: 0 });

      // Three devices are below the threshold: quarantining their zone runs at once.
      await nav(page, 'Devices').click();
      await page.getByLabel('Zone to quarantine').selectOption('spare-room');
      await page.getByRole('button', { name: 'Quarantine zone' }).click();
      const zone = page.getByRole('dialog', { name: 'Quarantine zone spare-room (3 devices)?' });
      await zone.getByText(spares.join(', ')).waitFor();
      await zone.getByRole('button', { name: 'Quarantine 3 devices' }).click();
      await page.getByText('Quarantine of 3 devices ran: 3 done, 0 unchanged, 0 failed.').waitFor();
      expect(await quarantined(spares)).toEqual([true, true, true]);
      await shot(page, 'bulk-ran');

      expect(ada.watch.problems).toEqual([]);
      expect(bob.watch.problems).toEqual([]);
    });
  },
);
