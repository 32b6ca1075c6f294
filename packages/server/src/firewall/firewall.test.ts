import { describe, expect, it } from 'vitest';
import { createFirewall, defaultLimits, TokenBucket } from './index.ts';

describe('firewall (pure, with a fake clock)', () => {
  it('token bucket: burst, then rate, and the wait until the next token', () => {
    const b = new TokenBucket(10, 3, 0);
    expect([b.take(1, 0), b.take(1, 0), b.take(1, 0)]).toEqual([0, 0, 0]);
    expect(b.take(1, 0)).toBe(100);
    expect(b.take(1, 100)).toBe(0);
  });

  it('refuses connections over the rate and the concurrent cap, and counts closes', () => {
    let t = 0;
    const fw = createFirewall(
      { ...defaultLimits, connectRate: 1, connectBurst: 2, maxConnectionsPerAddress: 3 },
      () => t,
    );
    expect(fw.admitConnection('10.0.0.1')).toBeUndefined();
    expect(fw.admitConnection('10.0.0.1')).toBeUndefined();
    expect(fw.admitConnection('10.0.0.1')).toBe('connection rate exceeded');
    expect(fw.admitConnection('10.0.0.2')).toBeUndefined(); // per address
    t = 1000;
    expect(fw.admitConnection('::ffff:10.0.0.1')).toBeUndefined(); // the same address, IPv4-mapped
    t = 2000;
    expect(fw.admitConnection('10.0.0.1')).toBe('too many concurrent connections from this address');
    fw.connectionClosed('10.0.0.1');
    t = 3000;
    expect(fw.admitConnection('10.0.0.1')).toBeUndefined();
  });

  it('bans addresses and CIDRs until they expire, and devices', () => {
    let t = 0;
    const fw = createFirewall(defaultLimits, () => t);
    fw.setBans([
      { kind: 'address', value: '203.0.113.0/24', reason: 'scanner', expiresAt: 1000 },
      { kind: 'address', value: '2001:db8::1', reason: 'abuse', expiresAt: null },
      { kind: 'device', value: 'pump-9', reason: 'stolen', expiresAt: null },
      { kind: 'device', value: 'old', reason: 'expired', expiresAt: -1 },
    ]);
    expect(fw.admitConnection('203.0.113.77')).toBe('address banned: scanner');
    expect(fw.admitConnection('2001:db8::1')).toBe('address banned: abuse');
    expect(fw.admitDevice('pump-9', '10.0.0.1')).toEqual({ ok: false, reason: 'device banned: stolen' });
    expect(fw.admitDevice('old', '10.0.0.1')).toEqual({ ok: true });
    t = 2000; // expired without any reload
    expect(fw.admitConnection('203.0.113.77')).toBeUndefined();
    fw.setBans([{ kind: 'device', value: 'pump-8', reason: 'short', expiresAt: 3000 }]);
    expect(fw.admitDevice('pump-8', '10.0.0.1').ok).toBe(false);
    t = 3001;
    expect(fw.admitDevice('pump-8', '10.0.0.1').ok).toBe(true);
  });

  it('bans an address after repeated failures, for a while', () => {
    let t = 0;
    const fw = createFirewall({ ...defaultLimits, failureThreshold: 3, banDurationMs: 5000 }, () => t);
    expect(fw.recordFailure('10.9.9.9').banned).toBe(false);
    expect(fw.recordFailure('10.9.9.9').banned).toBe(false);
    expect(fw.recordFailure('10.9.9.9')).toEqual({ banned: true, until: 5000 });
    expect(fw.admitConnection('10.9.9.9')).toMatch(/temporarily banned/);
    t = 5001;
    expect(fw.admitConnection('10.9.9.9')).toBeUndefined();
  });

  it('detects flapping by device and bans device and address', () => {
    const t = 0;
    const fw = createFirewall({ ...defaultLimits, flapThreshold: 3 }, () => t);
    for (let i = 0; i < 3; i++) expect(fw.admitDevice('flappy', '10.1.1.1').ok).toBe(true);
    expect(fw.admitDevice('flappy', '10.1.1.1')).toMatchObject({ ok: false, flapping: true });
    expect(fw.admitDevice('flappy', '10.1.1.2')).toMatchObject({ ok: false });
    expect(fw.admitConnection('10.1.1.1')).toMatch(/temporarily banned/);
  });

  it('throttles a device over its publish quota, then disconnects it; enforces shape limits', () => {
    const t = 0;
    const fw = createFirewall(
      {
        ...defaultLimits,
        publishRate: 10,
        publishBurst: 2,
        throttlesBeforeDisconnect: 2,
        maxPayloadBytes: 100,
        maxTopicLength: 20,
        maxTopicLevels: 3,
      },
      () => t,
    );
    expect(fw.checkPublish('d', 'devices/d/x', 10)).toEqual({ ok: true });
    expect(fw.checkPublish('d', 'devices/d/x', 10)).toEqual({ ok: true });
    expect(fw.checkPublish('d', 'devices/d/x', 10)).toMatchObject({
      ok: false,
      action: 'throttle',
      waitMs: 100,
    });
    expect(fw.checkPublish('d', 'devices/d/x', 10)).toMatchObject({ ok: false, action: 'throttle' });
    expect(fw.checkPublish('d', 'devices/d/x', 10)).toMatchObject({ ok: false, action: 'disconnect' });
    expect(fw.checkPublish('e', 'devices/e/x', 101)).toMatchObject({
      action: 'disconnect',
      reason: /payload of 101 bytes/,
    });
    expect(fw.checkPublish('e', 'devices/e/xxxxxxxxxxxxxxxxxxxx', 1)).toMatchObject({
      action: 'disconnect',
      reason: /longer than 20/,
    });
    expect(fw.checkPublish('e', 'devices/e/x/y', 1)).toMatchObject({
      action: 'disconnect',
      reason: /deeper than 3/,
    });
    expect(fw.checkSubscriptionCount(defaultLimits.maxSubscriptions + 1)).toMatch(/more than/);
  });
});
