import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entriesOf } from '../events/index.ts';
import { testDialects } from '../test-support/dialects.ts';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';

for (const dialect of testDialects) {
  describe(`requests and exports disclose no one else (${dialect})`, () => {
    let p: PrivacyTestContext;
    beforeEach(async () => {
      p = await createPrivacyTestContext(dialect);
      p.held.users.set('user:alice', [{ record: 'account', username: 'alice' }]);
      await p.privacy.addSubject({ id: 'u-17', users: ['alice'] }, 'user:dpo');
      await p.privacy.addSubject({ id: 'u-18' }, 'user:dpo');
    });
    afterEach(async () => {
      await p.close();
    });

    it('exports entries about the subject in full, and what its user did to others as when and what only', async () => {
      await p.bus.emit({
        type: 'user.updated',
        actor: 'user:admin',
        subject: 'user:alice',
        data: { changes: { role: 'viewer' } },
      });
      await p.bus.emit({
        type: 'user.updated',
        actor: 'user:alice',
        subject: 'user:bob',
        data: { changes: { role: 'operator' } },
      });
      await p.bus.emit({
        type: 'device.updated',
        actor: 'user:alice',
        subject: 'device:pump-9',
        data: { changes: { group: 'lab' } },
      });
      await p.bus.emit({
        type: 'user.updated',
        actor: 'user:alice',
        subject: 'user:alice',
        data: { changes: { role: 'admin' } },
      });
      const exported = await p.privacy.exportSubject('u-17');
      const text = JSON.stringify(exported);
      expect(text).not.toContain('bob');
      expect(text).not.toContain('pump-9');
      expect(text).not.toContain('operator');
      expect(exported.audit.map((e) => [e.type, e.subject])).toEqual([
        ['privacy.subject_added', 'person:u-17'],
        ['user.updated', 'user:alice'],
        ['user.updated', 'user:alice'],
      ]);
      expect(exported.authored).toEqual([
        {
          seq: expect.any(Number) as number,
          ts: expect.any(Number) as number,
          type: 'user.updated',
          subjectKind: 'user',
        },
        {
          seq: expect.any(Number) as number,
          ts: expect.any(Number) as number,
          type: 'device.updated',
          subjectKind: 'device',
        },
      ]);
      expect(Object.keys(exported.authored[0] ?? {}).sort()).toEqual(['seq', 'subjectKind', 'ts', 'type']);
      const { request } = await p.privacy.createRequest({ subject: 'u-17', kind: 'access' }, 'user:dpo');
      expect(request.result).toMatchObject({ audit: 3, authored: 2 });
    });

    it("clears the erased subject's request notes, keeps others', and never puts a note in an event", async () => {
      const held = await p.privacy.createRequest(
        { subject: 'u-17', kind: 'rectification', note: 'Alice Example alice@example.com for u-17' },
        'user:dpo',
      );
      const other = await p.privacy.createRequest(
        { subject: 'u-18', kind: 'rectification', note: 'Bob Other bob@example.com' },
        'user:dpo',
      );
      const erasure = await p.privacy.createRequest(
        { subject: 'u-17', kind: 'erasure', hold: true, note: 'asked by Alice Example by mail' },
        'user:dpo',
      );
      await p.privacy.runRequest(erasure.request.id, 'user:dpo');
      expect(await p.privacy.getRequest(held.request.id)).toMatchObject({ subject: null, note: null });
      expect(await p.privacy.getRequest(erasure.request.id)).toMatchObject({
        status: 'completed',
        subject: null,
        note: null,
      });
      expect(await p.privacy.getRequest(other.request.id)).toMatchObject({
        note: 'Bob Other bob@example.com',
      });
      const done = await p.privacy.completeRequest(
        other.request.id,
        { status: 'completed', note: 'Bob Other: address corrected' },
        'user:dpo',
      );
      expect(done.note).toBe('Bob Other: address corrected');
      const completed = entriesOf(await p.log.readAfter(0, 10_000), 'privacy.request_completed');
      expect(completed.map((e) => e.data.status)).toEqual(['completed', 'completed']);
      expect(JSON.stringify(completed)).not.toMatch(/Alice|Bob|note/);
      const rows = await p.t.store.db.selectFrom('privacy_requests').select('note').execute();
      expect(JSON.stringify(rows)).not.toContain('Alice');
    });
  });
}
