/**
 * An app on the in-process platform (no sockets): its grants decide what it receives and what it may
 * publish, through the real apps check and access compiler.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, type TestPlatform } from '../test-support/platform.ts';
import { enrollInProcess } from '../test-support/server.ts';

describe('broker: an app on the in-process platform', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(async () => t?.close());

  it('receives what its grant covers and is disconnected for a publish it was not granted', async () => {
    const { apps } = t.platform;
    await apps.add(
      { name: 'dashboard', purpose: 'analytics.reporting', grants: ['subscribe devices/+/telemetry'] },
      'test',
    );
    const { token } = await apps.createToken('dashboard', {}, 'test');
    const device = await t.mqtt(await enrollInProcess(t, 'meter-1'));
    const app = await t.mqttApp({ clientId: 'dashboard/ui', token });
    const received = new Promise<string>((resolve) => app.once('message', (topic) => resolve(topic)));
    await app.subscribeAsync('devices/+/telemetry', { qos: 1 });
    await device.publishAsync('devices/meter-1/telemetry', '{"kwh":1}', { qos: 1 });
    expect(await received).toBe('devices/meter-1/telemetry');

    // No grant to command the device: the connection is closed [MQTT-3.3.5-2], and the denial recorded.
    const closed = new Promise<void>((resolve) => app.once('close', () => resolve()));
    app.publish('devices/meter-1/commands/reboot', '{}', { qos: 1 });
    await closed;
    await expect
      .poll(async () =>
        (await t.platform.audit.readAfter(0, 5000))
          .filter((e) => e.type === 'mqtt.publish_denied')
          .map((e) => [e.actor, e.subject]),
      )
      .toEqual([['app:dashboard', 'app:dashboard']]);
    device.end(true);
  });

  it("gives the broker a token's expiry and an app certificate's notAfter (the session ends then)", async () => {
    const { apps } = t.platform;
    await apps.add({ name: 'expiring', purpose: 'analytics.reporting' }, 'test');
    const { token, expiresAt } = await apps.createToken('expiring', { ttlMs: 60_000 }, 'test');
    const decision = await apps.checkApp({
      clientId: 'expiring/1',
      remoteAddress: '10.0.0.1',
      password: { username: 'expiring', password: Buffer.from(token) },
    });
    expect(expiresAt).toEqual(expect.any(Number));
    expect(decision).toMatchObject({ ok: true, expiresAt });
    const byCertificate = await apps.checkApp({
      clientId: 'expiring/2',
      remoteAddress: '10.0.0.1',
      certificate: { serial: 'AB', app: 'expiring', notAfter: 1_900_000_000_000 },
    });
    expect(byCertificate).toMatchObject({ ok: true, expiresAt: 1_900_000_000_000 });
  });

  it('drops the sessions of an app that is gone when it changes (its facts read not_found)', async () => {
    const { apps } = t.platform;
    await apps.add({ name: 'ephemeral', purpose: 'analytics.reporting' }, 'test');
    const { token } = await apps.createToken('ephemeral', {}, 'test');
    const app = await t.mqttApp({ clientId: 'ephemeral', token });
    const closed = new Promise<void>((resolve) => app.once('close', () => resolve()));
    // The row goes away behind the apps module's back; its next change finds nothing.
    await t.platform.store.db.deleteFrom('apps').where('name', '=', 'ephemeral').execute();
    await t.platform.events.emit({
      type: 'app.updated',
      actor: 'test',
      subject: 'app:ephemeral',
      data: { changes: { zone: null } },
    });
    await closed;
    await expect
      .poll(async () =>
        (await t.platform.audit.readAfter(0, 5000))
          .filter((e) => e.type === 'mqtt.session_dropped' && e.subject === 'app:ephemeral')
          .map((e) => e.data),
      )
      .toEqual([expect.objectContaining({ reason: 'app changed' })]);
  });
});
