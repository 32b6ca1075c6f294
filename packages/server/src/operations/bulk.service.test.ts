import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestPlatform, type TestPlatform } from '../test-support/platform.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import type { EventType } from '../events/index.ts';
import type { Platform } from '../platform.ts';
import type { Principal } from './index.ts';

const HOUR = 3_600_000;

const admin = (name: string, groups: string[] | null = null): Principal => ({
  actor: `user:${name}`,
  scope: { role: 'admin', groups },
});

async function addDevices(p: Platform, prefix: string, n: number, group: string | null): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(2, '0')}`);
  for (const id of ids) await p.devices.add({ id, group }, 'test');
  return ids;
}

async function entries<T extends EventType>(p: Platform, type: T, subject?: string) {
  await p.events.flush();
  return p.audit.query({ type, subject, limit: 1000 });
}

/**
 * Bulk device actions on the real platform (devices, access, PKI, baseline, audit log) on each dialect: the
 * threshold decides between running at once and waiting for a second person; every step is in the audit log.
 */
describe.each(testDialects)('bulk device actions on %s', (dialect) => {
  let t: TestPlatform;
  let db: TestStore | undefined;
  let clock: number;
  let p: Platform;

  beforeEach(async () => {
    clock = Date.now();
    if (dialect === 'postgres') db = await createTestStore('postgres');
    t = await createTestPlatform({
      overrides: db ? { 'database.url': db.location.url } : {},
      now: () => clock,
      background: false,
    });
    p = t.platform;
  }, 60_000);
  afterEach(async () => {
    await t.close();
    await db?.cleanup();
    db = undefined;
  });

  it('runs below the threshold at once, each device through its own service and event', async () => {
    const ids = await addDevices(p, 'pump', 3, 'pumps');
    const op = await p.operations.request({ action: 'quarantine', ids, reason: 'incident 7' }, admin('ada'));
    expect(op).toMatchObject({
      status: 'executed',
      needsApproval: false,
      threshold: 10,
      count: 3,
      deviceIds: ids,
      requestedBy: 'user:ada',
      summary: { ok: 3, skipped: 0, failed: 0 },
    });
    for (const id of ids) expect((await p.devices.get(id)).quarantinedAt).not.toBeNull();
    const quarantined = await entries(p, 'device.quarantined');
    expect(quarantined.map((e) => e.subject).sort()).toEqual(ids.map((id) => `device:${id}`));
    expect(quarantined[0]?.data).toEqual({ reason: `incident 7 (bulk ${op.id})` });
    expect((await entries(p, 'operations.requested', `operation:${op.id}`))[0]?.data).toMatchObject({
      action: 'quarantine',
      count: 3,
      needsApproval: false,
      deviceIds: ids,
    });
    expect((await entries(p, 'operations.executed', `operation:${op.id}`))[0]?.data).toEqual({
      action: 'quarantine',
      count: 3,
      ok: 3,
      skipped: 0,
      failed: 0,
      failedIds: [],
    });
  });

  it('waits at the threshold for a second person; the requester (even by token) cannot approve', async () => {
    const ids = await addDevices(p, 'cam', 10, 'cameras');
    const op = await p.operations.request({ action: 'quarantine', group: 'cameras' }, admin('ada'));
    expect(op).toMatchObject({
      status: 'pending',
      needsApproval: true,
      count: 10,
      expiresAt: clock + 24 * HOUR,
    });
    expect(op.deviceIds).toEqual(ids);
    for (const id of ids) expect((await p.devices.get(id)).quarantinedAt).toBeNull();

    const byToken: Principal = { actor: 'user:ada/token:abc', scope: { role: 'admin', groups: null } };
    await expect(p.operations.approve(op.id, byToken)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(p.operations.approve(op.id, admin('ada'))).rejects.toMatchObject({
      code: 'forbidden',
      message: expect.stringContaining('second person') as unknown,
    });
    // A second person without the permission cannot either.
    const operator: Principal = { actor: 'user:otto', scope: { role: 'operator', groups: null } };
    await expect(p.operations.approve(op.id, operator)).rejects.toMatchObject({ code: 'forbidden' });
    expect((await p.operations.get(op.id, admin('x').scope)).status).toBe('pending');

    const done = await p.operations.approve(op.id, admin('bob'), 'checked with ada');
    expect(done).toMatchObject({
      status: 'executed',
      decidedBy: 'user:bob',
      decisionNote: 'checked with ada',
      summary: { ok: 10, skipped: 0, failed: 0 },
    });
    for (const id of ids) expect((await p.devices.get(id)).quarantinedAt).not.toBeNull();
    const subject = `operation:${op.id}`;
    expect((await entries(p, 'operations.approved', subject))[0]).toMatchObject({
      actor: 'user:bob',
      data: { requestedBy: 'user:ada', count: 10, note: 'checked with ada' },
    });
    expect(await entries(p, 'operations.executed', subject)).toHaveLength(1);
    // Decided once: a second approval is a conflict, and nothing runs twice.
    await expect(p.operations.approve(op.id, admin('carol'))).rejects.toMatchObject({ code: 'conflict' });
    expect(await entries(p, 'device.quarantined')).toHaveLength(10);
  });

  it('records each device’s outcome: done, nothing to do, or refused (the others still run)', async () => {
    await addDevices(p, 'plc', 4, 'plc');
    await p.access.putZone({ name: 'floor', securityLevel: 2, members: { groups: ['plc'] } }, 'test');
    await p.access.setQuarantine('plc-01', { quarantined: true }, 'test');
    await (await p.pki()).revokeDevice('plc-04', 'test', 'keyCompromise');

    // A zone selection leaves out devices no action applies to (revoked, decommissioned).
    const zone = await p.operations.request({ action: 'quarantine', zone: 'floor' }, admin('ada'));
    expect(zone.deviceIds).toEqual(['plc-01', 'plc-02', 'plc-03']);
    expect(zone.selection).toEqual({ kind: 'zone', zone: 'floor' });
    expect(zone.results).toEqual([
      { deviceId: 'plc-01', outcome: 'skipped', message: 'already quarantined' },
      { deviceId: 'plc-02', outcome: 'ok' },
      { deviceId: 'plc-03', outcome: 'ok' },
    ]);

    // Ids are taken as given: a revoked device is refused by the device's own rule, the rest is done.
    const release = await p.operations.request(
      { action: 'release', ids: ['plc-02', 'plc-04', 'plc-02'] },
      admin('ada'),
    );
    expect(release.deviceIds).toEqual(['plc-02', 'plc-04']);
    expect(release.results).toEqual([
      { deviceId: 'plc-02', outcome: 'ok' },
      { deviceId: 'plc-04', outcome: 'skipped', message: 'not quarantined' },
    ]);
    const quarantine = await p.operations.request({ action: 'quarantine', ids: ['plc-04'] }, admin('ada'));
    expect(quarantine.results).toEqual([
      { deviceId: 'plc-04', outcome: 'failed', message: 'device plc-04 is revoked' },
    ]);
    expect(quarantine.summary).toEqual({ ok: 0, skipped: 0, failed: 1 });
    expect((await entries(p, 'operations.executed', `operation:${quarantine.id}`))[0]?.data).toMatchObject({
      failed: 1,
      failedIds: ['plc-04'],
    });

    const revoke = await p.operations.request(
      { action: 'revoke', ids: ['plc-03', 'plc-04'], revocationReason: 'keyCompromise' },
      admin('ada'),
    );
    expect(revoke.results).toEqual([
      { deviceId: 'plc-03', outcome: 'ok' },
      { deviceId: 'plc-04', outcome: 'skipped', message: 'already revoked' },
    ]);
    expect((await p.devices.get('plc-03')).status).toBe('revoked');
  });

  it('is rejected by a second person or cancelled by its requester; unapproved requests expire', async () => {
    await addDevices(p, 'meter', 12, 'meters');
    const request = () => p.operations.request({ action: 'decommission', group: 'meters' }, admin('ada'));
    const a = await request();
    const rejected = await p.operations.reject(a.id, admin('bob'), 'not during the audit');
    expect(rejected).toMatchObject({ status: 'rejected', decidedBy: 'user:bob' });
    await expect(p.operations.approve(a.id, admin('carol'))).rejects.toMatchObject({ code: 'conflict' });

    const b = await request();
    expect((await p.operations.reject(b.id, admin('ada'))).status).toBe('cancelled');
    expect(await entries(p, 'operations.cancelled', `operation:${b.id}`)).toHaveLength(1);

    const c = await request();
    clock += 24 * HOUR + 1;
    expect(await p.operations.list({ status: 'pending', limit: 100 }, admin('x').scope)).toEqual([]);
    await expect(p.operations.approve(c.id, admin('bob'))).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringContaining('expired') as unknown,
    });
    expect((await entries(p, 'operations.expired', `operation:${c.id}`))[0]).toMatchObject({
      actor: 'system',
      data: { action: 'decommission', count: 12, requestedBy: 'user:ada' },
    });
    // Nothing ran: every meter is still registered.
    expect((await p.devices.list({ group: 'meters', status: 'registered' })).length).toBe(12);
    const statuses = (await p.operations.list({ limit: 10 }, admin('x').scope)).map((o) => o.status);
    expect(statuses.sort()).toEqual(['cancelled', 'expired', 'rejected']);
  });

  it('follows the baseline: 0 turns dual control off, another number moves the threshold', async () => {
    await addDevices(p, 'gw', 12, 'gateways');
    await p.compliance.baseline.apply('name: strict\napprovals: { bulkDevices: 0 }\n', 'test');
    const off = await p.operations.request({ action: 'quarantine', group: 'gateways' }, admin('ada'));
    expect(off).toMatchObject({ status: 'executed', needsApproval: false, threshold: 0 });
    await p.compliance.baseline.apply(
      'name: strict\napprovals: { bulkDevices: 2, expireAfter: 1h }\n',
      'test',
    );
    const two = await p.operations.request({ action: 'release', ids: ['gw-01', 'gw-02'] }, admin('ada'));
    expect(two).toMatchObject({ status: 'pending', threshold: 2, expiresAt: clock + HOUR });
  });

  it('keeps users limited to device groups to their groups, as requester and as approver', async () => {
    await addDevices(p, 'a', 10, 'north');
    await addDevices(p, 'b', 2, 'south');
    const north = (name: string) => admin(name, ['north']);
    await expect(
      p.operations.request({ action: 'quarantine', group: 'south' }, north('nina')),
    ).rejects.toMatchObject({ code: 'forbidden' });
    await expect(
      p.operations.request({ action: 'quarantine', ids: ['a-01', 'b-01'] }, north('nina')),
    ).rejects.toMatchObject({ code: 'validation_failed', message: 'ids: device b-01 does not exist' });

    const mixed = await p.operations.request(
      {
        action: 'quarantine',
        ids: ['a-01', 'a-02', 'a-03', 'a-04', 'a-05', 'a-06', 'a-07', 'a-08', 'a-09', 'b-01'],
      },
      admin('ada'),
    );
    expect(mixed.status).toBe('pending');
    // A north-only admin neither sees nor decides a request touching south.
    expect(await p.operations.list({ limit: 10 }, north('nils').scope)).toEqual([]);
    await expect(p.operations.approve(mixed.id, north('nils'))).rejects.toMatchObject({ code: 'not_found' });

    const own = await p.operations.request({ action: 'quarantine', group: 'north' }, north('nina'));
    expect(own.status).toBe('pending');
    expect((await p.operations.list({ limit: 10 }, north('nils').scope)).map((o) => o.id)).toEqual([own.id]);
    // A device moved out of the approver's groups since the request: the approver no longer covers it.
    await p.devices.update('a-10', { group: 'south' }, 'test');
    await expect(p.operations.approve(own.id, north('nils'))).rejects.toMatchObject({ code: 'forbidden' });
    expect((await p.operations.approve(own.id, admin('bob'))).summary.ok).toBe(10);
  });

  it('refuses bad input naming the field, and changes nothing', async () => {
    await addDevices(p, 'x', 2, 'xs');
    const bad = [
      [{ action: 'quarantine' }, 'ids: give exactly one of ids, group or zone'],
      [{ action: 'quarantine', ids: ['x-01'], group: 'xs' }, 'group: give exactly one of ids, group or zone'],
      [{ action: 'quarantine', zone: 'nowhere' }, 'zone: there is no zone named "nowhere"'],
      [{ action: 'quarantine', group: 'empty' }, 'group: selects no device a quarantine applies to'],
      [{ action: 'quarantine', ids: ['x-01'], stolen: true }, 'stolen: only for action lost'],
      [
        { action: 'lost', ids: ['x-01'], revocationReason: 'keyCompromise' },
        'revocationReason: only for action revoke',
      ],
    ] as const;
    for (const [input, message] of bad)
      await expect(p.operations.request(input, admin('ada'))).rejects.toMatchObject({
        code: 'validation_failed',
        message,
      });
    const viewer: Principal = { actor: 'user:vic', scope: { role: 'viewer', groups: null } };
    await expect(p.operations.request({ action: 'revoke', ids: ['x-01'] }, viewer)).rejects.toMatchObject({
      code: 'forbidden',
    });
    expect(await p.operations.list({ limit: 10 }, admin('x').scope)).toEqual([]);
    expect(await entries(p, 'operations.requested')).toEqual([]);
  });
});
