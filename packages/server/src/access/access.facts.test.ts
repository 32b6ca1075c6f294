import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createAccessService, type AccessService } from './index.ts';

/** The access module in-process: its facts, and changes committed with their events (devices through the door). */
describe.each(testDialects)('access facts and changes on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let devices: DeviceService;
  let access: AccessService;
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
    devices = createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: 86_400_000 });
    access = createAccessService({ db: t.store.db, events: bus, now: () => now, devices });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  it('states policies, zones with their security levels and members, conduits, and devices in no zone', async () => {
    await devices.add({ id: 'plc-1', group: 'plc' }, 'test');
    await devices.add({ id: 'plc-2', group: 'plc' }, 'test');
    await devices.add({ id: 'cam-1', group: 'cameras' }, 'test');
    await devices.add({ id: 'loose-1' }, 'test');
    await access.putZone({ name: 'control', securityLevel: 3, members: { groups: ['plc'] } }, 'test');
    await access.putZone({ name: 'video', securityLevel: 1, members: { groups: ['cameras'] } }, 'test');
    await access.putConduit(
      { name: 'ctl-to-video', from: 'control', to: 'video', topics: ['alarms/#'] },
      'test',
    );
    await access.putPolicy(
      'telemetry',
      {
        version: '2026-11',
        statements: [
          { sid: 't', effect: 'allow', actions: ['mqtt:publish'], resources: ['devices/${device.id}/t'] },
        ],
      },
      'test',
    );
    await access.attach('telemetry', { kind: 'zone', target: 'control' }, 'test');
    await access.attach('telemetry', { kind: 'group', target: 'cameras' }, 'test');

    expect(await access.facts()).toEqual({
      policies: [{ name: 'telemetry', version: 1, attachments: 2 }],
      zones: [
        { name: 'control', securityLevel: 3, devices: 2 },
        { name: 'video', securityLevel: 1, devices: 1 },
      ],
      conduits: [
        {
          name: 'ctl-to-video',
          from: 'control',
          to: 'video',
          direction: 'one-way',
          topics: 1,
          rateCap: null,
        },
      ],
      devicesInNoZone: 1,
      devices: 4,
    });
  });

  it('states compliance facts: statements, attachments, conduit topics, devices in no zone, app grants', async () => {
    await devices.add({ id: 'plc-1', group: 'plc' }, 'test');
    await devices.add({ id: 'loose-1' }, 'test');
    await devices.add({ id: 'gone-1' }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'revoked' }).where('id', '=', 'gone-1').execute();
    // No zone yet: every device in service is in no zone.
    expect((await access.complianceFacts()).devicesInNoZone).toEqual(['loose-1', 'plc-1']);

    await access.putZone({ name: 'control', securityLevel: 3, members: { groups: ['plc'] } }, 'test');
    await access.putZone({ name: 'office', securityLevel: 1, members: { groups: ['office'] } }, 'test');
    await access.putConduit(
      { name: 'ctl-up', from: 'control', to: 'office', topics: ['alarms/#', 'state/+'], rateCap: 10 },
      'test',
    );
    await access.putPolicy(
      'fleet',
      {
        version: '2026-11',
        statements: [
          { sid: 'all', effect: 'allow', actions: ['mqtt:subscribe', 'mqtt:receive'], resources: ['#'] },
          { sid: 'no', effect: 'deny', actions: ['mqtt:publish'], resources: ['devices/+/cmd'] },
        ],
      },
      'test',
    );
    await access.attach('fleet', { kind: 'all', target: '*' }, 'test');
    await access.attach('fleet', { kind: 'group', target: 'plc' }, 'test');
    await access.attach('fleet', { kind: 'device', target: 'loose-1' }, 'test');
    await access.putAppPolicy(
      'app.dash',
      {
        version: '2026-11',
        statements: [
          { sid: 'g1', effect: 'allow', actions: ['mqtt:subscribe'], resources: ['devices/+/telemetry'] },
        ],
      },
      'test',
    );
    await access.attach('app.dash', { kind: 'app', target: 'dash' }, 'test');

    expect(await access.complianceFacts()).toEqual({
      policies: [
        {
          name: 'fleet',
          attachedTo: expect.arrayContaining(['*', 'group:plc', 'device:loose-1']) as unknown,
          statements: [
            { effect: 'allow', actions: ['mqtt:subscribe', 'mqtt:receive'], topics: ['#'] },
            { effect: 'deny', actions: ['mqtt:publish'], topics: ['devices/+/cmd'] },
          ],
        },
      ],
      zones: [
        { name: 'control', securityLevel: 3, devices: 1 },
        { name: 'office', securityLevel: 1, devices: 0 },
      ],
      conduits: [
        {
          name: 'ctl-up',
          from: 'control',
          to: 'office',
          direction: 'one-way',
          topics: ['alarms/#', 'state/+'],
          rateCap: 10,
        },
      ],
      devicesInNoZone: ['loose-1'],
      appGrants: [
        { app: 'dash', effect: 'allow', actions: ['mqtt:subscribe'], topics: ['devices/+/telemetry'] },
      ],
    });
    expect((await access.complianceFacts()).policies[0]?.attachedTo).toHaveLength(3);
  });

  it('quarantines through the devices door with its event, once; refuses a revoked device', async () => {
    await devices.add({ id: 'q-1' }, 'test');
    const changed: (string | undefined)[] = [];
    access.onChange((id) => changed.push(id));
    await access.setQuarantine('q-1', { quarantined: true, reason: 'suspicious' }, 'user:olga');
    await access.setQuarantine('q-1', { quarantined: true }, 'user:olga'); // already: no second event
    expect((await devices.get('q-1')).state).toBe('quarantined');
    expect(await audit.query({ type: 'device.quarantined', limit: 10 })).toMatchObject([
      { subject: 'device:q-1', actor: 'user:olga', data: { reason: 'suspicious' } },
    ]);
    expect(changed).toEqual(['q-1']);
    await access.setQuarantine('q-1', { quarantined: false }, 'user:olga');
    expect((await devices.get('q-1')).state).toBe('registered');
    expect(await audit.query({ type: 'device.released', limit: 10 })).toHaveLength(1);

    await t.store.db.updateTable('devices').set({ status: 'revoked' }).where('id', '=', 'q-1').execute();
    await expect(access.setQuarantine('q-1', { quarantined: true }, 'test')).rejects.toMatchObject({
      code: 'device_revoked',
    });
    await expect(access.setQuarantine('nobody', { quarantined: true }, 'test')).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('a refused change writes nothing and records no event', async () => {
    await expect(access.attach('missing', { kind: 'all', target: '*' }, 'test')).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(access.deleteSegment('zone', 'nowhere', 'test')).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(access.deletePolicy('missing', 'test')).rejects.toMatchObject({ code: 'not_found' });
    await bus.flush();
    const types = (await audit.query({ limit: 100 })).map((e) => e.type);
    expect(types.filter((x) => x.startsWith('policy.') || x.startsWith('zone.'))).toEqual([]);
  });

  it('a policy deleted and created again under its name goes on from its last version', async () => {
    const doc = {
      version: '2026-11',
      statements: [{ sid: 's', effect: 'allow', actions: ['mqtt:publish'], resources: ['x/#'] }],
    };
    expect((await access.putPolicy('again', doc, 'test')).version).toBe(1);
    expect((await access.putPolicy('again', doc, 'test')).version).toBe(2);
    await access.deletePolicy('again', 'test');
    expect((await access.putPolicy('again', doc, 'test')).version).toBe(3);
    expect((await access.policyVersions('again')).map((v) => v.version)).toEqual([1, 2, 3]);
  });
});
