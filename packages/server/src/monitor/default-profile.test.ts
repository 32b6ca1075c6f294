import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, subjectOf, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { waitFor } from '../test-support/wait.ts';
import { createMonitor, installDefaultProfile, type Monitor } from './index.ts';

/**
 * Issue 17: a new installation's `default` profile answers a signed tamper report with an automatic
 * quarantine (the report is verified and becomes `device.tamper_reported` in the attestation module); other
 * physical-security alerts only alert.
 */
describe.each(testDialects)('the default security profile on %s', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let monitor: Monitor;
  let quarantined: { deviceId: string; reason: string; actor: string }[];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    const audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => Date.now(),
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    quarantined = [];
    monitor = createMonitor({
      db: t.store.db,
      events: bus,
      now: () => Date.now(),
      settings: {
        tickInterval: 60_000,
        saveInterval: 60_000,
        baselineInterval: 60_000,
        silentAfter: 600_000,
      },
      deviceInfo: (id) =>
        Promise.resolve({
          group: 'meters',
          zone: null,
          quarantined: quarantined.some((q) => q.deviceId === id),
        }),
      actions: {
        quarantine: (deviceId, reason, actor) => {
          quarantined.push({ deviceId, reason, actor });
          return Promise.resolve();
        },
        revoke: () => Promise.reject(new Error('not expected')),
        banAddress: () => Promise.reject(new Error('not expected')),
        disableUser: () => Promise.reject(new Error('not expected')),
      },
      isActiveUser: () => Promise.resolve(false),
      groups: () => Promise.resolve([]),
      onError: (err) => {
        throw err;
      },
    });
    await installDefaultProfile(monitor);
    await monitor.start();
  });
  afterEach(async () => {
    await monitor.stop();
    await bus.close();
    await t.cleanup();
  });

  it('quarantines a device that reports tampering, once per open alert', async () => {
    const report = (seq: number, reason: string) =>
      bus.emit({
        type: 'device.tamper_reported',
        actor: subjectOf.device('meter-1'),
        subject: subjectOf.device('meter-1'),
        data: { reason, source: 'tamper', reportedAt: Date.now(), seq, keyId: '0a1b' },
      });
    await report(1, 'enclosure-opened');
    const alert = await waitFor('the tamper alert with its quarantine', async () => {
      const [a] = await monitor.alerts.list({ detector: 'tamper_report', deviceId: 'meter-1' });
      return a?.responsesRun.some((r) => r.action === 'quarantine' && r.ok) ? a : undefined;
    });
    expect(alert).toMatchObject({
      severity: 'high',
      status: 'open',
      title: 'meter-1 reported tampering: enclosure-opened',
    });
    expect(alert.responsesRun).toEqual([
      expect.objectContaining({ action: 'quarantine', automatic: true, actor: 'system', ok: true }),
    ]);
    expect(quarantined).toEqual([
      { deviceId: 'meter-1', reason: `alert ${alert.id}: ${alert.title}`, actor: 'system' },
    ]);

    // A second report joins the open alert (its reasons listed) without a second quarantine.
    await report(2, 'debug-port-enabled');
    const again = await waitFor('the second report on the alert', async () => {
      const a = await monitor.alerts.get(alert.id);
      return a.occurrences === 2 ? a : undefined;
    });
    expect(again.evidence.reasons).toEqual(['enclosure-opened', 'debug-port-enabled']);
    expect(quarantined).toHaveLength(1);
  });

  it('raises the other physical-security alerts without an automatic response', async () => {
    await bus.emit({
      type: 'device.lost_seen',
      actor: 'system',
      subject: subjectOf.device('cam-3'),
      data: { via: 'mqtt', remoteAddress: '203.0.113.9', certSerial: '0f' },
    });
    const alert = await waitFor('the lost device alert', async () => {
      const [a] = await monitor.alerts.list({ detector: 'lost_device_seen', deviceId: 'cam-3' });
      return a;
    });
    expect(alert).toMatchObject({
      severity: 'critical',
      title: 'lost device cam-3 seen again via mqtt from 203.0.113.9',
      responsesRun: [],
    });
    expect(quarantined).toEqual([]);
  });
});
