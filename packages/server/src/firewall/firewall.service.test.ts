import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { filterMatches, createRetainedStore } from '../broker/index.ts';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createFirewallService } from './firewall.service.ts';
import { defaultLimits } from './firewall.ts';

const box = createSecretBox(randomBytes(32));

describe('topic filters for retained delivery', () => {
  it('matches as MQTT does', () => {
    expect(filterMatches('a/b', 'a/b')).toBe(true);
    expect(filterMatches('a/+', 'a/b')).toBe(true);
    expect(filterMatches('a/+', 'a/b/c')).toBe(false);
    expect(filterMatches('a/#', 'a')).toBe(true); // [MQTT-4.7.1-2]: # includes the parent level
    expect(filterMatches('a/#', 'a/b/c')).toBe(true);
    expect(filterMatches('+/+', '/x')).toBe(true); // an empty level is a level
    expect(filterMatches('#', '$SYS/x')).toBe(false); // [MQTT-4.7.2-1]
    expect(filterMatches('+/x', '$SYS/x')).toBe(false);
    expect(filterMatches('$SYS/#', '$SYS/x')).toBe(true);
    expect(filterMatches('a/b', 'a/c')).toBe(false);
  });
});

for (const dialect of testDialects) {
  describe(`bans and retained messages in the store on ${dialect}`, () => {
    let t: TestStore;
    let clock: number;
    let audit: AuditLog;
    let bus: EventBus;
    const errors: unknown[] = [];

    const busOn = async (store: Store) => {
      const log = createAuditLog({
        db: store.db,
        mac: box,
        now: Date.now,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await log.ensureAnchor();
      return { log, bus: createEventBus({ log, db: store.db }) };
    };
    const service = (store: Store, events: EventBus) =>
      createFirewallService({
        db: store.db,
        events,
        now: () => clock,
        limits: { ...defaultLimits, failureThreshold: 2, banDurationMs: 60_000 },
        onError: (err) => errors.push(err),
      });

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 1_000_000;
      ({ log: audit, bus } = await busOn(t.store));
      errors.length = 0;
    });
    afterEach(async () => {
      await bus.close();
      await t.cleanup();
    });

    it('stores an automatic ban with its rule and expiry, lists it, and lifts it', async () => {
      const fw = service(t.store, bus);
      await fw.reload();
      fw.firewall.recordRefusal('0A:1B');
      expect(fw.firewall.recordRefusal('0a1b')).toMatchObject({ rule: 'refused_connects' });
      await expect.poll(async () => (await fw.list()).length).toBe(1);
      const [ban] = await fw.list();
      expect(ban).toMatchObject({
        kind: 'certificate',
        value: 'a1b',
        origin: 'automatic',
        rule: 'refused_connects',
        actor: 'system',
        expiresAt: clock + 60_000,
        active: true,
      });
      // The event follows the row (the broker drops live sessions on it, other nodes reload on it).
      await expect
        .poll(async () => (await audit.query({ type: 'firewall.ban_created', limit: 5 })).map((e) => e.data))
        .toEqual([
          expect.objectContaining({
            id: ban!.id,
            origin: 'automatic',
            rule: 'refused_connects',
            value: 'a1b',
          }),
        ]);
      // Another node on the same store enforces it after a reload (what the audit-log tail triggers).
      const other = service(t.store, (await busOn(t.store)).bus);
      await other.reload();
      expect(other.firewall.certificateBan('0A1B')).toMatch(/refused connects/);

      await fw.remove(ban!.id, 'operator');
      expect(await fw.list()).toEqual([]);
      expect(fw.firewall.certificateBan('0A1B')).toBeUndefined();
      expect(fw.firewall.recordRefusal('0A1B')).toBeUndefined(); // counting starts afresh
      expect((await audit.query({ type: 'firewall.ban_removed', limit: 5 }))[0]?.data).toMatchObject({
        id: ban!.id,
        origin: 'automatic',
      });
      expect(errors).toEqual([]);
    });

    it('validates manual bans at the edge and changes nothing on bad input', async () => {
      const fw = service(t.store, bus);
      await expect(fw.add({ kind: 'address', value: '10.0.0.0/33', reason: 'x' }, 'op')).rejects.toThrow(
        /IP address or CIDR/,
      );
      await expect(fw.add({ kind: 'certificate', value: 'xyz', reason: 'x' }, 'op')).rejects.toThrow(
        /certificate serial in hex/,
      );
      await expect(fw.add({ kind: 'host', value: 'a', reason: 'x' }, 'op')).rejects.toThrow(
        /address, device, certificate/,
      );
      await expect(fw.add({ kind: 'device', value: 'pump-1', reason: ' ' }, 'op')).rejects.toThrow(/reason/);
      expect(await fw.list()).toEqual([]);
      const ban = await fw.add({ kind: 'certificate', value: '00:AB:CD', reason: 'leaked key' }, 'op');
      expect(ban).toMatchObject({ value: 'abcd', origin: 'manual', rule: null, expiresAt: null });
      expect(fw.firewall.admitDevice('pump-1', 'ABCD')).toMatchObject({ ok: false });
    });

    it('deletes bans a week after they expired, keeps them listed until then', async () => {
      const fw = service(t.store, bus);
      await fw.add({ kind: 'device', value: 'old-1', reason: 'test', ttlMs: 1000 }, 'op');
      clock += 2000;
      await fw.reload();
      expect((await fw.list()).map((b) => b.active)).toEqual([false]);
      clock += 7 * 86_400_000;
      await fw.reload();
      expect(await fw.list()).toEqual([]);
    });

    it('retained messages: quotas, clearing, binary payloads, and loading into a new broker', async () => {
      const limits = { perDevice: 2, bytesPerDevice: 64, total: 3, bytesTotal: 1000 };
      const retained = createRetainedStore({ db: t.store.db, now: () => clock, limits });
      await retained.load();
      const binary = Buffer.from([0, 255, 1, 254]);
      const put = (device: string, topic: string, payload: Buffer | string) => {
        const v = retained.retain(device, { topic, payload: Buffer.from(payload), qos: 1 });
        return v.ok ? v.stored.then(() => 'ok') : Promise.resolve(v.reason);
      };
      expect(await put('d1', 'devices/d1/a', binary)).toBe('ok');
      expect(await put('d1', 'devices/d1/b', 'x')).toBe('ok');
      // Replacing its own message does not count twice.
      expect(await put('d1', 'devices/d1/b', 'y')).toBe('ok');
      expect(await put('d1', 'devices/d1/c', 'z')).toMatch(/already holds 2/);
      expect(await put('d2', 'devices/d2/a', 'x'.repeat(60))).toMatch(/exceed 64 bytes/);
      expect(await put('d2', 'devices/d2/a', 'ok')).toBe('ok');
      expect(await put('d3', 'devices/d3/a', 'x')).toMatch(/broker already holds 3/);
      expect(retained.usage()).toEqual({ count: 3, bytes: 4 + 12 + 1 + 12 + 2 + 12 });
      expect(await put('d1', 'devices/d1/a', '')).toBe('ok'); // cleared: quota back
      expect(await put('d3', 'devices/d3/a', 'x')).toBe('ok');

      const reopened = createRetainedStore({ db: (await t.openAnother()).db, now: () => clock, limits });
      expect(await reopened.load()).toBe(3);
      expect(reopened.usage('d1')).toEqual({ count: 1, bytes: 13 });
      const matched = [...reopened.match(['devices/+/a', 'devices/d1/#', 'devices/d2/a'])];
      expect(matched.map((m) => `${m.topic}=${String(m.payload)}`).sort()).toEqual([
        'devices/d1/b=y',
        'devices/d2/a=ok',
        'devices/d3/a=x',
      ]);
      expect(await put('d3', 'devices/d3/a', '')).toBe('ok');
      expect(await put('d2', 'devices/d2/bin', binary)).toBe('ok');
      const again = createRetainedStore({ db: t.store.db, now: () => clock, limits });
      await again.load();
      expect([...again.match(['devices/d2/bin'])][0]).toMatchObject({ payload: binary, qos: 1 });
    });
  });
}
