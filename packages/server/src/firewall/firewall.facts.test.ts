import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createFirewallService, type FirewallService } from './firewall.service.ts';
import { defaultLimits } from './firewall.ts';

describe.each(testDialects)('firewall facts on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let service: FirewallService;
  let clock = 1_000_000;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: Date.now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    clock = 1_000_000;
    service = createFirewallService({
      db: t.store.db,
      events: bus,
      now: () => clock,
      limits: { ...defaultLimits, connectRate: 5 },
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  it('counts bans in force by kind and origin, expired ones apart, and states the limits in force', async () => {
    await service.add({ kind: 'address', value: '203.0.113.0/24', reason: 'scanner' }, 'test');
    await service.add({ kind: 'device', value: 'pump-1', reason: 'stolen', ttlMs: 1000 }, 'test');
    await service.addAutomatic({
      kind: 'certificate',
      value: '0a0b',
      rule: 'refused_connects',
      reason: 'refused',
      until: clock + 60_000,
    });
    expect(await service.facts()).toEqual({
      bans: {
        active: 3,
        expired: 0,
        byKind: { address: 1, device: 1, certificate: 1 },
        automatic: 1,
        manual: 2,
      },
      limits: { ...defaultLimits, connectRate: 5 },
    });
    clock += 2000;
    expect((await service.facts()).bans).toMatchObject({ active: 2, expired: 1, byKind: { device: 0 } });
  });

  it('states the limits the compliance checks compare and the bans in force', async () => {
    await service.add({ kind: 'address', value: '198.51.100.7', reason: 'scanner' }, 'test');
    await service.add({ kind: 'device', value: 'pump-3', reason: 'stolen', ttlMs: 1000 }, 'test');
    const d = defaultLimits;
    expect(await service.complianceFacts()).toEqual({
      limits: {
        connectRate: 5,
        maxConnectionsPerAddress: d.maxConnectionsPerAddress,
        failureThreshold: d.failureThreshold,
        banDurationMs: d.banDurationMs,
        publishRate: d.publishRate,
        maxPayloadBytes: d.maxPayloadBytes,
        maxSubscriptions: d.maxSubscriptions,
      },
      activeBans: 2,
    });
    clock += 2000;
    expect((await service.complianceFacts()).activeBans).toBe(1);
  });

  it('stores a ban and its event together; a removal too', async () => {
    const ban = await service.add({ kind: 'device', value: 'pump-2', reason: 'stolen' }, 'user:olga');
    await service.remove(ban.id, 'user:olga');
    await expect(service.remove(ban.id, 'user:olga')).rejects.toMatchObject({ code: 'not_found' });
    const entries = await audit.query({ limit: 100 });
    expect(entries.map((e) => [e.type, e.subject])).toEqual([
      ['firewall.ban_created', 'device:pump-2'],
      ['firewall.ban_removed', 'device:pump-2'],
    ]);
    expect(await service.list()).toEqual([]);
  });
});
