import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import type { EventBus } from '../events/index.ts';
import { createAuditedEvents } from '../test-support/audited-events.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createMonitor, installDefaultProfile, type Monitor } from './index.ts';

/** The monitor's compliance facts: profiles with attachments, detectors and automatic responses; groups; alerts. */
describe.each(testDialects)('monitor compliance facts on %s', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let devices: DeviceService;
  let monitor: Monitor;
  const now = 1_800_000_000_000;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    ({ bus } = await createAuditedEvents(t.store.db, { now: () => now }));
    devices = createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: 86_400_000 });
    monitor = createMonitor({
      db: t.store.db,
      events: bus,
      now: () => now,
      settings: { tickInterval: 1000, saveInterval: 60_000, baselineInterval: 60_000, silentAfter: 600_000 },
      deviceInfo: () => Promise.resolve(undefined),
      actions: {
        quarantine: () => Promise.resolve(),
        revoke: () => Promise.resolve(),
        banAddress: () => Promise.resolve(),
        disableUser: () => Promise.resolve(),
      },
      isActiveUser: () => Promise.resolve(false),
      groups: () => devices.groups(),
      onError: (err) => {
        throw err;
      },
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  it('states profiles, the fleet groups in service and the alerts not resolved', async () => {
    await installDefaultProfile(monitor);
    await monitor.profiles.put(
      'pumps',
      {
        behaviours: [
          { name: 'burst', metric: 'messages_sent', operator: 'gt', threshold: 30, severity: 'high' },
        ],
        builtins: { new_topic: { enabled: false }, unusual_hour: { enabled: false } },
        responses: [
          { action: 'notify', detectors: ['burst', 'guessing'], mode: 'automatic' },
          { action: 'revoke', detectors: ['burst'], mode: 'manual' },
        ],
      },
      'test',
    );
    await monitor.profiles.attach('pumps', { kind: 'group', target: 'pumps' }, 'test');
    await monitor.profiles.attach('pumps', { kind: 'device', target: 'p-9' }, 'test');
    await devices.add({ id: 'p-1', group: 'pumps' }, 'test');
    await devices.add({ id: 'p-2', group: 'pumps' }, 'test');
    await devices.add({ id: 'x-1' }, 'test');
    await devices.add({ id: 'gone', group: 'old' }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'revoked' }).where('id', '=', 'gone').execute();
    const alert = (id: string, status: string, firstSeen: number) => ({
      id,
      dedupe_key: `burst|device:${id}`,
      detector: 'burst',
      subject: `device:${id}`,
      device_id: id,
      severity: 'high',
      status,
      title: 'burst',
      evidence: '{}',
      occurrences: 1,
      first_seen: firstSeen,
      last_seen: firstSeen,
      assignee: null,
      notes: '[]',
      acknowledged_at: null,
      acknowledged_by: null,
      resolved_at: null,
      resolved_by: null,
      resolution: null,
      responses: '[]',
      updated_at: firstSeen,
    });
    await t.store.db
      .insertInto('alerts')
      .values([
        alert('a-1', 'open', now - 5000),
        alert('a-2', 'acknowledged', now - 9000),
        alert('a-3', 'resolved', now),
      ])
      .execute();

    const facts = await monitor.complianceFacts();
    expect(facts.profiles).toEqual([
      {
        name: 'default',
        attachedTo: ['*'],
        detectors: [
          'guessing',
          'cloned_identity',
          'device_silent',
          'new_source_network',
          'new_topic',
          'unusual_hour',
          'topic_scan',
          'payload_flood',
          'firmware_downgrade',
          'baseline_anomaly',
          'tamper_report',
          'location_jump',
          'attestation_failed',
          'lost_device_seen',
        ],
        responses: [
          { detector: 'payload_flood', action: 'quarantine' },
          { detector: 'tamper_report', action: 'quarantine' },
        ],
      },
      {
        name: 'pumps',
        attachedTo: expect.arrayContaining(['group:pumps', 'device:p-9']) as unknown,
        detectors: [
          'guessing',
          'cloned_identity',
          'device_silent',
          'new_source_network',
          'topic_scan',
          'payload_flood',
          'firmware_downgrade',
          'baseline_anomaly',
          'tamper_report',
          'location_jump',
          'attestation_failed',
          'lost_device_seen',
          'burst',
        ],
        responses: [
          { detector: 'burst', action: 'notify' },
          { detector: 'guessing', action: 'notify' },
        ],
      },
    ]);
    expect(facts.groups).toEqual([
      { group: '', devices: 1 },
      { group: 'pumps', devices: 2 },
    ]);
    expect(facts.openAlerts).toEqual([
      { id: 'a-2', detector: 'burst', severity: 'high', subject: 'device:a-2', openedAt: now - 9000 },
      { id: 'a-1', detector: 'burst', severity: 'high', subject: 'device:a-1', openedAt: now - 5000 },
    ]);
  });

  it('refuses to state facts without the fleet groups (a check would pass on nothing)', async () => {
    const bare = createMonitor({
      db: t.store.db,
      events: bus,
      now: () => now,
      settings: { tickInterval: 1000, saveInterval: 60_000, baselineInterval: 60_000, silentAfter: 600_000 },
      deviceInfo: () => Promise.resolve(undefined),
      actions: {
        quarantine: () => Promise.resolve(),
        revoke: () => Promise.resolve(),
        banAddress: () => Promise.resolve(),
        disableUser: () => Promise.resolve(),
      },
      isActiveUser: () => Promise.resolve(false),
      onError: () => undefined,
    });
    await expect(bare.complianceFacts()).rejects.toThrow(/groups/);
  });
});
