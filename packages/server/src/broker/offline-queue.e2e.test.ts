import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The privacy tests' one room-sensor fixture (a test fixture, not part of privacy's door).
import { roomSensor } from '../test-support/data-schemas.ts';
import { connectMqtt, type DeviceCreds } from '../test-support/clients.ts';
import {
  enrollInProcess,
  letReadTelemetry,
  startTestServer,
  type TestServer,
} from '../test-support/server.ts';
import { sleep, waitFor } from '../test-support/wait.ts';

/**
 * A device subscriber with a persistent session (clean session 0) gets what the delivery stages return for it
 * (privacy's view: a pseudonym, a generalised latitude) also for the messages the broker keeps for it: those
 * queued while it was offline, and those sent but not acknowledged, resent when it reconnects.
 */

const READING = { user_id: 'u-17', lat: 48.137154, temp: 21.5 };

/** What a device (no purpose) sees of READING. */
function expectView(payload: string): void {
  expect(payload).not.toContain('u-17');
  expect(payload).not.toContain('48.137154');
  const body = JSON.parse(payload) as Record<string, unknown>;
  expect(body.user_id).toMatch(/^ps1\.\d+\.[A-Za-z0-9_-]{22}$/);
  expect(body.lat).toBeCloseTo(48.136004, 6);
  expect(body.temp).toBe(21.5);
}

describe('persistent sessions: queued and resent messages pass the delivery stages', () => {
  let s: TestServer;
  let ca: string;
  let sensor: MqttClient;
  let reader: Pick<DeviceCreds, 'id' | 'key' | 'cert'>;
  const open: MqttClient[] = [];

  /** Messages arriving on each reader, as text, from its first byte (a broker may send them with CONNACK). */
  const received = new WeakMap<MqttClient, string[]>();
  /**
   * The reader with a persistent session. Its 'message' listener is added before CONNACK: messages queued for
   * the session may arrive in the same read as CONNACK, before a client awaiting 'connect' could add one
   * (the core sends them right after the CONNACK, in the same write).
   */
  const connectReader = (extra: mqtt.IClientOptions = {}) =>
    new Promise<MqttClient>((resolve, reject) => {
      const got: string[] = [];
      const client = mqtt.connect(s.mqttUrl, {
        ca,
        key: reader.key,
        cert: reader.cert,
        clientId: reader.id,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        clean: false,
        ...extra,
      });
      received.set(client, got);
      open.push(client);
      client.on('message', (_topic, payload) => got.push(payload.toString()));
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });

  /** Messages arriving on a reader, as text. */
  const collect = (client: MqttClient) => received.get(client) ?? [];

  beforeAll(async () => {
    s = await startTestServer({});
    ca = readFileSync(s.caFile, 'utf8');
    await s.platform.privacy.putSchema(roomSensor(), 'test');
    // The reader may read every device's telemetry (the default policy gives a device its own topics only).
    await letReadTelemetry(s, ['reader-1']);
    reader = await enrollInProcess(s, 'reader-1');
    sensor = await connectMqtt(s.mqttUrl, ca, await enrollInProcess(s, 'sensor-1'));
    open.push(sensor);
  }, 60_000);

  afterAll(async () => {
    for (const c of open) c.end(true);
    await s?.stop();
  });

  it.each([1, 2] as const)(
    'QoS %i: a message published while the subscriber is offline arrives transformed on reconnect',
    async (qos) => {
      const first = await connectReader();
      await first.subscribeAsync('devices/+/telemetry', { qos });
      // Online first: the live delivery is transformed (as before).
      const live = collect(first);
      await sensor.publishAsync('devices/sensor-1/telemetry', JSON.stringify(READING), { qos: 1 });
      await waitFor('the live delivery', () => live.length > 0);
      expectView(live[0] ?? '');
      await first.endAsync();

      await sensor.publishAsync('devices/sensor-1/telemetry', JSON.stringify(READING), { qos: 1 });
      const again = await connectReader();
      const queued = collect(again);
      await waitFor('the queued message', () => queued.length > 0);
      await sleep(200);
      expect(queued).toHaveLength(1);
      expectView(queued[0] ?? '');
      await again.endAsync();
    },
  );

  it('a QoS 1 message sent but not acknowledged is resent transformed on reconnect', async () => {
    const silent = await connectReader();
    const seen = collect(silent);
    // Never acknowledged: mqtt.js sends the PUBACK once handleMessage calls back.
    silent.handleMessage = () => undefined;
    await silent.subscribeAsync('devices/+/telemetry', { qos: 1 });
    await sensor.publishAsync('devices/sensor-1/telemetry', JSON.stringify(READING), { qos: 1 });
    await waitFor('the unacknowledged delivery', () => seen.length > 0, 5000);
    expectView(seen[0] ?? '');
    silent.end(true);
    await sleep(200);

    const again = await connectReader();
    const resent = collect(again);
    await waitFor('the resent message', () => resent.length > 0, 5000);
    expect(resent).toHaveLength(1);
    expectView(resent[0] ?? '');
    await again.endAsync();
  });
});
