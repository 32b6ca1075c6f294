import { describe, expect, it } from 'vitest';
import { createFirewall, defaultLimits, TokenBucket, type AutomaticBan } from './index.ts';

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

  it('bans addresses and CIDRs until they expire, devices and certificates', () => {
    let t = 0;
    const fw = createFirewall(defaultLimits, () => t);
    fw.setBans([
      { kind: 'address', value: '203.0.113.0/24', reason: 'scanner', expiresAt: 1000 },
      { kind: 'address', value: '2001:db8::1', reason: 'abuse', expiresAt: null },
      { kind: 'device', value: 'pump-9', reason: 'stolen', expiresAt: null },
      { kind: 'device', value: 'old', reason: 'expired', expiresAt: -1 },
      { kind: 'certificate', value: '0a:3F', reason: 'leaked key', expiresAt: null },
    ]);
    expect(fw.admitConnection('203.0.113.77')).toBe('address banned: scanner');
    expect(fw.admitConnection('2001:db8::1')).toBe('address banned: abuse');
    expect(fw.admitDevice('pump-9')).toMatchObject({ ok: false, reason: 'device banned: stolen' });
    expect(fw.admitDevice('old')).toEqual({ ok: true });
    // Serials compare in canonical form, whatever form Node or the operator wrote them in.
    expect(fw.certificateBan('A3F')).toBe('leaked key');
    expect(fw.admitDevice('pump-1', '0A3F')).toMatchObject({
      ok: false,
      reason: 'certificate banned: leaked key',
    });
    expect(fw.admitDevice('pump-1', 'A40')).toEqual({ ok: true });
    t = 2000; // expired without any reload
    expect(fw.admitConnection('203.0.113.77')).toBeUndefined();
    fw.setBans([{ kind: 'device', value: 'pump-8', reason: 'short', expiresAt: 3000 }]);
    expect(fw.admitDevice('pump-8').ok).toBe(false);
    t = 3001;
    expect(fw.admitDevice('pump-8').ok).toBe(true);
  });

  it('never bans an address for failures: it bans the certificate that kept being refused', () => {
    let t = 0;
    const bans: AutomaticBan[] = [];
    const fw = createFirewall(
      { ...defaultLimits, failureThreshold: 3, banDurationMs: 5000 },
      () => t,
      (b) => bans.push(b),
    );
    expect(fw.recordRefusal('AB01')).toBeUndefined();
    expect(fw.recordRefusal('ab:01')).toBeUndefined();
    const ban = fw.recordRefusal('AB01');
    expect(ban).toMatchObject({ kind: 'certificate', value: 'ab01', rule: 'refused_connects', until: 5000 });
    expect(bans).toEqual([ban]);
    // In force at once on this node, before the store has it; the address is untouched.
    expect(fw.certificateBan('AB01')).toMatch(/3 refused connects/);
    expect(fw.admitConnection('10.9.9.9')).toBeUndefined();
    expect(fw.admitDevice('other', 'CD02')).toEqual({ ok: true });
    // Refusals of a banned certificate do not ban it again.
    expect(fw.recordRefusal('AB01')).toBeUndefined();
    t = 5001;
    expect(fw.certificateBan('AB01')).toBeUndefined();
  });

  it('a ban back from the store is enforced from there; lifting it starts the identity afresh', () => {
    const t = 0;
    const fw = createFirewall({ ...defaultLimits, failureThreshold: 2, banDurationMs: 5000 }, () => t);
    fw.recordRefusal('01');
    const ban = fw.recordRefusal('01')!;
    fw.setBans([{ kind: 'certificate', value: ban.value, reason: ban.reason, expiresAt: ban.until }]);
    expect(fw.certificateBan('01')).toBeDefined();
    // Removed from the store (ban remove): the reload no longer has it, and forget() clears the counters.
    fw.setBans([]);
    fw.forget('certificate', '01');
    expect(fw.certificateBan('01')).toBeUndefined();
    expect(fw.recordRefusal('01')).toBeUndefined();
  });

  it('bans a flapping device, not its address', () => {
    const t = 0;
    const bans: AutomaticBan[] = [];
    const fw = createFirewall(
      { ...defaultLimits, flapThreshold: 3 },
      () => t,
      (b) => bans.push(b),
    );
    for (let i = 0; i < 3; i++) expect(fw.admitDevice('flappy').ok).toBe(true);
    expect(fw.admitDevice('flappy')).toMatchObject({ ok: false, ban: { kind: 'device', rule: 'flapping' } });
    expect(fw.admitDevice('flappy')).toMatchObject({ ok: false, reason: /device banned: flapping/ });
    expect(bans).toHaveLength(1);
    expect(fw.admitConnection('10.1.1.1')).toBeUndefined();
    expect(fw.admitDevice('neighbour').ok).toBe(true);
    fw.forget('device', 'flappy');
    expect(fw.admitDevice('flappy').ok).toBe(true);
  });

  it('bans an identity whose sessions keep taking each other over (two agents, one identity)', () => {
    let t = 0;
    const bans: AutomaticBan[] = [];
    const fw = createFirewall(
      { ...defaultLimits, takeoverThreshold: 3 },
      () => t,
      (b) => bans.push(b),
    );
    // A restart takes over a stale session once now and then: never a ban.
    expect(fw.recordTakeover('restarted', '10.0.0.1')).toBeUndefined();
    t = 61_000;
    expect(fw.recordTakeover('restarted', '10.0.0.1')).toBeUndefined();
    t = 122_000;
    expect(fw.recordTakeover('restarted', '10.0.0.1')).toBeUndefined();
    expect(bans).toEqual([]);
    // Two agents take turns within seconds, here behind one address.
    expect(fw.recordTakeover('clone', '::ffff:10.0.0.2')).toBeUndefined();
    expect(fw.recordTakeover('clone', '10.0.0.2')).toBeUndefined();
    const conflict = fw.recordTakeover('clone', '10.0.0.3');
    expect(conflict).toMatchObject({
      takeovers: 3,
      addresses: ['10.0.0.2', '10.0.0.3'],
      ban: { kind: 'device', value: 'clone', rule: 'cloned_identity' },
    });
    expect(fw.admitDevice('clone')).toMatchObject({ ok: false, reason: /cloned identity/ });
    expect(fw.admitConnection('10.0.0.2')).toBeUndefined();
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
