import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, rawMqtt } from '../test-support/clients.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { entriesOf } from '../events/index.ts';

type Creds = { id: string; key: string; cert: string };
const connect = (clientId: string, extra: object = {}) => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId,
  keepalive: 30,
  ...extra,
});

/**
 * Server-side MQTT 3.1.1 conformance where Bulwark's hooks are involved, against the running broker
 * with raw packets (mqtt-packet) and mqtt.js. Each test names the normative statement it checks.
 */
describe('broker: MQTT 3.1.1 over mutual TLS', () => {
  let s: TestServer;
  let ca: string;
  let a: Creds;
  let b: Creds;
  let a2: Creds;
  const raw = (creds: Creds, packets: (object | Buffer)[], waitMs?: number) =>
    rawMqtt(s.server.mqttPort, { ca, key: creds.key, cert: creds.cert }, packets, waitMs);

  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
    a = await enrollInProcess(s, 'dev-a');
    b = await enrollInProcess(s, 'dev-b');
    a2 = await enrollInProcess(s, 'dev-a2'); // shares a prefix with dev-a: must not share its topics
  });
  afterAll(async () => s?.stop());

  it('[MQTT-3.1.3-8] refuses an empty client id with clean session 0 with CONNACK 0x02 and closes', async () => {
    // Client libraries refuse to build this packet, so it is written byte by byte: CONNECT, "MQTT", level 4,
    // flags 0x00 (clean session 0), keep-alive 30, client id of length 0.
    const r = await raw(a, [
      Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x1e, 0x00, 0x00]),
    ]);
    expect(r.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 2 });
    expect(r.closed).toBe(true);
  });

  it('[MQTT-3.1.3-9] rejects a client id other than the certificate identity with 0x02', async () => {
    for (const id of ['dev-b', 'someone-else', '']) {
      const r = await raw(a, [connect(id)]);
      expect(r.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 2 });
      expect(r.closed).toBe(true);
    }
  });

  it('[MQTT-3.1.2-2] answers an unsupported protocol level with 0x01 and closes', async () => {
    // The broker speaks 3.1.1 and 5 and refuses 3.1 (level 3, MQIsdp).
    const r = await raw(a, [connect('dev-a', { protocolId: 'MQIsdp', protocolVersion: 3 })]);
    expect(r.packets[0]).toMatchObject({ cmd: 'connack' });
    expect((r.packets[0] as { returnCode?: number; reasonCode?: number }).returnCode ?? 1).toBe(1);
    expect(r.closed).toBe(true);
  });

  it('[MQTT-3.2.2-4] accepts the device with CONNACK 0 and session present 0 for a clean session', async () => {
    const r = await raw(a, [connect('dev-a')]);
    expect(r.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 0, sessionPresent: false });
  });

  it('[MQTT-3.8.4-1/2] [MQTT-3.9.3-1] answers SUBSCRIBE with a SUBACK of the same id and one code per filter, 0x80 for refused ones', async () => {
    const r = await raw(a, [
      connect('dev-a'),
      {
        cmd: 'subscribe',
        messageId: 42,
        subscriptions: [
          { topic: 'devices/dev-a/#', qos: 1 },
          { topic: 'devices/dev-b/#', qos: 0 },
          { topic: '#', qos: 0 },
          { topic: '+/+/#', qos: 0 },
          { topic: 'devices/+/telemetry', qos: 0 },
          { topic: '$SYS/#', qos: 0 },
          { topic: 'devices/dev-a2/#', qos: 0 },
          { topic: 'devices/dev-a/+/state', qos: 2 },
          { topic: 'devices/dev-a', qos: 0 },
        ],
      },
    ]);
    expect(r.packets[1]).toMatchObject({
      cmd: 'suback',
      messageId: 42,
      granted: [1, 128, 128, 128, 128, 128, 128, 2, 0],
    });
  });

  it('[MQTT-3.3.5-2] closes the connection on an unauthorized PUBLISH and delivers nothing', async () => {
    const watcher = await connectMqtt(s.mqttUrl, ca, b);
    const seen: string[] = [];
    watcher.on('message', (t) => seen.push(t));
    await watcher.subscribeAsync('devices/dev-b/#', { qos: 1 });
    for (const topic of ['devices/dev-b/commands', 'devices/dev-a2/x', 'elsewhere', '$SYS/broker/x']) {
      const r = await raw(a, [
        connect('dev-a'),
        { cmd: 'publish', topic, payload: Buffer.from('x'), qos: 1, messageId: 3 },
      ]);
      expect(r.packets.some((p) => p.cmd === 'puback')).toBe(false);
      expect(r.closed).toBe(true);
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([]);
    await watcher.endAsync();
    const denied = entriesOf(await s.platform.audit.readAfter(0, 1000), 'mqtt.publish_denied').filter(
      (e) => e.subject === 'device:dev-a',
    );
    expect(denied.map((e) => e.data.topic)).toEqual(
      expect.arrayContaining(['devices/dev-b/commands', 'devices/dev-a2/x', 'elsewhere', '$SYS/broker/x']),
    );
  });

  it('[MQTT-4.3.2-2] acknowledges an authorized QoS 1 PUBLISH with a PUBACK of the same id and delivers it', async () => {
    const self = await connectMqtt(s.mqttUrl, ca, a2);
    const got = new Promise<string>((resolve) =>
      self.once('message', (t, p) => resolve(`${t}=${p.toString()}`)),
    );
    await self.subscribeAsync('devices/dev-a2/#', { qos: 1 });
    await self.publishAsync('devices/dev-a2/telemetry', 'ok', { qos: 1 });
    expect(await got).toBe('devices/dev-a2/telemetry=ok');
    await self.endAsync();
    const r = await raw(a, [
      connect('dev-a'),
      { cmd: 'publish', topic: 'devices/dev-a/t', payload: Buffer.from('1'), qos: 1, messageId: 9 },
    ]);
    expect(r.packets[1]).toMatchObject({ cmd: 'puback', messageId: 9 });
  });

  it('[MQTT-3.3.2-2] closes the connection on a PUBLISH topic that contains wildcards', async () => {
    const r = await raw(a, [
      connect('dev-a'),
      { cmd: 'publish', topic: 'devices/dev-a/#', payload: Buffer.from('x'), qos: 0 },
    ]);
    expect(r.closed).toBe(true);
  });

  it('[MQTT-3.1.4-2] disconnects the existing client when the same client id connects again', async () => {
    const first = await connectMqtt(s.mqttUrl, ca, b);
    const closed = new Promise<boolean>((resolve) => first.once('close', () => resolve(true)));
    const second = await connectMqtt(s.mqttUrl, ca, b);
    expect(await closed).toBe(true);
    first.end(true);
    await second.endAsync();
  });

  it('[MQTT-3.12.4-1] answers PINGREQ with PINGRESP', async () => {
    const r = await raw(a, [connect('dev-a'), { cmd: 'pingreq' }]);
    expect(r.packets.map((p) => p.cmd)).toEqual(['connack', 'pingresp']);
  });

  it('does not publish a Will whose topic the device may not publish to', async () => {
    const watcher = await connectMqtt(s.mqttUrl, ca, b);
    const seen: string[] = [];
    watcher.on('message', (t) => seen.push(t));
    await watcher.subscribeAsync('devices/dev-b/#', { qos: 1 });
    // dev-a connects with a Will aimed at dev-b's commands and drops the connection without DISCONNECT.
    await raw(
      a,
      [
        connect('dev-a', {
          will: { topic: 'devices/dev-b/commands', payload: Buffer.from('reboot'), qos: 1, retain: false },
        }),
      ],
      200,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([]);
    await watcher.endAsync();
  });

  it('refuses a device that is disabled, and drops its live session', async () => {
    const d = await enrollInProcess(s, 'dev-off');
    const live = await connectMqtt(s.mqttUrl, ca, d);
    const closed = new Promise<boolean>((resolve) => live.once('close', () => resolve(true)));
    await s.platform.devices.setDisabled('dev-off', { disabled: true, reason: 'maintenance' }, 'test');
    expect(await closed).toBe(true);
    live.end(true);
    const r = await raw(d, [connect('dev-off')]);
    expect(r.packets[0]).toMatchObject({ cmd: 'connack', returnCode: 5 });
    await s.platform.devices.setDisabled('dev-off', { disabled: false }, 'test');
    const again = await connectMqtt(s.mqttUrl, ca, d);
    await again.endAsync();
  });

  it('refuses a certificate superseded by re-enrollment with a token in the TLS handshake (it is on the CRL)', async () => {
    const old = await enrollInProcess(s, 'dev-re');
    const { token } = await s.platform.devices.issueToken('dev-re', 'test');
    const { x509 } = await import('../pki/index.ts');
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=x',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    await (await s.platform.pki()).enroll({ deviceId: 'dev-re', token, csr: csr.toString('base64') });
    // TLS 1.3: the client finishes its side of the handshake first, then reads the server's alert and the close.
    const r = await raw(old, [connect('dev-re')]);
    expect(r.packets).toEqual([]);
    expect(r.closed).toBe(true);
  });
});
