import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog, createEventBus, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createDeviceService, type DeviceService } from './index.ts';

/** The device's operational state, kept from events, on each dialect (the SQL differs underneath). */
describe.each(testDialects)('device state on %s', (dialect) => {
  let t: TestStore;
  let bus: EventBus;
  let devices: DeviceService;
  let stop: () => void;
  const now = 1_800_000_000_000;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    const audit = createAuditLog({
      db: t.store.db,
      mac: createSecretBox(randomBytes(32)),
      now: () => now,
      isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      headFile: path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-dev-')), 'head.json'),
    });
    await audit.ensureAnchor();
    bus = createEventBus({ log: audit, db: t.store.db });
    devices = createDeviceService({ db: t.store.db, events: bus, now: () => now, tokenTtlMs: 60_000, audit });
    stop = await devices.follow(bus, (err) => {
      throw err;
    });
  });
  afterEach(async () => {
    stop();
    await bus.close();
    await t.cleanup();
  });

  const session = (type: 'mqtt.connected' | 'mqtt.disconnected' | 'mqtt.session_dropped', id: string) =>
    type === 'mqtt.connected'
      ? bus.emit({
          type,
          actor: `device:${id}`,
          subject: `device:${id}`,
          data: { remoteAddress: '10.0.0.1', certSerial: '01' },
        })
      : type === 'mqtt.disconnected'
        ? bus.emit({
            type,
            actor: `device:${id}`,
            subject: `device:${id}`,
            data: { remoteAddress: '10.0.0.1', reason: 'x' },
          })
        : bus.emit({
            type,
            actor: 'system',
            subject: `device:${id}`,
            data: { reason: 'revoked', trigger: 'test' },
          });

  /** Waits until every event emitted so far is applied: the updates run in order, so a marker comes last. */
  let marker = 0;
  async function applied(id: string) {
    const notAfter = now + ++marker;
    await bus.emit({
      type: 'certificate.issued',
      actor: `device:${id}`,
      subject: `device:${id}`,
      data: { serial: String(marker), operation: 'simpleenroll', keyAlgorithm: 'EC P-256', notAfter },
    });
    for (let i = 0; i < 500; i++) {
      const d = await devices.get(id);
      if (d.certificateExpiresAt === notAfter) return d;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`events for ${id} were never applied`);
  }

  it('counts sessions across a takeover, a drop and a crash, and records the certificate expiry', async () => {
    await devices.add({ id: 'p-1' }, 'test');
    await session('mqtt.connected', 'p-1');
    // A takeover: the new session connects before the old one is gone.
    await session('mqtt.connected', 'p-1');
    await session('mqtt.disconnected', 'p-1');
    const on = await applied('p-1');
    expect(on.online).toBe(true);
    expect(on.connectedSince).toBeGreaterThan(0);
    await session('mqtt.session_dropped', 'p-1');
    const off = await applied('p-1');
    expect(off.online).toBe(false);
    expect(off.lastSeenAt).toBeGreaterThan(0);
    expect(off.connectedSince).toBeNull();

    // A crash leaves a device counted online; the next server start clears it before the broker listens.
    await session('mqtt.connected', 'p-1');
    expect((await applied('p-1')).online).toBe(true);
    stop();
    stop = await devices.follow(bus, (err) => {
      throw err;
    });
    expect((await devices.get('p-1')).online).toBe(false);

    // The newest certificate's notAfter is what shows (a re-enrollment replaces it).
    expect((await applied('p-1')).certificateExpiresAt).toBe(now + marker);
  });

  it('shows the latest refusals about the device, newest first, and only its own', async () => {
    await devices.add({ id: 'd-1' }, 'test');
    for (let i = 0; i < 12; i++)
      await bus.emit({
        type: 'mqtt.publish_denied',
        actor: 'device:d-1',
        subject: 'device:d-1',
        data: { topic: `devices/other/${i}`, reason: 'no_matching_statement' },
      });
    await bus.emit({
      type: 'mqtt.subscribe_denied',
      actor: 'device:d-1',
      subject: 'device:d-1',
      data: { topic: '#', reason: 'no_matching_statement' },
    });
    await bus.emit({
      type: 'mqtt.publish_denied',
      actor: 'device:d-2',
      subject: 'device:d-2',
      data: { topic: 'x', reason: 'no_matching_statement' },
    });
    const shown = await devices.show('d-1', 4);
    expect(shown.recentDenials.map((d) => [d.type, d.topic])).toEqual([
      ['mqtt.subscribe_denied', '#'],
      ['mqtt.publish_denied', 'devices/other/11'],
      ['mqtt.publish_denied', 'devices/other/10'],
      ['mqtt.publish_denied', 'devices/other/9'],
    ]);
    expect((await devices.show('d-1', 0)).recentDenials).toEqual([]);
  });

  it('filters on the effective state: quarantine shows over active and registered', async () => {
    await devices.add({ id: 'a' }, 'test');
    await devices.add({ id: 'b' }, 'test');
    await devices.add({ id: 'c' }, 'test');
    await t.store.db
      .updateTable('devices')
      .set({ quarantined_at: now })
      .where('id', 'in', ['a', 'c'])
      .execute();
    await devices.setDisabled('c', { disabled: true }, 'test');
    expect((await devices.list({ state: 'quarantined' })).map((d) => d.id)).toEqual(['a']);
    expect((await devices.list({ state: 'registered' })).map((d) => d.id)).toEqual(['b']);
    // Disabled outranks quarantine: the device is refused altogether.
    expect((await devices.list({ state: 'disabled' })).map((d) => [d.id, d.state])).toEqual([
      ['c', 'disabled'],
    ]);
    await expect(devices.list({ state: 'asleep' })).rejects.toThrow('state must be one of');
  });

  it('adds a device with its attributes and token in one step, or nothing', async () => {
    const added = await devices.addWithToken({ id: 'n-1', group: 'g', attributes: { line: 'l1' } }, 'test');
    expect(added.device).toMatchObject({
      id: 'n-1',
      group: 'g',
      attributes: { line: 'l1' },
      state: 'registered',
    });
    await expect(devices.checkToken('n-1', added.token)).resolves.toMatchObject({ device: { id: 'n-1' } });
    await expect(devices.addWithToken({ id: 'n-1' }, 'test')).rejects.toThrow('device n-1 already exists');
    await expect(devices.addWithToken({ id: 'n-2', attributes: { '1x': 'y' } }, 'test')).rejects.toThrow(
      'attributes must be',
    );
    expect(await devices.find('n-2')).toBeUndefined();
    const tokens = await t.store.db.selectFrom('enrollment_tokens').select('device_id').execute();
    expect(tokens.map((r) => r.device_id)).toEqual(['n-1']);
  });
});
