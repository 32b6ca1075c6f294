import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createDeviceService, type DeviceService } from './index.ts';

const DAY = 86_400_000;

/** What the devices module answers for compliance (facts) and privacy (export and erase by subject). */
describe.each(testDialects)('device facts and data subjects on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let devices: DeviceService;
  const now = 1_800_000_000_000;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    devices = createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: DAY });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  /** Operational columns the session and certificate events keep (set directly: the test is about reading). */
  const seen = (id: string, values: { last_seen_at?: number | null; cert_expires_at?: number | null }) =>
    t.store.db.updateTable('devices').set(values).where('id', '=', id).execute();

  it('counts devices by status and state, certificates, and devices not seen', async () => {
    for (const id of ['a', 'b', 'c', 'd', 'e']) await devices.add({ id }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'active', enrolled_at: now }).execute();
    await seen('a', { last_seen_at: now - DAY, cert_expires_at: now + 300 * DAY });
    await seen('b', { last_seen_at: now - 40 * DAY, cert_expires_at: now + 10 * DAY });
    await seen('c', { cert_expires_at: now - DAY });
    await devices.setDisabled('d', { disabled: true, reason: 'maintenance' }, 'test');
    await t.store.db
      .transaction()
      .execute((tx) => devices.markQuarantined(tx, { id: 'e', quarantined: true }));

    const facts = await devices.facts();
    expect(facts.total).toBe(5);
    expect(facts.byStatus).toMatchObject({ active: 4, disabled: 1, registered: 0, revoked: 0 });
    expect(facts.byState).toMatchObject({ active: 3, disabled: 1, quarantined: 1 });
    expect(facts.withoutCertificate).toBe(2); // d, e
    expect(facts.certificatesExpiringIn30Days).toBe(2); // b soon, c already
    expect(facts.neverSeen).toBe(3); // c, d, e
    expect(facts.notSeen).toEqual({ days: 30, count: 1 }); // b
    expect((await devices.facts({ notSeenDays: 0.5 })).notSeen).toEqual({ days: 0.5, count: 2 });
  });

  it('states every device with its session state and zone, revoked devices still connected, identity conflicts', async () => {
    let clock = now;
    const withFacts = createDeviceService({
      db: t.store.db,
      events: bus,
      now: () => clock,
      tokenTtlMs: DAY,
      audit,
      facts: {
        zones: () => Promise.resolve((d) => (d.group === 'plant' ? 'floor' : null)),
        firmwareOf: () => Promise.resolve(undefined),
        certificatesOf: (id) =>
          Promise.resolve([
            { serial: `${id}-old`, notBefore: now, notAfter: now + DAY, revokedAt: now },
            { serial: `${id}-new`, notBefore: now, notAfter: now + DAY, revokedAt: id === 'r' ? now : null },
          ]),
      },
    });
    await withFacts.add({ id: 'a', group: 'plant' }, 'test');
    for (const id of ['b', 'r', 'x']) await withFacts.add({ id }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'active', enrolled_at: now }).execute();
    const online = (id: string) =>
      t.store.db
        .updateTable('devices')
        .set({ sessions: 1, connected_at: now, last_seen_at: now })
        .where('id', '=', id)
        .execute();
    await online('a');
    await online('r');
    await t.store.db
      .updateTable('devices')
      .set({ status: 'revoked', revoked_at: now })
      .where('id', 'in', ['r', 'x'])
      .execute();
    await t.store.db
      .transaction()
      .execute((tx) => withFacts.markQuarantined(tx, { id: 'b', quarantined: true }));
    const conflict = (subject: `${'device' | 'app'}:${string}`) =>
      bus.emit({
        type: 'mqtt.identity_conflict',
        actor: subject,
        subject,
        data: {
          remoteAddresses: ['198.51.100.1', '198.51.100.2'],
          takeovers: 3,
          windowMs: 60_000,
          certSerial: '0a',
        },
      });
    await conflict('device:a');
    await conflict('device:a');
    await conflict('app:dash');
    await bus.flush();

    const facts = await withFacts.complianceFacts({ conflictWindowMs: 3_600_000 });
    expect(facts.devices).toEqual([
      {
        id: 'a',
        group: 'plant',
        status: 'active',
        quarantined: false,
        connected: true,
        lastSeenAt: now,
        createdAt: now,
        zone: 'floor',
      },
      {
        id: 'b',
        group: null,
        status: 'active',
        quarantined: true,
        connected: false,
        lastSeenAt: null,
        createdAt: now,
        zone: null,
      },
      {
        id: 'r',
        group: null,
        status: 'revoked',
        quarantined: false,
        connected: true,
        lastSeenAt: now,
        createdAt: now,
        zone: null,
      },
      {
        id: 'x',
        group: null,
        status: 'revoked',
        quarantined: false,
        connected: false,
        lastSeenAt: null,
        createdAt: now,
        zone: null,
      },
    ]);
    expect(facts.revokedButConnected).toEqual([{ deviceId: 'r', serials: ['r-old', 'r-new'] }]);
    expect(facts.identityConflicts).toEqual([
      { clientId: 'a', deviceId: 'a', count: 2, lastAt: now },
      { clientId: 'dash', deviceId: null, count: 1, lastAt: now },
    ]);
    expect(facts.conflictWindowMs).toBe(3_600_000);

    clock = now + 2 * 3_600_000; // the conflicts are older than the window now
    expect((await withFacts.complianceFacts({ conflictWindowMs: 3_600_000 })).identityConflicts).toEqual([]);
    // Without the other modules bound: no zones, no serials.
    const bare = await createDeviceService({
      db: t.store.db,
      events: bus,
      now: () => clock,
      tokenTtlMs: DAY,
      audit,
    }).complianceFacts({ conflictWindowMs: 3_600_000 });
    expect(bare.devices.map((d) => d.zone)).toEqual([null, null, null, null]);
    expect(bare.revokedButConnected).toEqual([{ deviceId: 'r', serials: [] }]);
    expect(bare.identityConflicts).toEqual([]);
    // No audit log to read conflicts from: refused (the check becomes error), never "no conflicts".
    await expect(devices.complianceFacts({ conflictWindowMs: 3_600_000 })).rejects.toThrow(/no audit log/);
  });

  it('lists the ids of the devices in service (registered, active, disabled; not revoked)', async () => {
    for (const id of ['d', 'a', 'c', 'b', 'r']) await devices.add({ id }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'active' }).where('id', 'in', ['a', 'b']).execute();
    await devices.setDisabled('c', { disabled: true, reason: 'maintenance' }, 'test');
    await t.store.db
      .updateTable('devices')
      .set({ status: 'revoked', revoked_at: now })
      .where('id', '=', 'r')
      .execute();
    expect(await devices.inServiceIds()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('disables with its event in one step, and records quarantine only through the door', async () => {
    await devices.add({ id: 'q' }, 'test');
    await devices.setDisabled('q', { disabled: true, reason: 'stolen' }, 'user:olga');
    const [disabled] = await audit.query({ type: 'device.disabled', limit: 10 });
    expect(disabled).toMatchObject({ subject: 'device:q', actor: 'user:olga', data: { reason: 'stolen' } });
    const changed = await t.store.db
      .transaction()
      .execute((tx) => devices.markQuarantined(tx, { id: 'q', quarantined: true }));
    expect(changed).toBe(true);
    expect(
      await t.store.db
        .transaction()
        .execute((tx) => devices.markQuarantined(tx, { id: 'q', quarantined: true })),
    ).toBe(false);
  });

  it('exports the device, its tokens without their hashes, and its certificates when pki is bound', async () => {
    const { token } = await devices.addWithToken(
      { id: 'pump-1', group: 'pumps', attributes: { owner: 'Ada' } },
      'test',
    );
    expect(await devices.subjectData.exportSubject({ kind: 'user', id: 'pump-1' })).toEqual([]);
    const records = await devices.subjectData.exportSubject({ kind: 'device', id: 'pump-1' });
    expect(records.map((r) => r.record)).toEqual(['device', 'enrollment_token']);
    expect(records[0]).toMatchObject({ id: 'pump-1', group: 'pumps', attributes: { owner: 'Ada' } });
    expect(JSON.stringify(records)).not.toContain(token);
    expect(Object.keys(records[1] ?? {}).sort()).toEqual([
      'createdAt',
      'expiresAt',
      'id',
      'record',
      'usedAt',
    ]);

    const withPki = createDeviceService({
      db: t.store.db,
      events: bus,
      now: () => now,
      tokenTtlMs: DAY,
      facts: {
        zones: () => Promise.resolve(() => null),
        firmwareOf: () => Promise.resolve(undefined),
        certificatesOf: (id) =>
          Promise.resolve(
            id === 'pump-1' ? [{ serial: '0a', notBefore: now, notAfter: now + DAY, revokedAt: null }] : [],
          ),
      },
    });
    const withCerts = await withPki.subjectData.exportSubject({ kind: 'device', id: 'pump-1' });
    expect(withCerts.at(-1)).toEqual({
      record: 'certificate',
      serial: '0a',
      notBefore: now,
      notAfter: now + DAY,
      revokedAt: null,
    });
    expect(devices.subjectData.module).toBe('devices');
  });

  it('erases attributes and tokens, keeps the row anonymised and decommissioned, and never edits the audit log', async () => {
    const { token } = await devices.addWithToken({ id: 'cam-1', attributes: { room: 'bedroom' } }, 'test');
    await bus.flush();
    const before = await audit.query({ limit: 100 });
    expect(await devices.subjectData.eraseSubject({ kind: 'device', id: 'cam-1' }, 'user:dpo')).toEqual({
      erased: 2,
    });
    const device = await devices.get('cam-1');
    expect(device).toMatchObject({ status: 'decommissioned', state: 'decommissioned', attributes: {} });
    await expect(devices.checkToken('cam-1', token)).rejects.toMatchObject({ code: 'token_invalid' });
    await expect(devices.issueToken('cam-1', 'test')).rejects.toMatchObject({ code: 'conflict' });
    const after = await audit.query({ limit: 100 });
    // The entries before the erasure are unchanged; one more says what changed (by whom), not the old values.
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length)).toMatchObject([
      {
        type: 'device.updated',
        actor: 'user:dpo',
        subject: 'device:cam-1',
        data: { changes: { attributes: {} } },
      },
    ]);
    expect((await audit.verify()).ok).toBe(true);
    expect(await devices.subjectData.eraseSubject({ kind: 'device', id: 'cam-1' }, 'user:dpo')).toEqual({
      erased: 0,
    });
    expect(await devices.subjectData.eraseSubject({ kind: 'device', id: 'nobody' }, 'user:dpo')).toEqual({
      erased: 0,
    });
    expect(await devices.subjectData.eraseSubject({ kind: 'user', id: 'cam-1' }, 'user:dpo')).toEqual({
      erased: 0,
    });
    expect((await devices.facts()).byStatus.decommissioned).toBe(1);
  });
});
