import { randomBytes } from 'node:crypto';
import type { KyselyPlugin } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { ENTRY_PURPOSE } from './audit-verify.ts';
import {
  createAuditLog,
  createEventBus,
  entryHash,
  GENESIS_HASH,
  type AuditEntry,
  type AuditLog,
  type SecurityEvent,
} from './index.ts';

const box = createSecretBox(randomBytes(32));
const retryable = (e: unknown) => isUniqueViolation(e) || isBusy(e);
const auditOn = (store: Store, db = store.db) =>
  createAuditLog({ db, mac: box, now: Date.now, isRetryable: retryable });

const REF = /^[0-9a-f]{32}$/;
const signInFailed = (user: string, address: string): SecurityEvent<'auth.sign_in_failed'> => ({
  type: 'auth.sign_in_failed',
  actor: `anonymous@${address}`,
  subject: `user:${user}`,
  data: { address, reason: 'bad password' },
});
const signedIn = (user: string, address: string): SecurityEvent<'auth.sign_in_succeeded'> => ({
  type: 'auth.sign_in_succeeded',
  actor: `user:${user}`,
  subject: `user:${user}`,
  data: { address, method: 'password', next: 'active' },
});
const deviceAdded = (n: number): SecurityEvent<'device.added'> => ({
  type: 'device.added',
  actor: 'cli',
  subject: `device:d${n}`,
  data: { group: null },
});

