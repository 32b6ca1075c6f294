import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type IConnackPacket, type MqttClient, type Packet } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf, type EventType } from '../events/index.ts';
import { exec, workDir } from '../test-support/clients.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

/**
 * MQTT 5 over mutual TLS on Bulwark's own core: Bulwark's refusals as reason codes (CONNACK, SUBACK, PUBACK,
 * DISCONNECT) and their reason strings, the configured bounds, Response Information, and a session's drops
 * (events and /metrics). The real server, real certificates, mqtt.js and mosquitto_sub.
 */

type Creds = { id: string; key: string; cert: string };

describe('broker: MQTT 5 over mutual TLS', () => {
  let s: TestServer;
  let ca: string;
  let dir: string;
  const open: MqttClient[] = [];

  beforeAll(async () => {
    // Bounds other than the defaults, to see that the configured ones are those the core applies.
    s = await startTestServer({
      'mqtt.receiveMaximum': 20,
      'mqtt.topicAliasMaximum': 4,
      'mqtt.maxQueuedMessages': 3,
      'mqtt.maxKeepAlive': '2m',
    });
    ca = readFileSync(s.caFile, 'utf8');
    dir = workDir();
  }, 60_000);

  afterAll(async () => {
    for (const c of open) c.end(true);
    await s?.stop();
  });

  const recorded = async <T extends EventType>(type: T, subject: string) =>
    entriesOf(await s.platform.audit.readAfter(0, 5000), type).filter((e) => e.subject === subject);

  /** An mqtt.js MQTT 5 client with the device's certificate; resolves with its CONNACK (refused or not). */
  function connect5(creds: Creds, extra: mqtt.IClientOptions = {}) {
    return new Promise<{ client: MqttClient; connack: IConnackPacket; packets: Packet[] }>(
      (resolve, reject) => {
        const packets: Packet[] = [];
        const client = mqtt.connect(s.mqttUrl, {
          ca,
          key: creds.key,
          cert: creds.cert,
          clientId: creds.id,
          protocolVersion: 5,
          reconnectPeriod: 0,
          connectTimeout: 5000,
          ...extra,
        });
        open.push(client);
        client.on('packetreceive', (packet) => {
          packets.push(packet);
          if (packet.cmd === 'connack') resolve({ client, connack: packet, packets });
        });
        client.on('error', () => undefined); // a refused CONNACK is what some tests look at
        client.once('close', () => reject(new Error('closed before CONNACK')));
      },
    );
  }

  /** The next packet of this kind the client receives. */
  const next = <K extends Packet['cmd']>(client: MqttClient, cmd: K) =>
    new Promise<Extract<Packet, { cmd: K }>>((resolve) => {
      const on = (packet: Packet) => {
        if (packet.cmd !== cmd) return;
        client.off('packetreceive', on);
        resolve(packet as Extract<Packet, { cmd: K }>);
      };
      client.on('packetreceive', on);
    });

  it('answers a device CONNECT with CONNACK 0 and the server limits as properties', async () => {
    const dev = await enrollInProcess(s, 'v5-props');
    const { client, connack } = await connect5(dev);
    const { firewall } = s.config;
    expect(connack).toMatchObject({ cmd: 'connack', reasonCode: 0, sessionPresent: false });
    expect(connack.properties).toMatchObject({
      maximumPacketSize: firewall.maxPayloadBytes + 4 * firewall.maxTopicLength + 4,
      receiveMaximum: 20, // mqtt.receiveMaximum
      topicAliasMaximum: 4, // mqtt.topicAliasMaximum
    });
    // mqtt.js asks for a keep alive of 60 s, within mqtt.maxKeepAlive: no Server Keep Alive.
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
    expect(s.server.broker.connectedDevices()).toContain('v5-props');
    // The session is the device's: it publishes on its own topics like a 3.1.1 client.
    await client.publishAsync('devices/v5-props/telemetry', '{"t":1}', { qos: 1 });
    await client.endAsync();
  });

  it('refuses a client id other than the certificate identity with CONNACK 0x85 and the reason, recorded', async () => {
    const dev = await enrollInProcess(s, 'v5-id');
    const { connack } = await connect5(dev, { clientId: 'someone-else' });
    expect(connack.reasonCode).toBe(0x85);
    expect(connack.properties?.reasonString).toMatch(/client id/i);
    await waitFor(
      'the refusal',
      async () => (await recorded('mqtt.connect_refused', 'device:v5-id')).length > 0,
    );
  });

  it('answers a refused filter with SUBACK 0x87 (and records it), a granted one with its QoS', async () => {
    const dev = await enrollInProcess(s, 'v5-sub');
    const { client } = await connect5(dev);
    const suback = next(client, 'suback');
    client.subscribe(
      { 'devices/other/#': { qos: 1 }, 'devices/v5-sub/commands/#': { qos: 1 } },
      () => undefined,
    );
    expect((await suback).granted).toEqual([0x87, 1]);
    const denied = await waitFor('the event', async () => {
      const e = await recorded('mqtt.subscribe_denied', 'device:v5-sub');
      return e.length > 0 ? e : undefined;
    });
    expect(denied[0]?.data).toMatchObject({ topic: 'devices/other/#' });
    // Still connected: a refused filter is not a reason to end the session.
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('mosquitto_sub with the device certificate sees 0x87 on MQTT 5 and 0x80 on MQTT 3.1.1', async () => {
    const dev = await enrollInProcess(s, 'v5-mosq');
    const key = path.join(dir, 'v5-mosq.key');
    const cert = path.join(dir, 'v5-mosq.crt');
    writeFileSync(key, dev.key);
    writeFileSync(cert, dev.cert);
    const sub = async (version: 'mqttv5' | 'mqttv311') => {
      const args = [
        ...['-h', 'localhost', '-p', String(s.server.mqttPort), '--cafile', s.caFile],
        ...['--cert', cert, '--key', key, '-i', 'v5-mosq', '-V', version],
        ...['-t', 'devices/other/#', '-q', '1', '-d', '-W', '3'],
      ];
      // It exits non-zero once every filter was refused (or at -W): its output is what is checked.
      const out = await exec('mosquitto_sub', args).then(
        (r) => r.stdout + r.stderr,
        (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
      );
      return /Subscribed \(mid: \d+\): (\d+)/.exec(out)?.[1];
    };
    expect(await sub('mqttv5')).toBe('135');
    expect(await sub('mqttv311')).toBe('128');
  });

  it('answers a refused QoS 1 PUBLISH with PUBACK 0x87 and keeps the connection', async () => {
    const dev = await enrollInProcess(s, 'v5-pub');
    const { client } = await connect5(dev);
    const puback = next(client, 'puback');
    const err = await client.publishAsync('devices/someone-else/commands/reboot', 'x', { qos: 1 }).then(
      () => undefined,
      (e: Error & { code?: number }) => e,
    );
    expect(err?.code).toBe(0x87);
    const ack = await puback;
    expect(ack.reasonCode).toBe(0x87);
    expect(ack.properties?.reasonString).toContain('devices/someone-else/commands/reboot');
    // MQTT 5 refuses the message, not the client: the next, allowed PUBLISH goes through.
    expect(client.connected).toBe(true);
    await client.publishAsync('devices/v5-pub/telemetry', '{"t":2}', { qos: 1 });
    // Recorded a moment after the PUBACK (the broker never awaits the audit log).
    const denied = await waitFor('the event', async () => {
      const e = await recorded('mqtt.publish_denied', 'device:v5-pub');
      return e.length > 0 ? e : undefined;
    });
    expect(denied.map((e) => e.data.topic)).toContain('devices/someone-else/commands/reboot');
    await client.endAsync();
  });

  it('ends the session of a device disabled, then of one revoked, with DISCONNECT 0x87', async () => {
    const off = await enrollInProcess(s, 'v5-off');
    const a = await connect5(off);
    const disabled = next(a.client, 'disconnect');
    await s.platform.devices.setDisabled('v5-off', { disabled: true, reason: 'maintenance' }, 'test');
    expect((await disabled).reasonCode).toBe(0x87);

    const gone = await enrollInProcess(s, 'v5-revoked');
    const b = await connect5(gone);
    const revoked = next(b.client, 'disconnect');
    const result = await s.cli(['device', 'revoke', 'v5-revoked']);
    expect(result.code).toBe(0);
    expect((await revoked).reasonCode).toBe(0x87);
    await waitFor('the dropped sessions', async () => {
      const dropped = [
        ...(await recorded('mqtt.session_dropped', 'device:v5-off')),
        ...(await recorded('mqtt.session_dropped', 'device:v5-revoked')),
      ];
      return dropped.length === 2;
    });
    expect(s.server.broker.connectedDevices()).not.toContain('v5-off');
    expect(s.server.broker.connectedDevices()).not.toContain('v5-revoked');
  });

  it('ends the session of a device a new policy no longer lets connect with DISCONNECT 0x98', async () => {
    const dev = await enrollInProcess(s, 'v5-policy');
    const { client } = await connect5(dev);
    const ended = next(client, 'disconnect');
    await s.platform.access.putPolicy(
      'no-connect',
      {
        version: '2026-11',
        statements: [{ sid: 'off', effect: 'deny', actions: ['mqtt:connect'], resources: ['#'] }],
      },
      'test',
    );
    await s.platform.access.attach('no-connect', { kind: 'device', target: 'v5-policy' }, 'test');
    expect((await ended).reasonCode).toBe(0x98); // Administrative action
    const dropped = await waitFor('the dropped session', async () => {
      const e = await recorded('mqtt.session_dropped', 'device:v5-policy');
      return e.length > 0 ? e : undefined;
    });
    expect(dropped[0]?.data).toMatchObject({ trigger: 'policy change' });
  });

  it('[MQTT-3.1.4-3] sends DISCONNECT 0x8E to the session another connection of the device takes over', async () => {
    const dev = await enrollInProcess(s, 'v5-twice');
    const first = await connect5(dev);
    const takenOver = next(first.client, 'disconnect');
    const second = await connect5(dev);
    expect(second.connack.reasonCode).toBe(0);
    expect((await takenOver).reasonCode).toBe(0x8e);
    expect(s.server.broker.connectedDevices()).toContain('v5-twice');
    await second.client.endAsync();
  });
  it('grants at most mqtt.maxKeepAlive: a longer keep alive, or none, is answered with Server Keep Alive', async () => {
    const dev = await enrollInProcess(s, 'v5-keepalive');
    for (const keepalive of [600, 0]) {
      const { client, connack } = await connect5(dev, { keepalive });
      expect(connack.reasonCode).toBe(0);
      expect(connack.properties?.serverKeepAlive).toBe(120);
      await client.endAsync();
    }
  });

  it('sends Response Information to a client that asks (§3.2.2.3.15): a subtree its policy lets it subscribe to', async () => {
    const dev = await enrollInProcess(s, 'v5-resp');
    const asked = await connect5(dev, { properties: { requestResponseInformation: true } });
    const base = asked.connack.properties?.responseInformation;
    expect(base).toBe('devices/v5-resp/responses');
    const suback = next(asked.client, 'suback');
    asked.client.subscribe(`${base}/#`, { qos: 1 }, () => undefined);
    expect((await suback).granted).toEqual([1]);
    await asked.client.endAsync();
    // Not asked (Request Response Information 0, the default): none [MQTT-3.1.2-28].
    const plain = await connect5(dev);
    expect(plain.connack.properties?.responseInformation).toBeUndefined();
    await plain.client.endAsync();
  });

  it('drops what is over mqtt.maxQueuedMessages for an offline session, records it, and counts it in /metrics', async () => {
    const token = await apiToken(s, 'v5-drops-admin');
    const metric = async (pattern: RegExp) => {
      const res = await s.server.app.inject({
        method: 'GET',
        url: '/metrics',
        headers: { authorization: `Bearer ${token}` },
      });
      return Number(pattern.exec(res.body)?.[1] ?? 0);
    };
    const queueFull = () => metric(/^bulwark_mqtt_dropped_messages_total\{reason="queue_full"\} (\d+)/m);
    const before = await queueFull();
    const dev = await enrollInProcess(s, 'v5-drops');
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } };
    const first = await connect5(dev, persistent);
    const suback = next(first.client, 'suback');
    first.client.subscribe('devices/v5-drops/commands/#', { qos: 1 }, () => undefined);
    expect((await suback).granted).toEqual([1]);
    await first.client.endAsync();
    // Five QoS 1 messages for the offline session: three are kept (mqtt.maxQueuedMessages), two dropped.
    for (let i = 1; i <= 5; i += 1) await s.server.broker.publish(`devices/v5-drops/commands/c${i}`, `m${i}`);
    const dropped = await waitFor('the drop event', async () => {
      const e = await recorded('mqtt.delivery_dropped', 'device:v5-drops');
      return e.length > 0 ? e : undefined;
    });
    expect(dropped[0]?.data).toEqual({ dropped: 2, windowMs: 10_000, clientId: 'v5-drops' });
    expect((await queueFull()) - before).toBe(2);
    expect(await metric(/^bulwark_mqtt_messages_received_total (\d+)/m)).toBeGreaterThan(0);
    // Back online, the session gets the three that were kept, in order.
    const again = await connect5(dev, persistent);
    const got = () => again.packets.flatMap((p) => (p.cmd === 'publish' ? [String(p.payload)] : []));
    await waitFor('the kept messages', () => got().length >= 3);
    expect(got()).toEqual(['m1', 'm2', 'm3']);
    await again.client.endAsync();
  });
});
