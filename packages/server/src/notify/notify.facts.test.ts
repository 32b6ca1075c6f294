import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../test-support/notify-receivers.ts';
import { deliversAuditLog } from './index.ts';
import { createNotifyService, type NotifyService } from './notify.service.ts';

describe('which channels export the audit log', () => {
  it('is a filter that lets every event type through at any severity', () => {
    expect(deliversAuditLog({ types: ['*'] })).toBe(true);
    expect(deliversAuditLog({ types: ['alert.*', '*'] })).toBe(true);
    expect(deliversAuditLog({ types: ['alert.*', 'response.*'] })).toBe(false);
    expect(deliversAuditLog({ types: ['*'], minSeverity: 'high' })).toBe(false);
  });
});

describe.each(testDialects)('notification exporter facts on %s', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let notify: NotifyService;
  let clock = 0;
  const receivers: WebhookReceiver[] = [];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    const box = createSecretBox(randomBytes(32));
    const audit = createAuditLog({
      db: t.store.db,
      mac: box,
      now: Date.now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit });
    clock = Date.now();
    notify = createNotifyService({
      db: t.store.db,
      box,
      events: bus,
      audit,
      now: () => clock,
      settings: { pollInterval: 20, retryBase: 100, retryMax: 400, timeout: 2000, nodeId: 'node-a' },
    });
  });
  afterEach(async () => {
    await notify.stop();
    for (const r of receivers.splice(0)) await r.close();
    await bus.close();
    await t.cleanup();
  });

  const receiver = async (status: number) => {
    const r = await startWebhookReceiver({ answer: () => status });
    receivers.push(r);
    return r;
  };
  const added = (n: number) =>
    bus.emit({ type: 'device.added', actor: 'test', subject: `device:d-${n}`, data: { group: null } });

  it('states the whole-log channels with their lag, failures and last delivery', async () => {
    const up = await receiver(204);
    const down = await receiver(503);
    await notify.create({ name: 'siem', kind: 'webhook', target: up.url, filter: { types: ['*'] } }, 'test');
    await notify.create(
      { name: 'broken', kind: 'webhook', target: down.url, filter: { types: ['*'] } },
      'test',
    );
    await notify.create({ name: 'alerts', kind: 'webhook', target: up.url }, 'test');
    await notify.create(
      { name: 'paused', kind: 'webhook', target: up.url, filter: { types: ['*'] }, enabled: false },
      'test',
    );
    for (let i = 0; i < 3; i++) await added(i);
    await notify.runOnce();
    await notify.runOnce(); // what the first round recorded (the failing channel's event) reaches `siem`

    const facts = Object.fromEntries((await notify.exporterFacts()).map((f) => [f.name, f]));
    expect(Object.keys(facts).sort()).toEqual(['broken', 'paused', 'siem']); // `alerts` notifies, not exports
    expect(facts.siem).toEqual({
      name: 'siem',
      kind: 'webhook',
      enabled: true,
      lag: 0,
      failures: 0,
      lastDeliveredAt: clock,
    });
    expect(facts.broken).toMatchObject({ enabled: true, lastDeliveredAt: null });
    expect(facts.broken?.lag).toBeGreaterThanOrEqual(3); // stuck at the first entry after its creation
    expect(facts.broken?.failures).toBeGreaterThan(0);
    expect(facts.paused).toMatchObject({ enabled: false, failures: 0 });
    expect(facts.paused?.lag).toBeGreaterThanOrEqual(3);
  });
});
