import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../test-support/clients.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';

/** Subscribes and collects what arrives as retained (`retain` flag set on delivery, [MQTT-3.3.1-8]). */
async function retainedSeen(client: MqttClient, filter: string, settleMs = 500): Promise<string[]> {
  const seen: string[] = [];
  client.on('message', (topic, payload, packet) => {
    if (packet.retain) seen.push(`${topic}=${payload.toString()}`);
  });
  await client.subscribeAsync(filter, { qos: 1 });
  // Retained messages are sent right after the SUBACK; give them the time to arrive.
  await new Promise((r) => setTimeout(r, settleMs));
  return seen.sort();
}

describe('retained messages: bounded per device and in total, kept in the store', () => {
  let s: TestServer;
  let ca: string;
  let dataDir: string;
  const devices: Record<string, { id: string; key: string; cert: string }> = {};

  beforeAll(async () => {
    s = await startTestServer({
      'firewall.retainedPerDevice': 2,
      'firewall.retainedBytesPerDevice': 4096,
      'firewall.retainedTotal': 3,
    });
    dataDir = s.dataDir;
    ca = readFileSync(s.caFile, 'utf8');
    for (const id of ['ret-a', 'ret-b', 'ret-c', 'ret-reader']) devices[id] = await enrollInProcess(s, id);
  });
  afterAll(async () => s?.stop());

  it('refuses a retained message over the device quota with an event; clearing one frees the quota', async () => {
    const a = await connectMqtt(s.mqttUrl, ca, devices['ret-a']!);
    await a.publishAsync('devices/ret-a/one', '1', { qos: 1, retain: true });
    await a.publishAsync('devices/ret-a/two', '2', { qos: 1, retain: true });
    // The third is acknowledged (MQTT 3.1.1 cannot say no) and delivered to subscribers, not retained.
    const live = new Promise<string>((resolve) =>
      a.on('message', (topic, payload) => topic.endsWith('three') && resolve(payload.toString())),
    );
    await a.subscribeAsync('devices/ret-a/three', { qos: 1 });
    await a.publishAsync('devices/ret-a/three', '3', { qos: 1, retain: true });
    expect(await live).toBe('3');
    await expect
      .poll(async () =>
        (
          await s.platform.audit.query({ type: 'mqtt.retained_refused', subject: 'device:ret-a', limit: 10 })
        ).map((e) => e.data),
      )
      .toEqual([
        expect.objectContaining({
          topic: 'devices/ret-a/three',
          reason: 'the device already holds 2 retained messages',
        }),
      ]);
    await a.endAsync();
    const fresh = await connectMqtt(s.mqttUrl, ca, devices['ret-a']!);
    expect(await retainedSeen(fresh, 'devices/ret-a/#')).toEqual([
      'devices/ret-a/one=1',
      'devices/ret-a/two=2',
    ]);

    // An empty retained payload clears the topic [MQTT-3.3.1-10] and gives the quota back.
    await fresh.publishAsync('devices/ret-a/one', '', { qos: 1, retain: true });
    await fresh.publishAsync('devices/ret-a/three', '3b', { qos: 1, retain: true });
    await fresh.endAsync();
    const again = await connectMqtt(s.mqttUrl, ca, devices['ret-a']!);
    expect(await retainedSeen(again, 'devices/ret-a/#')).toEqual([
      'devices/ret-a/three=3b',
      'devices/ret-a/two=2',
    ]);
    await again.endAsync();
  });

  it('refuses over the total quota, whichever device asks', async () => {
    // ret-a holds 2 of the 3 the broker keeps; ret-b gets the last one, ret-c none.
    const b = await connectMqtt(s.mqttUrl, ca, devices['ret-b']!);
    await b.publishAsync('devices/ret-b/state', 'on', { qos: 1, retain: true });
    await b.endAsync();
    const c = await connectMqtt(s.mqttUrl, ca, devices['ret-c']!);
    await c.publishAsync('devices/ret-c/state', 'off', { qos: 1, retain: true });
    await expect
      .poll(async () =>
        (
          await s.platform.audit.query({ type: 'mqtt.retained_refused', subject: 'device:ret-c', limit: 10 })
        ).map((e) => e.data.reason),
      )
      .toEqual(['the broker already holds 3 retained messages']);
    await c.endAsync();
    const c2 = await connectMqtt(s.mqttUrl, ca, devices['ret-c']!);
    expect(await retainedSeen(c2, 'devices/ret-c/#')).toEqual([]);
    await c2.endAsync();
  });

  it('delivers retained messages only through the subscriber’s own access (authorizeForward)', async () => {
    // The reader may subscribe to every device's status subtree, but may not receive ret-b's secret topic.
    await s.platform.access.putPolicy(
      'status-reader',
      {
        version: '2026-11',
        statements: [
          { sid: 'sub', effect: 'allow', actions: ['mqtt:subscribe'], resources: ['devices/+/state/#'] },
          { sid: 'recv', effect: 'allow', actions: ['mqtt:receive'], resources: ['devices/+/state/#'] },
          {
            sid: 'secret',
            effect: 'deny',
            actions: ['mqtt:receive'],
            resources: ['devices/ret-b/state/secret'],
          },
        ],
      },
      'test',
    );
    await s.platform.access.attach('status-reader', { kind: 'device', target: 'ret-reader' }, 'test');
    const b = await connectMqtt(s.mqttUrl, ca, devices['ret-b']!);
    // ret-b holds 1 of its 2 (devices/ret-b/state); the broker's 3 are taken, so ret-a makes room first.
    const a = await connectMqtt(s.mqttUrl, ca, devices['ret-a']!);
    await a.publishAsync('devices/ret-a/two', '', { qos: 1, retain: true });
    await a.endAsync();
    await b.publishAsync('devices/ret-b/state/secret', 'pin=1234', { qos: 1, retain: true });
    await b.endAsync();
    const reader = await connectMqtt(s.mqttUrl, ca, devices['ret-reader']!);
    const seen = await retainedSeen(reader, 'devices/+/state/#');
    await reader.endAsync();
    expect(seen).toEqual(['devices/ret-b/state=on']);
    // ret-b itself receives both under its own default rights.
    const own = await connectMqtt(s.mqttUrl, ca, devices['ret-b']!);
    expect(await retainedSeen(own, 'devices/ret-b/#')).toEqual([
      'devices/ret-b/state/secret=pin=1234',
      'devices/ret-b/state=on',
    ]);
    await own.endAsync();
  });

  it('keeps retained messages across a restart on the same data directory', async () => {
    await s.stop({ keepData: true });
    s = await startTestServer({}, { dataDir });
    ca = readFileSync(s.caFile, 'utf8');
    const reader = await connectMqtt(s.mqttUrl, ca, devices['ret-b']!);
    expect(await retainedSeen(reader, 'devices/ret-b/#')).toEqual([
      'devices/ret-b/state/secret=pin=1234',
      'devices/ret-b/state=on',
    ]);
    // Clearing after the restart is durable too: a second restart does not bring it back.
    await reader.publishAsync('devices/ret-b/state', '', { qos: 1, retain: true });
    await reader.endAsync();
    await s.stop({ keepData: true });
    s = await startTestServer({}, { dataDir });
    ca = readFileSync(s.caFile, 'utf8');
    const again = await connectMqtt(s.mqttUrl, ca, devices['ret-b']!);
    expect(await retainedSeen(again, 'devices/ret-b/#')).toEqual(['devices/ret-b/state/secret=pin=1234']);
    await again.endAsync();
  });
});

