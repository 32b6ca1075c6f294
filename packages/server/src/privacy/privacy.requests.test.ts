import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { entriesOf, type AuditEntry } from '../events/index.ts';
import { testDialects } from '../test-support/dialects.ts';
import {
  createPrivacyTestContext,
  type PrivacyTestContext,
  type StoredMessage,
} from '../test-support/privacy-context.ts';
import { decryptValue, encryptValue } from './keys.ts';

const DAY = 86_400_000;

for (const dialect of testDialects) {
  describe(`data-subject requests on ${dialect}`, () => {
    let p: PrivacyTestContext;
    const store = (m: StoredMessage) => p.keep(m);

    const all = () => p.log.readAfter(0, 10_000);
    const mentions = (entries: readonly AuditEntry[], text: string) =>
      entries.filter((e) => JSON.stringify([e.actor, e.subject, e.data]).includes(text));

    beforeEach(async () => {
      p = await createPrivacyTestContext(dialect);
      p.held.users.set('user:alice', [{ record: 'account', username: 'alice' }]);
      p.held.devices.set('device:pump-1', [{ record: 'device', id: 'pump-1' }]);
      await p.privacy.addSubject({ id: 'u-17', devices: ['pump-1'], users: ['alice'] }, 'user:dpo');
      await p.privacy.setConsent(
        'u-17',
        { purpose: 'analytics.reporting', noticeVersion: 'v1', status: 'given' },
        'user:dpo',
      );
      await p.bus.emit({
        type: 'user.updated',
        actor: 'user:admin',
        subject: 'user:alice',
        data: { changes: { role: 'viewer' } },
      });
      await store({ subject: 'u-17', payload: { temp: 21.5 } });
      await store({ subject: 'u-18', device: 'pump-2', payload: { temp: 19 } });
    });
    afterEach(async () => {
      await p.close();
    });

    it('answers an access request with every module and the audit entries naming them; counts only in events', async () => {
      const { request, export: exported } = await p.privacy.createRequest(
        { subject: 'u-17', kind: 'access' },
        'user:dpo',
      );
      expect(request).toMatchObject({
        id: expect.stringMatching(/^pr_[0-9a-f]{20}$/) as string,
        subject: 'u-17',
        kind: 'access',
        status: 'completed',
        receivedAt: p.clock.now,
        dueAt: p.clock.now + 30 * DAY,
        completedAt: p.clock.now,
        createdBy: 'user:dpo',
      });
      expect(exported?.subject).toBe('u-17');
      const modules = exported?.modules ?? {};
      expect(Object.keys(modules).sort()).toEqual(['devices', 'privacy', 'telemetry', 'users']);
      expect(modules.telemetry).toEqual([
        expect.objectContaining({ record: 'telemetry_message', deviceId: 'pump-1', payload: { temp: 21.5 } }),
      ]);
      expect(modules.users).toEqual([{ record: 'account', username: 'alice' }]);
      expect(modules.devices).toEqual([{ record: 'device', id: 'pump-1' }]);
      expect(modules.privacy?.map((r) => r.record)).toEqual(['subject', 'consent', 'request']);
      expect(modules.privacy?.[0]).toMatchObject({ id: 'u-17', devices: ['pump-1'], users: ['alice'] });
      const audit = exported?.audit ?? [];
      expect(audit.map((e) => e.type)).toEqual(
        expect.arrayContaining(['privacy.subject_added', 'privacy.consent_given', 'user.updated']),
      );
      expect(audit.every((e) => JSON.stringify(e).match(/u-17|alice/))).toBe(true);
      expect(request.result).toEqual({
        telemetry: 1,
        devices: 1,
        users: 1,
        privacy: 3,
        audit: audit.length,
      });
      const entries = await all();
      const [received] = entriesOf(entries, 'privacy.request_received');
      const [completed] = entriesOf(entries, 'privacy.request_completed');
      expect(received).toMatchObject({ subject: `request:${request.id}`, actor: 'user:dpo' });
      expect(completed).toMatchObject({
        subject: `request:${request.id}`,
        data: { requestId: request.id, kind: 'access', status: 'completed', counts: request.result },
      });
      expect(
        mentions(
          [received, completed].filter((e) => e !== undefined),
          'u-17',
        ),
      ).toEqual([]);
    });

    it('exports an unknown subject as empty modules, not an error', async () => {
      const exported = await p.privacy.exportSubject('nobody-42');
      expect(exported.modules).toEqual({ telemetry: [], devices: [], users: [], privacy: [] });
      expect(exported.audit).toEqual([]);
    });

    it('erases a subject: data, key, links, audit values; the chain verifies and the receipt names counts only', async () => {
      const key = await p.privacy.keys.loadSubjectKey('person:u-17');
      const token = encryptValue(key, 72, { schema: 'room-sensor', path: 'hr' });
      const { request } = await p.privacy.createRequest({ subject: 'u-17', kind: 'erasure' }, 'user:dpo');
      expect(request).toMatchObject({ status: 'completed', subject: null });
      expect(request.result).toEqual({
        telemetry: 1,
        users: 1,
        devicesUnlinked: 1,
        keys: 1,
        privacy: 4,
        audit: expect.any(Number) as number,
      });
      expect(request.result?.audit).toBeGreaterThan(0);
      // Everything of the subject is gone; the other subject's message stays.
      const exported = await p.privacy.exportSubject('u-17');
      expect(exported.modules).toEqual({ telemetry: [], devices: [], users: [], privacy: [] });
      expect(exported.audit).toEqual([]);
      expect(await p.privacy.exportSubject('u-18')).toMatchObject({
        modules: { telemetry: [expect.objectContaining({ deviceId: 'pump-2', payload: { temp: 19 } })] },
      });
      // The linked device keeps its records (unlinked, not erased); the user account was erased.
      expect(p.held.devices.get('device:pump-1')).toHaveLength(1);
      expect(p.held.users.has('user:alice')).toBe(false);
      // Crypto-shredding: what was encrypted under the subject's key is unreadable everywhere.
      expect(await p.privacy.keys.keyById(key.id)).toBeUndefined();
      expect(decryptValue(token, () => undefined, { schema: 'room-sensor', path: 'hr' })).toMatchObject({
        ok: false,
      });
      // The log: no value of the person or their user is left, the chain verifies, the receipt is there.
      const left = await p.t.store.db
        .selectFrom('audit_personal')
        .select('owner')
        .where('owner', 'in', ['person:u-17', 'user:alice'])
        .execute();
      expect(left).toEqual([]);
      expect((await p.log.verify()).ok).toBe(true);
      const entries = await all();
      expect(mentions(entries, 'u-17')).toEqual([]);
      // Nor of the linked user: actors, subjects and the user names in privacy.subject_added's data (sealed
      // under the person) all read erased; no stored row holds the name either.
      expect(mentions(entries, 'alice')).toEqual([]);
      const rows = await p.t.store.db.selectFrom('audit_log').select(['actor', 'subject', 'data']).execute();
      expect(rows.filter((r) => JSON.stringify(r).includes('alice'))).toEqual([]);
      expect(entriesOf(entries, 'privacy.subject_added')[0]?.data).toMatchObject({ users: '[erased]' });
      const receipt = entriesOf(entries, 'privacy.request_completed').at(-1);
      expect(receipt).toMatchObject({
        subject: `request:${request.id}`,
        data: { kind: 'erasure', status: 'completed', counts: request.result },
      });
      const erased = entriesOf(entries, 'privacy.subject_updated').at(-1);
      expect(erased?.data.changes).toMatchObject({ erased: true, devicesUnlinked: 1, usersErased: 1 });
      // The live view forgets the subject (no consent left to deliver on).
      expect(p.privacy.live.consent('u-17', 'analytics.reporting')).toBeUndefined();
      await expect(p.privacy.getSubject('u-17')).rejects.toMatchObject({ code: 'not_found' });
    });

    it('restricts a subject (Art. 18) and completes the request', async () => {
      const { request } = await p.privacy.createRequest({ subject: 'u-17', kind: 'restriction' }, 'user:dpo');
      expect(request).toMatchObject({ status: 'completed', result: { restricted: 1 } });
      expect((await p.privacy.getSubject('u-17')).restrictedAt).toBe(p.clock.now);
      expect(p.privacy.live.restricted('u-17')).toBe(true);
      const updated = entriesOf(await all(), 'privacy.subject_updated').at(-1);
      expect(updated).toMatchObject({ subject: 'person:u-17', data: { changes: { restricted: true } } });
      // A subject known only from its data is registered, restricted.
      await p.privacy.createRequest({ subject: 'u-18', kind: 'restriction' }, 'user:dpo');
      expect((await p.privacy.getSubject('u-18')).restrictedAt).toBe(p.clock.now);
    });

    it('keeps a rectification open until the operator completes it; holds and runs a request later', async () => {
      const { request } = await p.privacy.createRequest(
        { subject: 'u-17', kind: 'rectification', note: 'wrong birth year' },
        'user:dpo',
      );
      expect(request).toMatchObject({ status: 'open', note: 'wrong birth year' });
      await expect(p.privacy.runRequest(request.id, 'user:dpo')).rejects.toMatchObject({ code: 'conflict' });
      await expect(
        p.privacy.completeRequest(request.id, { status: 'completed', note: ' ' }, 'user:dpo'),
      ).rejects.toThrow(BulwarkError);
      const done = await p.privacy.completeRequest(
        request.id,
        { status: 'completed', note: 'corrected in the CRM' },
        'user:dpo',
      );
      expect(done).toMatchObject({ status: 'completed', note: 'corrected in the CRM', result: {} });
      await expect(
        p.privacy.completeRequest(request.id, { status: 'rejected', note: 'again' }, 'user:dpo'),
      ).rejects.toMatchObject({ code: 'conflict' });

      const held = await p.privacy.createRequest({ subject: 'u-17', kind: 'access', hold: true }, 'user:dpo');
      expect(held.request.status).toBe('open');
      expect(held.export).toBeUndefined();
      const ran = await p.privacy.runRequest(held.request.id, 'user:dpo');
      expect(ran.request.status).toBe('completed');
      expect(ran.export?.modules.telemetry).toHaveLength(1);
      expect((await p.privacy.listRequests({ status: 'open' })).length).toBe(0);
      expect((await p.privacy.listRequests()).length).toBe(2);
      await expect(p.privacy.getRequest('pr_nope')).rejects.toMatchObject({ code: 'not_found' });
      await expect(
        p.privacy.createRequest({ subject: 'bad id', kind: 'access' }, 'user:dpo'),
      ).rejects.toMatchObject({ code: 'validation_failed' });
    });

    it('marks open requests overdue once, past their deadline', async () => {
      const { request } = await p.privacy.createRequest(
        { subject: 'u-17', kind: 'erasure', hold: true },
        'user:dpo',
      );
      expect(await p.privacy.checkOverdue(p.clock.now + 30 * DAY)).toBe(0);
      expect(await p.privacy.checkOverdue(p.clock.now + 30 * DAY + 1)).toBe(1);
      expect(await p.privacy.checkOverdue(p.clock.now + 31 * DAY)).toBe(0);
      expect(await p.privacy.getRequest(request.id)).toMatchObject({
        status: 'open',
        overdueAt: p.clock.now + 30 * DAY + 1,
      });
      const [overdue] = entriesOf(await all(), 'privacy.request_overdue');
      expect(overdue).toMatchObject({
        actor: 'system',
        subject: `request:${request.id}`,
        data: { requestId: request.id, kind: 'erasure', dueAt: p.clock.now + 30 * DAY },
      });
    });
  });
}