describe.each(testDialects)('personal data in the audit log (%s)', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  beforeEach(async () => {
    t = await createTestStore(dialect);
    audit = auditOn(t.store);
    await audit.ensureAnchor();
  });
  afterEach(async () => t.cleanup());

  const stored = (seq: number) =>
    t.store.db.selectFrom('audit_log').selectAll().where('seq', '=', seq).executeTakeFirstOrThrow();
  const personalRows = () => t.store.db.selectFrom('audit_personal').selectAll().execute();

  it('stores user subjects and personal fields sealed, and reads them back in the clear', async () => {
    const [appended] = await audit.append([signInFailed('alice', '203.0.113.7')]);
    // What subscribers get: the event as it happened, with the hash of the stored row.
    expect(appended).toMatchObject({
      actor: 'anonymous@203.0.113.7',
      subject: 'user:alice',
      data: { address: '203.0.113.7', reason: 'bad password' },
    });
    const row = await stored(1);
    expect(appended?.hash).toBe(row.hash);
    // Security logging of unauthenticated peers keeps the address actor in the clear (legitimate interest).
    expect(row.actor).toBe('anonymous@203.0.113.7');
    expect(row.subject).toMatch(/^user:~[0-9a-f]{32}$/);
    const data = JSON.parse(row.data) as { address: { $personal: string }; reason: string };
    expect(data.address.$personal).toMatch(REF);
    expect(data.reason).toBe('bad password');
    expect(row.data).not.toContain('203.0.113.7');
    expect(row.subject).not.toContain('alice');

    const [read] = await audit.readAfter(0);
    expect(read).toEqual(appended);
    expect(await audit.latest('auth.sign_in_failed')).toEqual(appended);
    expect(await audit.query({ limit: 10 })).toEqual([appended]);
    expect(await audit.verify()).toMatchObject({ ok: true, entries: 1 });
  });

  it('reuses one ref per owner and value', async () => {
    await audit.append([signedIn('alice', '203.0.113.7'), signedIn('alice', '203.0.113.7')]);
    await audit.append([signedIn('alice', '198.51.100.1'), signedIn('bob', '203.0.113.7')]);
    const rows = await Promise.all([1, 2, 3, 4].map(stored));
    expect(rows[0]?.actor).toBe(rows[0]?.subject);
    expect(new Set(rows.slice(0, 3).map((r) => r.actor)).size).toBe(1);
    expect(rows[3]?.actor).not.toBe(rows[0]?.actor);
    expect(rows[1]?.data).toBe(rows[0]?.data);
    expect(rows[2]?.data).not.toBe(rows[0]?.data);
    expect(rows[3]?.data).not.toBe(rows[0]?.data); // the same address, another owner
    const personal = await personalRows();
    expect(personal.map((r) => [r.owner, r.value]).sort()).toEqual(
      [
        ['user:alice', '"user:alice"'],
        ['user:alice', '"203.0.113.7"'],
        ['user:alice', '"198.51.100.1"'],
        ['user:bob', '"user:bob"'],
        ['user:bob', '"203.0.113.7"'],
      ].sort(),
    );
  });

  it('erases an owner: entries read [erased], others stay, and the chain still verifies', async () => {
    await audit.append([signInFailed('alice', '203.0.113.7'), signedIn('bob', '198.51.100.1')]);
    await audit.append([
      {
        type: 'user.updated',
        actor: 'user:bob',
        subject: 'user:alice',
        data: { changes: { role: 'viewer' } },
      },
    ]);
    expect(await audit.erasePersonal(['user:alice'])).toBe(2);
    expect(await audit.erasePersonal(['user:alice'])).toBe(0);
    const entries = await audit.readAfter(0);
    expect(entries.map((e) => [e.actor, e.subject, e.data])).toEqual([
      ['anonymous@203.0.113.7', 'user:[erased]', { address: '[erased]', reason: 'bad password' }],
      ['user:bob', 'user:bob', { address: '198.51.100.1', method: 'password', next: 'active' }],
      ['user:bob', 'user:[erased]', { changes: { role: 'viewer' } }],
    ]);
    expect(await audit.verify()).toEqual({ ok: true, entries: 3, headSeq: 3 });
    // A later event of the same user gets a new ref: erased values stay erased.
    await audit.append([signedIn('alice', '203.0.113.7')]);
    expect((await audit.readAfter(3))[0]).toMatchObject({ actor: 'user:alice', subject: 'user:alice' });
    expect((await audit.readAfter(0, 1))[0]?.subject).toBe('user:[erased]');
    expect((await audit.verify()).ok).toBe(true);
  });

  it('seals API-token actors under their user, and person subjects under the person', async () => {
    await audit.append([
      {
        type: 'api_token.used_from_new_address',
        actor: 'user:alice/token:t1',
        subject: 'user:alice',
        data: { tokenId: 't1', address: '198.51.100.1', previous: null },
      },
      {
        type: 'privacy.subject_added',
        actor: 'user:alice/token:t1',
        subject: 'person:u-17',
        data: { kind: 'customer', devices: ['pump-1'], users: ['alice'] },
      },
    ]);
    const row = await stored(1);
    expect(row.actor).toMatch(/^user:~/);
    expect(JSON.parse(row.data)).toMatchObject({ previous: null, tokenId: 't1' });
    expect((await stored(2)).subject).toMatch(/^person:~/);
    expect((await audit.readAfter(0)).map((e) => [e.actor, e.subject])).toEqual([
      ['user:alice/token:t1', 'user:alice'],
      ['user:alice/token:t1', 'person:u-17'],
    ]);
    // The user names linked to the person are sealed under the person (as one value); device ids stay clear.
    expect(JSON.parse((await stored(2)).data)).toMatchObject({
      devices: ['pump-1'],
      users: { $personal: expect.any(String) as string },
    });
    expect((await audit.readAfter(1))[0]?.data).toEqual({
      kind: 'customer',
      devices: ['pump-1'],
      users: ['alice'],
    });
    expect(await audit.erasePersonal(['person:u-17'])).toBe(2);
    expect((await audit.readAfter(1))[0]).toMatchObject({
      actor: 'user:alice/token:t1',
      subject: 'person:[erased]',
      data: { devices: ['pump-1'], users: '[erased]' },
    });
    expect(await audit.erasePersonal(['user:alice'])).toBe(3);
    expect((await audit.readAfter(0)).map((e) => [e.actor, e.subject])).toEqual([
      ['user:[erased]', 'user:[erased]'],
      ['user:[erased]', 'person:[erased]'],
    ]);
    expect((await audit.verify()).ok).toBe(true);
  });

  it("seals the user names of a person's link changes under the person; an empty list stays as it is", async () => {
    await audit.append([
      {
        type: 'privacy.subject_added',
        actor: 'user:dpo',
        subject: 'person:u-17',
        data: { kind: 'customer', devices: [], users: [] },
      },
      {
        type: 'privacy.subject_updated',
        actor: 'user:dpo',
        subject: 'person:u-17',
        data: { changes: { addUsers: ['alice', 'bob'], removeUsers: ['carol'], addDevices: ['pump-1'] } },
      },
    ]);
    expect(JSON.parse((await stored(1)).data)).toEqual({ kind: 'customer', devices: [], users: [] });
    const row = await stored(2);
    expect(row.data).not.toMatch(/alice|bob|carol/);
    expect((await audit.readAfter(1))[0]?.data).toEqual({
      changes: { addUsers: ['alice', 'bob'], removeUsers: ['carol'], addDevices: ['pump-1'] },
    });
    expect(await audit.erasePersonal(['person:u-17'])).toBe(3);
    expect((await audit.readAfter(1))[0]?.data).toEqual({
      changes: { addUsers: '[erased]', removeUsers: '[erased]', addDevices: ['pump-1'] },
    });
    expect((await audit.verify()).ok).toBe(true);
  });

  it('seals nested personal fields under the device and leaves the rest of the data clear', async () => {
    await audit.append([
      {
        type: 'device.updated',
        actor: 'cli',
        subject: 'device:pump-1',
        data: { changes: { attributes: { owner: 'Alice Example' }, group: 'north' } },
      },
    ]);
    const row = await stored(1);
    expect(row.subject).toBe('device:pump-1');
    expect(row.data).not.toContain('Alice');
    expect(JSON.parse(row.data)).toMatchObject({ changes: { group: 'north' } });
    expect((await audit.readAfter(0))[0]?.data).toEqual({
      changes: { attributes: { owner: 'Alice Example' }, group: 'north' },
    });
    expect(await audit.erasePersonal(['device:pump-1'])).toBe(1);
    expect((await audit.readAfter(0))[0]?.data).toEqual({
      changes: { attributes: '[erased]', group: 'north' },
    });
    expect((await audit.verify()).ok).toBe(true);
  });

  it('leaves values with nobody to erase them for as they are', async () => {
    await audit.append([
      {
        type: 'auth.locked_out',
        actor: 'system',
        subject: 'address:203.0.113.7',
        data: { address: '203.0.113.7', scope: 'address', until: 1 },
      },
    ]);
    expect(await personalRows()).toEqual([]);
    expect((await stored(1)).data).toContain('203.0.113.7');
    expect((await stored(1)).actor).toBe('system');
  });

  it('seals user names that look sealed or erased: a sign-in as `~<ref>` reads back literally, not as that user', async () => {
    await audit.append([signedIn('alice', '192.0.2.1')]);
    const aliceRef = (await stored(1)).actor;
    expect(aliceRef).toMatch(/^user:~[0-9a-f]{32}$/);
    const forged = aliceRef.slice('user:'.length); // `~<alice's ref>`, typed as a user name
    await audit.append([
      signInFailed(forged, '203.0.113.9'),
      { type: 'user.updated', actor: 'user:[erased]', subject: `user:${forged}`, data: { changes: {} } },
    ]);
    const [failed, updated] = [await stored(2), await stored(3)];
    expect(failed.subject).toMatch(/^user:~[0-9a-f]{32}$/);
    expect(failed.subject).not.toBe(aliceRef);
    expect(updated.actor).not.toBe('user:[erased]');
    expect(updated.subject).toBe(failed.subject);
    expect(await audit.readAfter(1)).toMatchObject([
      { subject: `user:${forged}`, data: { address: '203.0.113.9' } },
      { actor: 'user:[erased]', subject: `user:${forged}` },
    ]);
    // A filter on the typed name finds its own entries, never alice's.
    const seqs = (entries: AuditEntry[]) => entries.map((e) => e.seq);
    expect(seqs(await audit.query({ subject: `user:${forged}`, limit: 10 }))).toEqual([2, 3]);
    expect(seqs(await audit.query({ actor: `user:${forged}`, limit: 10 }))).toEqual([]);
    expect(seqs(await audit.query({ actor: 'user:~0123', limit: 10 }))).toEqual([]);
    expect(seqs(await audit.query({ actor: 'user:alice', limit: 10 }))).toEqual([1]);
    // Erasing the typed name erases its values only; alice still reads as alice.
    await audit.erasePersonal([`user:${forged}`]);
    expect((await audit.readAfter(0))[0]).toMatchObject({ actor: 'user:alice', subject: 'user:alice' });
    expect((await audit.readAfter(1))[0]).toMatchObject({ subject: 'user:[erased]' });
    expect((await audit.verify()).ok).toBe(true);
  });

  it('never touches audit_personal for events without personal values', async () => {
    const touched: string[] = [];
    const spy: KyselyPlugin = {
      transformQuery(args) {
        if (JSON.stringify(args.node).includes('audit_personal')) touched.push(args.node.kind);
        return args.node;
      },
      transformResult: (args) => Promise.resolve(args.result),
    };
    const spied = auditOn(t.store, t.store.db.withPlugin(spy));
    await spied.append([deviceAdded(1), deviceAdded(2), { ...deviceAdded(3), actor: 'anonymous@10.0.0.1' }]);
    await spied.readAfter(0);
    await spied.query({ subject: 'device:d1', limit: 10 });
    expect(touched).toEqual([]);
    await spied.append([signedIn('alice', '10.0.0.1')]);
    expect(touched.length).toBeGreaterThan(0);
  });

  it('finds sealed entries and older clear ones by actor and subject', async () => {
    // An entry written before sealing existed: the user in the clear, in a valid chain.
    const legacy = {
      seq: 1,
      ts: Date.now(),
      type: 'auth.sign_in_succeeded',
      actor: 'user:alice',
      subject: 'user:alice',
      data: { address: '192.0.2.1', method: 'password', next: 'active' },
      prevHash: GENESIS_HASH,
    };
    const hash = entryHash(legacy);
    await t.store.db
      .insertInto('audit_log')
      .values({
        seq: legacy.seq,
        ts: legacy.ts,
        type: legacy.type,
        actor: legacy.actor,
        subject: legacy.subject,
        data: JSON.stringify(legacy.data),
        prev_hash: GENESIS_HASH,
        hash,
        mac: box.mac(ENTRY_PURPOSE, hash),
      })
      .execute();
    await audit.append([signedIn('alice', '203.0.113.7'), signedIn('bob', '203.0.113.7'), deviceAdded(1)]);
    await audit.append([signInFailed('alice', '198.51.100.1')]);
    const seqs = (entries: AuditEntry[]) => entries.map((e) => e.seq);
    expect(seqs(await audit.query({ actor: 'user:alice', limit: 10 }))).toEqual([1, 2]);
    expect(seqs(await audit.query({ subject: 'user:alice', limit: 10 }))).toEqual([1, 2, 5]);
    expect(seqs(await audit.query({ subject: 'user:alice', after: 1, limit: 1 }))).toEqual([2]);
    expect(seqs(await audit.query({ actor: 'user:carol', limit: 10 }))).toEqual([]);
    expect(seqs(await audit.query({ subject: 'device:d1', limit: 10 }))).toEqual([4]);
    const [old, sealed] = await audit.query({ actor: 'user:alice', limit: 10 });
    expect(old?.data).toEqual(legacy.data);
    expect(sealed?.data).toMatchObject({ address: '203.0.113.7' });
    expect((await audit.verify()).ok).toBe(true);
    await audit.erasePersonal(['user:alice']);
    // Clear entries from before sealing cannot be erased without breaking the chain: they stay as they were.
    expect(seqs(await audit.query({ actor: 'user:alice', limit: 10 }))).toEqual([1]);
    expect((await audit.verify()).ok).toBe(true);
  });

  it('seals events relayed from the outbox, and subscribers get them in the clear', async () => {
    const bus = createEventBus({ log: audit, db: t.store.db });
    const seen: AuditEntry[] = [];
    bus.subscribe((e) => seen.push(e));
    await bus.atomically((_tx, emit) => {
      emit(signInFailed('alice', '203.0.113.7'));
      emit(deviceAdded(1));
      return Promise.resolve();
    });
    await bus.close();
    expect(seen.map((e) => [e.actor, e.subject, e.data])).toEqual([
      ['anonymous@203.0.113.7', 'user:alice', { address: '203.0.113.7', reason: 'bad password' }],
      ['cli', 'device:d1', { group: null }],
    ]);
    expect((await stored(1)).subject).toMatch(/^user:~/);
    expect((await stored(1)).data).not.toContain('203.0.113.7');
    expect(await audit.readAfter(0)).toEqual(seen);
    await audit.erasePersonal(['user:alice']);
    expect((await audit.verify()).ok).toBe(true);
  });

  it('keeps one ref per value when two processes seal the same value at once', async () => {
    const other = auditOn(await t.openAnother());
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        (i % 2 ? other : audit).append([signedIn('alice', '203.0.113.7'), signedIn(`u${i}`, '203.0.113.7')]),
      ),
    );
    const personal = await personalRows();
    expect(personal.filter((r) => r.owner === 'user:alice')).toHaveLength(2);
    const rows = await t.store.db.selectFrom('audit_log').selectAll().execute();
    expect(rows).toHaveLength(12);
    const aliceRows = (await audit.query({ actor: 'user:alice', limit: 100 })).map((e) => e.seq);
    expect(aliceRows).toHaveLength(6);
    expect((await audit.verify()).ok).toBe(true);
  });
});