describe('retained messages of a topic with a data schema (privacy)', () => {
  let s: TestServer;
  let ca: string;
  let device: { id: string; key: string; cert: string };
  const reading = { user_id: 'u-17', lat: 48.137154, lon: 11.576124, temp: 21.5 };
  const located = (axis: 'latitude' | 'longitude') => ({
    category: 'user.location.precise',
    uses: ['essential.service.operations'],
    lawfulBasis: 'contract',
    retention: '30d',
    transform: {
      generalise: axis === 'latitude' ? { grid: 1000, axis } : { grid: 1000, axis, latitudeField: 'lat' },
    },
  });

  beforeAll(async () => {
    s = await startTestServer({});
    ca = readFileSync(s.caFile, 'utf8');
    device = await enrollInProcess(s, 'ret-p');
    await s.platform.privacy.putSchema(
      {
        name: 'room',
        topic: 'devices/+/room',
        subject: { field: 'user_id' },
        schema: {
          type: 'object',
          additionalProperties: false,
          properties: {
            user_id: { type: 'string' },
            lat: { type: 'number' },
            lon: { type: 'number' },
            temp: { type: 'number' },
          },
        },
        fields: {
          user_id: {
            category: 'user.unique_id',
            uses: ['essential.service.operations'],
            transform: 'pseudonymise',
            lawfulBasis: 'contract',
            retention: '30d',
          },
          lat: located('latitude'),
          lon: located('longitude'),
          temp: { category: 'system.operations' },
        },
      },
      'user:test',
    );
  });
  afterAll(async () => s?.stop());

  it('keeps the kept form with its subject and schema, and delivers it live (QoS 0, 1) and retained', async () => {
    const d = await connectMqtt(s.mqttUrl, ca, device);
    const live: { qos: number; payload: Record<string, unknown> }[] = [];
    d.on('message', (_topic, payload, packet) => {
      if (!packet.retain)
        live.push({ qos: packet.qos, payload: JSON.parse(payload.toString()) as Record<string, unknown> });
    });
    await d.subscribeAsync('devices/ret-p/room', { qos: 1 });
    await d.publishAsync('devices/ret-p/room', JSON.stringify(reading), { qos: 0 });
    await d.publishAsync('devices/ret-p/room', JSON.stringify(reading), { qos: 1, retain: true });
    await expect.poll(() => live.length).toBe(2);
    // A device subscriber has no purpose: the transforms, at either QoS.
    expect(live.map((m) => m.qos).sort()).toEqual([0, 1]);
    for (const { payload } of live) {
      expect(payload.user_id).toMatch(/^ps1\./);
      expect(payload.lat).not.toBe(reading.lat);
      expect(payload.temp).toBe(21.5);
    }
    await d.endAsync();

    const rows = await s.platform.store.db
      .selectFrom('retained_messages')
      .selectAll()
      .where('topic', '=', 'devices/ret-p/room')
      .execute();
    expect(rows.map((r) => [r.subject_id, r.data_schema])).toEqual([['u-17', 'room']]);
    const kept = JSON.parse(Buffer.from(rows[0]?.payload ?? '', 'base64').toString()) as Record<
      string,
      unknown
    >;
    expect(kept).toEqual(live[0]?.payload);

    const again = await connectMqtt(s.mqttUrl, ca, device);
    const seen = await retainedSeen(again, 'devices/ret-p/room');
    await again.endAsync();
    expect(seen.map((m) => JSON.parse(m.slice('devices/ret-p/room='.length)) as unknown)).toEqual([kept]);
  });

  it('forgets the retained message of a subject the CLI erased (another process): a new subscriber gets none', async () => {
    const d = await connectMqtt(s.mqttUrl, ca, device);
    await d.publishAsync('devices/ret-p/room', JSON.stringify(reading), { qos: 1, retain: true });
    expect(await retainedSeen(d, 'devices/ret-p/room')).toHaveLength(1);
    await d.endAsync();

    const add = await s.cli(['privacy', 'subject', 'add', 'u-17']);
    expect(add.code, add.stderr).toBe(0);
    const erase = await s.cli(['privacy', 'request', 'erase', 'u-17', '--json']);
    expect(erase.code, erase.stderr).toBe(0);
    const { request } = JSON.parse(erase.stdout) as {
      request: { status: string; result: { retained: number } };
    };
    expect(request).toMatchObject({ status: 'completed', result: { retained: 1 } });
    const rows = await s.platform.store.db.selectFrom('retained_messages').selectAll().execute();
    expect(rows.filter((r) => r.subject_id === 'u-17')).toEqual([]);

    // The server follows the receipt through the audit log and drops its copy in memory.
    await expect
      .poll(async () => {
        const reader = await connectMqtt(s.mqttUrl, ca, device);
        const seen = await retainedSeen(reader, 'devices/ret-p/room', 200);
        await reader.endAsync();
        return seen;
      })
      .toEqual([]);
  });
});
