import { describe, expect, it } from 'vitest';
import { compileDeviceAccess, compilePolicies, QUARANTINE_POLICY } from './index.ts';

describe('default device access (own subtree only)', () => {
  const access = compileDeviceAccess({ deviceId: 'pump-1', group: null });

  it.each([
    ['devices/pump-1/telemetry', true],
    ['devices/pump-1', true],
    ['devices/pump-1/a/b/c', true],
    ['devices/pump-10/telemetry', false],
    ['devices/pump-/telemetry', false],
    ['devices/pump-1x', false],
    ['devices/other/telemetry', false],
    ['devices', false],
    ['pump-1/telemetry', false],
    ['$SYS/broker/load', false],
    ['$share/g/devices/pump-1/x', false],
    ['/devices/pump-1/x', false],
  ])('publish %s → %s', (topic, allowed) => {
    expect(access.publish(topic).allow).toBe(allowed);
    expect(access.receive(topic)).toBe(allowed);
  });

  it.each([
    ['devices/pump-1/#', true],
    ['devices/pump-1/+/state', true],
    ['devices/+/telemetry', false],
    ['devices/#', false],
    ['#', false],
    ['+/pump-1/#', false],
    ['$SYS/#', false],
    ['$share/group/devices/pump-1/#', false],
    ['devices/pump-1+/#', false],
  ])('subscribe %s → %s', (filter, allowed) => {
    const decision = access.subscribe(filter);
    expect(decision.allow).toBe(allowed);
    expect(decision.reason).toMatch(
      allowed
        ? 'allowed'
        : /reserved_topic|no_matching_statement|subscription_broader_than_rights|invalid_topic/,
    );
    if (allowed) expect(decision.statement).toBe('own-topics');
  });
});

describe('quarantine: the device keeps its quarantine subtree and its commands', () => {
  const access = compilePolicies({
    ctx: {
      deviceId: 'pump-1',
      group: null,
      zone: null,
      attributes: {},
      cert: { cn: 'pump-1' },
      state: 'quarantined',
      sourceAddress: null,
    },
    policies: [QUARANTINE_POLICY],
    segmentation: { zones: [], conduits: [] },
    deviceZone: () => undefined,
  });

  it.each([
    ['subscribe', 'devices/pump-1/commands/+', true],
    ['subscribe', 'devices/pump-1/commands/reboot', true],
    ['subscribe', 'devices/pump-1/commands/#', false],
    ['subscribe', 'devices/pump-1/#', false],
    ['subscribe', 'devices/pump-2/commands/+', false],
    ['receive', 'devices/pump-1/commands/ping', true],
    ['receive', 'devices/pump-1/commands/ping/result', false],
    ['publish', 'devices/pump-1/commands/ping/result', true],
    ['publish', 'devices/pump-1/commands/ping', false],
    ['publish', 'devices/pump-2/commands/ping/result', false],
    ['publish', 'devices/pump-1/telemetry', false],
    ['publish', 'devices/pump-1/quarantine/report', true],
  ] as const)('%s %s → %s', (action, topic, allowed) => {
    const decision =
      action === 'subscribe'
        ? access.subscribe(topic)
        : action === 'publish'
          ? access.publish(topic)
          : access.receiveDecision(topic);
    expect(decision.allow).toBe(allowed);
  });
});
