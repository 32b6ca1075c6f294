import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createAuditLog,
  createEventBus,
  subjectOf,
  type AuditLog,
  type EventBus,
  type Subject,
} from '../events/index.ts';
import { revokeDeviceCertificates } from '../pki/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Db } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createDeviceService, eraseAcross, statusAllows, type DeviceService } from './index.ts';

const now = 1_800_000_000_000;

async function insertCert(db: Db, deviceId: string, serial: string): Promise<void> {
  await db
    .insertInto('certificates')
    .values({
      serial,
      kind: 'device',
      device_id: deviceId,
      subject: `CN=${deviceId}`,
      fingerprint: serial.padStart(64, '0'),
      not_before: now - 1000,
      not_after: now + 86_400_000,
      pem: '',
      issued_at: now - 1000,
      revoked_at: null,
      revocation_reason: null,
    })
    .execute();
}

const unrevoked = async (db: Db, deviceId: string) =>
  (
    await db
      .selectFrom('certificates')
      .select('serial')
      .where('device_id', '=', deviceId)
      .where('revoked_at', 'is', null)
      .execute()
  ).map((r) => r.serial);

/** Issue 17: lost, found and decommissioned devices, on each dialect. */
describe.each(testDialects)('device retirement on %s', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let audit: AuditLog;
  let devices: DeviceService;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      headFile: path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-ret-')), 'head.json'),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    devices = createDeviceService({
      db: t.store.db,
      events: bus,
      now: () => now,
      tokenTtlMs: 60_000,
      audit,
      retirement: { revokeCertificates: revokeDeviceCertificates },
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  const eventsOf = async (type: 'device.lost' | 'device.found' | 'device.decommissioned', id: string) =>
    audit.query({ type, subject: subjectOf.device(id), limit: 10 });

  it('lost: revokes every certificate and quarantines, with device.lost, in one transaction', async () => {
    await devices.add({ id: 'l-1', group: 'g' }, 'test');
    await insertCert(t.store.db, 'l-1', 'a1');
    await insertCert(t.store.db, 'l-1', 'a2');

    // A failure inside the transaction leaves everything as it was: no status, no revocation, no event.
    const failing = createDeviceService({
      db: t.store.db,
      events: bus,
      now: () => now,
      tokenTtlMs: 60_000,
      retirement: {
        revokeCertificates: async (tx, emit, r) => {
          await revokeDeviceCertificates(tx, emit, r);
          throw new Error('crash after the revocation');
        },
      },
    });
    await expect(failing.markLost('l-1', { stolen: true }, 'test')).rejects.toThrow('crash');
    expect((await devices.get('l-1')).status).toBe('registered');
    expect(await unrevoked(t.store.db, 'l-1')).toEqual(['a1', 'a2']);
    expect(await eventsOf('device.lost', 'l-1')).toEqual([]);

    const lost = await devices.markLost('l-1', { stolen: true, reason: 'taken from site' }, 'alice');
    expect(lost.revokedCertificates.sort()).toEqual(['a1', 'a2']);
    const d = await devices.get('l-1');
    expect(d).toMatchObject({
      status: 'lost',
      state: 'lost',
      quarantinedAt: now,
      certificateExpiresAt: null,
    });
    expect(await unrevoked(t.store.db, 'l-1')).toEqual([]);
    const [entry] = await audit.query({ type: 'device.lost', subject: 'device:l-1', limit: 1 });
    expect(entry).toMatchObject({ actor: 'alice', data: { stolen: true, reason: 'taken from site' } });
    expect(entry?.data.revokedCertificates.sort()).toEqual(['a1', 'a2']);
    const revoked = await audit.query({ type: 'certificate.revoked', subject: 'device:l-1', limit: 10 });
    expect(revoked.map((e) => e.data.reason)).toEqual(['keyCompromise', 'keyCompromise']);

    // Lost allows nothing of the device's own: no token, no enrollment; and it is not lost twice.
    for (const op of ['connect', 'enroll', 'reenroll', 'issueToken'] as const)
      expect(statusAllows('lost', op)).toBe(false);
    await expect(devices.issueToken('l-1', 'test')).rejects.toThrow(
      'device l-1 is reported lost: cannot issueToken until it is marked found',
    );
    await expect(devices.markLost('l-1', { stolen: false }, 'test')).rejects.toThrow('reported lost');
    expect((await devices.list({ state: 'lost' })).map((x) => x.id)).toEqual(['l-1']);
  });

  it('found: only from lost; registered again, still quarantined, a token re-enrolls it', async () => {
    await devices.add({ id: 'f-1' }, 'test');
    await expect(devices.markFound('f-1', {}, 'test')).rejects.toThrow(
      'device f-1 is registered: cannot markFound',
    );
    await devices.markLost('f-1', { stolen: false }, 'test');
    const found = await devices.markFound('f-1', { reason: 'in the van' }, 'bob');
    expect(found).toMatchObject({
      status: 'registered',
      state: 'quarantined',
      quarantinedAt: now,
      enrolledAt: null,
    });
    expect((await eventsOf('device.found', 'f-1')).map((e) => [e.actor, e.data])).toEqual([
      ['bob', { reason: 'in the van' }],
    ]);
    const { token } = await devices.issueToken('f-1', 'test');
    await expect(devices.checkToken('f-1', token)).resolves.toMatchObject({ device: { id: 'f-1' } });
  });

  it('decommission: revokes, erases through the bound eraser, proves it; the id is never reused', async () => {
    await devices.addWithToken({ id: 'x-1', attributes: { owner: 'Jane Doe' } }, 'test');
    await insertCert(t.store.db, 'x-1', 'b1');
    // Not wired: fails loudly and changes nothing.
    await expect(devices.decommission('x-1', {}, 'test')).rejects.toThrow(
      'device retirement is not wired: eraseDeviceData is missing',
    );
    expect(await unrevoked(t.store.db, 'x-1')).toEqual(['b1']);

    const erasedFor: string[] = [];
    const telemetry = {
      module: 'telemetry',
      eraseSubject: (subject: Subject) => {
        erasedFor.push(`${subject.kind}:${subject.id}`);
        return Promise.resolve({ erased: 7 });
      },
    };
    devices.bindRetirement({ eraseDeviceData: eraseAcross([telemetry, devices.subjectData]) });
    const done = await devices.decommission('x-1', { reason: 'end of life' }, 'alice');
    expect(erasedFor).toEqual(['device:x-1']);
    expect(done.revokedCertificates).toEqual(['b1']);
    expect(done.erased).toEqual({ devices: 2, telemetry: 7 });
    const [entry] = await eventsOf('device.decommissioned', 'x-1');
    expect(entry?.data).toEqual({ reason: 'end of life', revokedCertificates: ['b1'], erased: done.erased });
    expect(done.proof).toEqual({ seq: entry?.seq, hash: entry?.hash });
    expect(await devices.get('x-1')).toMatchObject({ status: 'decommissioned', attributes: {} });
    const cert = await t.store.db
      .selectFrom('certificates')
      .selectAll()
      .where('serial', '=', 'b1')
      .executeTakeFirst();
    expect(cert?.revocation_reason).toBe('cessationOfOperation');

    await expect(devices.decommission('x-1', {}, 'test')).rejects.toThrow(
      'device x-1 is already decommissioned',
    );
    await expect(devices.add({ id: 'x-1' }, 'test')).rejects.toThrow(
      'device x-1 was decommissioned; ids are never reused',
    );
    await expect(devices.addWithToken({ id: 'x-1' }, 'test')).rejects.toThrow('ids are never reused');
    // A lost device is decommissioned too.
    await devices.add({ id: 'x-2' }, 'test');
    await devices.markLost('x-2', { stolen: true }, 'test');
    await expect(devices.decommission('x-2', {}, 'test')).resolves.toMatchObject({ revokedCertificates: [] });
  });
});
