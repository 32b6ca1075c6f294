import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createWaivers, type WaiverInput, type Waivers } from './waivers.ts';

const DAY = 86_400_000;
const box = createSecretBox(randomBytes(32));
/** Users allowed to approve (holding compliance:approve, enabled). */
const approvers = new Set(['olga', 'ada']);

async function refusal(work: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await work;
  } catch (err) {
    if (err instanceof BulwarkError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

for (const dialect of testDialects) {
  describe(`compliance waivers on ${dialect}`, () => {
    let t: TestStore;
    let audit: AuditLog;
    let bus: EventBus;
    let clock: number;
    let waivers: Waivers;

    const input = (over: Partial<WaiverInput> = {}): WaiverInput => ({
      check: 'devices.not-seen',
      reason: 'Pumps in the cellar are offline until the site reopens in March.',
      approver: 'olga',
      expiresAt: clock + 30 * DAY,
      ...over,
    });

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 1000 * DAY;
      audit = createAuditLog({
        db: t.store.db,
        mac: box,
        now: () => clock,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await audit.ensureAnchor();
      bus = createEventBus({ log: audit, db: t.store.db });
      waivers = createWaivers({
        db: t.store.db,
        events: bus,
        now: () => clock,
        approvers: { canApprove: (name) => Promise.resolve(approvers.has(name)) },
      });
    });
    afterEach(async () => {
      await bus.close();
      await t.cleanup();
    });

    it('asks for a waiver with its event, in force once approved until it expires, revokes it', async () => {
      const granted = await waivers.grant(input(), 'user:ada');
      expect(granted).toEqual({
        id: granted.id,
        check: 'devices.not-seen',
        reason: 'Pumps in the cellar are offline until the site reopens in March.',
        approver: 'olga',
        status: 'pending',
        approvedAt: null,
        approvedBy: null,
        expiresAt: clock + 30 * DAY,
        createdAt: clock,
        createdBy: 'user:ada',
        revokedAt: null,
      });
      const event = (await audit.readAfter(0)).find((e) => e.type === 'compliance.waiver_granted');
      expect(event).toMatchObject({ actor: 'user:ada', subject: `waiver:${granted.id}` });
      if (event?.type === 'compliance.waiver_granted')
        expect(event.data).toEqual({
          waiverId: granted.id,
          check: 'devices.not-seen',
          reason: granted.reason,
          approver: 'olga',
          expiresAt: granted.expiresAt,
        });
      // The CLI may ask (its actor is no user); the approver it names approves.
      clock += 1000;
      const second = await waivers.grant(input({ check: 'accounts.dormant', approver: 'ada' }), 'cli');
      expect((await waivers.list()).map((w) => w.check)).toEqual(['accounts.dormant', 'devices.not-seen']);
      expect(await waivers.inForce(clock)).toEqual([]);
      await waivers.approve(granted.id, 'user:olga');
      await waivers.approve(second.id, 'user:ada/token:t-9');
      expect(await waivers.inForce(clock + 29 * DAY)).toHaveLength(2);
      expect(await waivers.inForce(granted.expiresAt)).toHaveLength(1);
      expect(await waivers.inForce(clock + 30 * DAY)).toHaveLength(0);

      const revoked = await waivers.revoke(second.id, 'the accounts were removed', 'user:olga');
      expect(revoked).toMatchObject({ id: second.id, revokedAt: clock });
      expect((await waivers.list()).map((w) => w.id)).toEqual([granted.id]);
      expect(await waivers.list({ includeRevoked: true })).toHaveLength(2);
      const revokedEvent = (await audit.readAfter(0)).find((e) => e.type === 'compliance.waiver_revoked');
      if (revokedEvent?.type !== 'compliance.waiver_revoked') throw new Error('no waiver_revoked event');
      expect(revokedEvent.data).toEqual({
        waiverId: second.id,
        check: 'accounts.dormant',
        reason: 'the accounts were removed',
      });
      expect(await refusal(waivers.revoke(second.id, 'again', 'cli'))).toMatchObject({ code: 'conflict' });
      expect(await refusal(waivers.revoke('missing', 'gone', 'cli'))).toMatchObject({ code: 'not_found' });
    });

    it('refuses every rule broken, naming it, and stores nothing', async () => {
      const cases: [Partial<WaiverInput>, string, RegExp][] = [
        [{ check: 'pki.nothing' }, 'user:ada', /^check: no automated check "pki.nothing"/],
        [{ reason: 'too short' }, 'user:ada', /^reason: at least 10 characters/],
        [{ reason: 'r'.repeat(2001) }, 'user:ada', /^reason: at most 2000/],
        [{ expiresAt: clock }, 'user:ada', /^expiresAt: must be in the future/],
        [{ expiresAt: clock + 366 * DAY }, 'user:ada', /^expiresAt: at most 365 days/],
        [{ approver: ' ' }, 'user:ada', /^approver: required/],
        [{ approver: 'olga' }, 'user:olga', /^approver: another user must approve/],
        [{ approver: 'olga' }, 'user:olga/token:t-1', /^approver: another user must approve/],
        [{ approver: 'mallory' }, 'user:ada', /^approver: mallory is not an enabled user allowed to approve/],
      ];
      for (const [over, actor, message] of cases) {
        const r = await refusal(waivers.grant(input(over), actor));
        expect(r.code).toBe('validation_failed');
        expect(r.message).toMatch(message);
      }
      expect(await t.store.db.selectFrom('compliance_waivers').select('id').execute()).toEqual([]);
      expect((await audit.readAfter(0)).map((e) => e.type)).not.toContain('compliance.waiver_granted');
      // Exactly a year is allowed.
      await waivers.grant(input({ expiresAt: clock + 365 * DAY }), 'user:ada');
      expect(await waivers.list()).toHaveLength(1);
    });

    it('counts the 365 days in whole UTC days: a date-only expiry a year ahead is allowed at any hour', async () => {
      clock += 23 * 3_600_000; // late in the day: the end of the same date next year is 365 days and 1 h away
      const endOfDay = (days: number) => Math.floor(clock / DAY) * DAY + days * DAY + DAY - 1;
      await waivers.grant(input({ expiresAt: endOfDay(365) }), 'user:ada');
      expect(await refusal(waivers.grant(input({ expiresAt: endOfDay(366) }), 'user:ada'))).toMatchObject({
        message: expect.stringMatching(/^expiresAt: at most 365 days/) as unknown,
      });
    });

    describe('four eyes', () => {
      const approvalEvents = async () =>
        (await audit.readAfter(0)).filter((e) => e.type === 'compliance.waiver_approved');

      it('is pending until the named approver approves it, then in force, with its event', async () => {
        const asked = await waivers.grant(input(), 'user:ada');
        expect(asked).toMatchObject({ status: 'pending', approvedAt: null });
        expect(await waivers.inForce(clock)).toEqual([]);
        clock += 1000;
        const approved = await waivers.approve(asked.id, 'user:olga');
        expect(approved).toMatchObject({ status: 'approved', approvedAt: clock, approvedBy: 'user:olga' });
        expect((await waivers.inForce(clock)).map((w) => w.id)).toEqual([asked.id]);
        expect((await waivers.list())[0]).toMatchObject({ status: 'approved', approvedAt: clock });
        const [event] = await approvalEvents();
        expect(event).toMatchObject({ actor: 'user:olga', subject: `waiver:${asked.id}` });
        if (event?.type !== 'compliance.waiver_approved') throw new Error('no waiver_approved event');
        expect(event.data).toEqual({ waiverId: asked.id, check: 'devices.not-seen', approver: 'olga' });
        expect(await refusal(waivers.approve(asked.id, 'user:olga'))).toMatchObject({ code: 'conflict' });
      });

      it('refuses the creator (session or token), another approver, the CLI and others; nothing changes', async () => {
        const asked = await waivers.grant(input(), 'user:ada/token:t-1');
        const refusals: [string, string, RegExp][] = [
          ['user:ada', 'forbidden', /names olga to approve it, not ada/],
          ['user:ada/token:t-2', 'forbidden', /names olga to approve it, not ada/],
          ['cli', 'forbidden', /only olga, signed in, approves/],
          ['system', 'forbidden', /only olga, signed in, approves/],
          ['app:olga', 'forbidden', /only olga, signed in, approves/],
        ];
        for (const [actor, code, message] of refusals) {
          const r = await refusal(waivers.approve(asked.id, actor));
          expect(r.code, actor).toBe(code);
          expect(r.message, actor).toMatch(message);
        }
        expect(await refusal(waivers.approve('missing', 'user:olga'))).toMatchObject({ code: 'not_found' });
        // A row naming its own creator as approver (the grant refuses it; the approval refuses it again).
        await t.store.db
          .updateTable('compliance_waivers')
          .set({ created_by: 'user:olga/token:t-3' })
          .where('id', '=', asked.id)
          .execute();
        expect(await refusal(waivers.approve(asked.id, 'user:olga'))).toMatchObject({
          code: 'forbidden',
          message: expect.stringMatching(/another user must approve/) as unknown,
        });
        expect(await waivers.inForce(clock)).toEqual([]);
        expect((await waivers.list())[0]?.status).toBe('pending');
        expect(await approvalEvents()).toEqual([]);
      });

      it('refuses to approve a revoked or expired waiver, or when the approver lost the right', async () => {
        const revoked = await waivers.grant(input(), 'user:ada');
        await waivers.revoke(revoked.id, 'no longer needed', 'user:ada');
        expect(await refusal(waivers.approve(revoked.id, 'user:olga'))).toMatchObject({ code: 'conflict' });
        const expiring = await waivers.grant(input({ expiresAt: clock + DAY }), 'user:ada');
        const lost = await waivers.grant(input({ check: 'accounts.dormant' }), 'user:ada');
        clock += DAY;
        expect(await refusal(waivers.approve(expiring.id, 'user:olga'))).toMatchObject({
          code: 'conflict',
          message: expect.stringMatching(/has expired/) as unknown,
        });
        approvers.delete('olga');
        try {
          expect(await refusal(waivers.approve(lost.id, 'user:olga'))).toMatchObject({ code: 'forbidden' });
        } finally {
          approvers.add('olga');
        }
        expect(await approvalEvents()).toEqual([]);
      });

      it('lapses when its approver may no longer approve (disabled, demoted, deleted)', async () => {
        const asked = await waivers.grant(input(), 'user:ada');
        await waivers.approve(asked.id, 'user:olga');
        expect(await waivers.inForce(clock)).toHaveLength(1);
        approvers.delete('olga');
        try {
          expect(await waivers.inForce(clock)).toEqual([]);
        } finally {
          approvers.add('olga');
        }
        expect(await waivers.inForce(clock)).toHaveLength(1);
      });
    });

    it('lists at most `limit`, newest first', async () => {
      for (const check of ['devices.not-seen', 'accounts.dormant', 'pki.ca-expiry']) {
        clock += 1000;
        await waivers.grant(input({ check }), 'user:ada');
      }
      expect((await waivers.list({ limit: 2 })).map((w) => w.check)).toEqual([
        'pki.ca-expiry',
        'accounts.dormant',
      ]);
      expect(await waivers.list()).toHaveLength(3);
    });
  });
}
