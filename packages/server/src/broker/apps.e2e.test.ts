/**
 * Applications on the running server, end to end: an app added with a grant, its token as MQTT password
 * over TLS without a client certificate (mqtt.js), two instances sharing a subscription, and revocation of
 * its token ending its sessions. The apps check and the grants are the real ones (apps/, access/).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, exec } from '../test-support/clients.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

describe('broker: applications end to end', () => {
  let s: TestServer;
  let ca: string;
  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
  });
  afterAll(async () => s?.stop());

  const connectApp = (clientId: string, password?: string) =>
    mqtt.connectAsync(s.mqttUrl, {
      ca,
      clientId,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      ...(password === undefined ? {} : { username: clientId.split('/')[0], password }),
    });
  const closed = (c: MqttClient) =>
    new Promise<number>((resolve) =>
      c.connected ? c.once('close', () => resolve(Date.now())) : resolve(Date.now()),
    );

  it('serves an app by its token, splits a shared subscription, and ends its sessions when the token is revoked', async () => {
    const { apps } = s.platform;
    await apps.add(
      { name: 'billing', purpose: 'analytics.reporting', grants: ['subscribe devices/+/telemetry'] },
      'test',
    );
    const { id, token } = await apps.createToken('billing', {}, 'test');
    const device = await connectMqtt(s.mqttUrl, ca, await enrollInProcess(s, 'pump-1'));

    const a = await connectApp('billing/a', token);
    const b = await connectApp('billing/b', token);
    const got = { a: [] as string[], b: [] as string[] };
    a.on('message', (_t, p) => got.a.push(p.toString()));
    b.on('message', (_t, p) => got.b.push(p.toString()));
    await a.subscribeAsync('$share/workers/devices/+/telemetry', { qos: 1 });
    await b.subscribeAsync('$share/workers/devices/+/telemetry', { qos: 1 });
    for (let i = 0; i < 10; i++) await device.publishAsync('devices/pump-1/telemetry', `m${i}`, { qos: 1 });
    await expect.poll(() => got.a.length + got.b.length).toBe(10);
    expect(got.a.length).toBeGreaterThan(0);
    expect(got.b.length).toBeGreaterThan(0);
    expect(new Set([...got.a, ...got.b]).size).toBe(10);

    // Refused: no credentials, a wrong token.
    await expect(connectApp('billing')).rejects.toBeDefined();
    await expect(connectApp('billing', 'bwa_wrong')).rejects.toBeDefined();

    const ends = Promise.all([closed(a), closed(b)]);
    const revokedAt = Date.now();
    await apps.revokeToken('billing', id, 'test');
    const [endA, endB] = await ends;
    expect(Math.max(endA, endB) - revokedAt).toBeLessThan(1000);
    await expect(connectApp('billing', token)).rejects.toBeDefined();
    device.end(true);
  });

  it('serves an app by its certificate (never as a device) and ends its session when the app is revoked', async () => {
    const { apps } = s.platform;
    await apps.add(
      { name: 'metering', purpose: 'analytics.reporting', grants: ['subscribe devices/+/telemetry'] },
      'test',
    );
    const dir = mkdtempSync(path.join(testTmpDir(), 'bulwark-app-cert-'));
    const keyFile = path.join(dir, 'app.key');
    const csrFile = path.join(dir, 'app.csr');
    await exec('openssl', [
      ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', keyFile, '-subj', '/CN=metering', '-out', csrFile],
    ]);
    const issued = await apps.issueCertificate('metering', readFileSync(csrFile, 'utf8'), 'test');
    const creds = {
      id: 'metering/worker-1',
      key: readFileSync(keyFile, 'utf8'),
      cert: issued.certificatePem,
    };
    const app = await connectMqtt(s.mqttUrl, ca, creds);
    expect(s.server.broker.connectedDevices()).not.toContain('metering');
    // The certificate names the app, not a client id of a device: `metering` as a device id is refused.
    await expect(connectMqtt(s.mqttUrl, ca, { ...creds, id: 'other' })).rejects.toBeDefined();

    const end = closed(app);
    const revokedAt = Date.now();
    await apps.revoke('metering', 'test');
    expect((await end) - revokedAt).toBeLessThan(1000);
    await expect(connectMqtt(s.mqttUrl, ca, creds)).rejects.toBeDefined();
  });
});
