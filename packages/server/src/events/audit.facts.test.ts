import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import {
  auditChainFacts,
  createAuditLog,
  latestPerSubject,
  type AuditLog,
  type SecurityEvent,
} from './index.ts';

const signedIn = (user: string): SecurityEvent<'auth.sign_in_succeeded'> => ({
  type: 'auth.sign_in_succeeded',
  actor: `user:${user}`,
  subject: `user:${user}`,
  data: { address: '203.0.113.7', method: 'password', next: 'active' },
});

describe.each(testDialects)('audit-log compliance facts (%s)', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let clock = 1_000_000;
  beforeEach(async () => {
    t = await createTestStore(dialect);
    clock = 1_000_000;
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => clock,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
  });
  afterEach(async () => t.cleanup());

  it('states an intact chain, then where and why it broke', async () => {
    await audit.append([signedIn('alice'), signedIn('bob'), signedIn('carol')]);
    expect(await auditChainFacts(audit)).toEqual({ ok: true, entries: 3, brokenAt: null, reason: null });
    await t.store.db.updateTable('audit_log').set({ ts: 5 }).where('seq', '=', 2).execute();
    const broken = await auditChainFacts(audit);
    expect(broken).toMatchObject({ ok: false, brokenAt: 2 });
    expect(broken.reason).toMatch(/entry 2/);
  });

  it('finds the latest entry of a type per subject, in clear form, without erased subjects', async () => {
    await audit.append([signedIn('alice')]);
    clock += 1000;
    await audit.append([signedIn('bob')]);
    clock += 1000;
    await audit.append([
      signedIn('alice'),
      { type: 'device.added', actor: 'cli', subject: 'device:d1', data: { group: null } },
    ]);
    clock += 1000;
    await audit.append([signedIn('erin')]);
    await audit.erasePersonal(['user:erin']);
    const latest = await latestPerSubject(audit, 'auth.sign_in_succeeded');
    expect(Object.fromEntries(latest)).toEqual({ 'user:alice': 1_002_000, 'user:bob': 1_001_000 });
    expect((await latestPerSubject(audit, 'device.added')).get('device:d1')).toBe(1_002_000);
  });
});
