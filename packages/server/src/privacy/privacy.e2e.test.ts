import { writeFileSync } from 'node:fs';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf } from '../events/index.ts';
import { connectMqtt, httpsRequest } from '../test-support/clients.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { sleep, waitFor } from '../test-support/wait.ts';

/**
 * Issue 15's acceptance, as a new user would try it: the real server (SQLite, and PostgreSQL when the tests
 * have one), the real `bulwark` CLI, mqtt.js devices with their certificates and two applications with
 * different purposes. A data schema classifies the fields; what each app receives, what the telemetry store
 * keeps, a refused payload, the erasure of a data subject with its receipt, retention and the Art. 30 record.
 */

const SCHEMA = `# The issue's example: a room sensor that names its user and where they are.
name: room-sensor
topic: devices/+/telemetry
subject: { field: user_id, kind: customer }
schema:
  type: object
  additionalProperties: false
  required: [user_id, temp]
  properties:
    user_id: { type: string }
    lat: { type: number, minimum: -90, maximum: 90 }
    lon: { type: number, minimum: -180, maximum: 180 }
    temp: { type: number }
    hr: { type: integer, minimum: 20, maximum: 250 }
fields:
  user_id:
    category: user.unique_id
    uses: [essential.service.operations]
    transform: pseudonymise
    lawfulBasis: contract
    retention: 30d
  lat:
    category: user.location.precise
    uses: [essential.service.operations]
    transform: { generalise: { grid: 1000, axis: latitude } }
    lawfulBasis: contract
    retention: 30d
  lon:
    category: user.location.precise
    uses: [essential.service.operations]
    transform: { generalise: { grid: 1000, axis: longitude, latitudeField: lat } }
    lawfulBasis: contract
    retention: 30d
  temp:
    category: system.operations
    lawfulBasis: legitimate_interests
  hr:
    category: user.biometric.health
    specialCondition: explicit_consent
    uses: [essential.service.operations]
    transform: encrypt
    lawfulBasis: consent
    retention: 30d
`;

const READING = { user_id: 'u-17', lat: 48.137154, lon: 11.576124, temp: 21.5 };

/** Metres between two points (equirectangular: exact enough at 1 km). */
function metres(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const toRad = Math.PI / 180;
  const x = (b.lon - a.lon) * toRad * Math.cos(((a.lat + b.lat) / 2) * toRad);
  const y = (b.lat - a.lat) * toRad;
  return Math.hypot(x, y) * 6_371_000;
}

interface Received {
  topic: string;
  body: Record<string, unknown>;
}

describe.each(testDialects)('privacy by design (%s)', (dialect) => {
  let s: TestServer;
  let db: TestStore | undefined;
  let ca: string;
  const clients: MqttClient[] = [];
  const inbox: Record<string, Received[]> = { analytics: [], ops: [] };
  let sensor: MqttClient;

  const audit = async () => s.platform.audit.readAfter(0, 100_000);
  const cli = async (args: string[]) => {
    const r = await s.cli(args);
    if (r.code !== 0) throw new Error(`bulwark ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  async function connectApp(name: string, purpose: string): Promise<void> {
    await cli(['app', 'add', name, '--purpose', purpose, '--grant', 'subscribe devices/+/telemetry']);
    const { token } = JSON.parse(await cli(['app', 'token', name, '--json'])) as { token: string };
    const client = await mqtt.connectAsync(s.mqttUrl, {
      ca,
      username: name,
      password: token,
      clientId: name,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(client);
    client.on('message', (topic, payload) =>
      inbox[name]?.push({ topic, body: JSON.parse(payload.toString()) as Record<string, unknown> }),
    );
    await client.subscribeAsync('devices/+/telemetry', { qos: 1 });
  }

  beforeAll(async () => {
    db = dialect === 'postgres' ? await createTestStore('postgres') : undefined;
    s = await startTestServer(db?.location.url ? { 'database.url': db.location.url } : {});
    ca = (await import('node:fs')).readFileSync(s.caFile, 'utf8');
    const file = path.join(s.dataDir, 'room-sensor.yaml');
    writeFileSync(file, SCHEMA);
    await cli(['data-schema', 'put', file]);
    await cli(['telemetry', 'enable', 'devices/+/telemetry', '--retention', '90d']);
    await cli(['privacy', 'subject', 'add', 'u-17', '--kind', 'customer']);
    await cli(['privacy', 'consent', 'give', 'u-17', 'essential.service.operations', '--notice', 'v1']);
    sensor = await connectMqtt(s.mqttUrl, ca, await enrollInProcess(s, 'sensor-1', 'sensors'));
    clients.push(sensor);
    await connectApp('analytics', 'analytics.reporting');
    await connectApp('ops', 'essential.service.operations');
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await s?.stop();
    await db?.cleanup();
  });

  it('1: each app receives what its purpose allows; the telemetry store keeps what the schema says', async () => {
    // The server follows the CLI's schema and consent through the audit log: publish until both apps have one.
    await waitFor('both apps receive the reading', async () => {
      await sensor.publishAsync('devices/sensor-1/telemetry', JSON.stringify(READING), { qos: 1 });
      await sleep(100);
      return (inbox.analytics?.length ?? 0) > 0 && (inbox.ops?.length ?? 0) > 0;
    });
    const analytics = inbox.analytics?.at(-1)?.body ?? {};
    const ops = inbox.ops?.at(-1)?.body ?? {};

    // analytics.reporting: a pseudonym instead of u-17, coordinates on a 1 km grid, the temperature as sent.
    expect(analytics.user_id).toMatch(/^ps1\./);
    expect(JSON.stringify(analytics)).not.toContain('u-17');
    expect(analytics.temp).toBe(21.5);
    const coarse = { lat: analytics.lat as number, lon: analytics.lon as number };
    expect(coarse).not.toEqual({ lat: READING.lat, lon: READING.lon });
    expect(metres(coarse, READING)).toBeLessThan(710); // within the cell: at most half its diagonal
    // A point 100 m away in the same cell gives the same coarse value; the pseudonym is stable.
    inbox.analytics = [];
    const near = { ...READING, lat: coarse.lat + 0.0002, lon: coarse.lon + 0.0002 };
    await sensor.publishAsync('devices/sensor-1/telemetry', JSON.stringify(near), { qos: 1 });
    await waitFor('the second reading', () => (inbox.analytics?.length ?? 0) > 0);
    expect(inbox.analytics?.[0]?.body).toMatchObject({
      lat: coarse.lat,
      lon: coarse.lon,
      user_id: analytics.user_id,
    });

    // essential.service.operations, allowed the clear values: exactly what the device sent.
    expect(ops).toEqual(READING);

    // The store keeps the transformed form (personal fields default to `store: transformed`).
    const page = await s.platform.telemetry.query({ deviceId: 'sensor-1' });
    expect(page.items.length).toBeGreaterThan(0);
    const stored = JSON.stringify(page.items.map((m) => m.payload));
    expect(stored).not.toContain('u-17');
    expect(stored).not.toContain('48.137154');
    expect(stored).toContain('ps1.');
  }, 60_000);

  it('2: a payload that breaks the schema is refused and counted; nothing is forwarded or stored', async () => {
    const before = { analytics: inbox.analytics?.length ?? 0, ops: inbox.ops?.length ?? 0 };
    const storedBefore = (await s.platform.telemetry.query({ deviceId: 'sensor-2' })).items.length;
    const bad = await connectMqtt(s.mqttUrl, ca, await enrollInProcess(s, 'sensor-2', 'sensors'));
    clients.push(bad);
    const closed = new Promise<void>((resolve) => bad.once('close', () => resolve()));
    bad.publish('devices/sensor-2/telemetry', JSON.stringify({ user_id: 'u-18', temp: 'hot' }), { qos: 1 });
    await closed; // MQTT 3.1.1 has no negative PUBACK: the connection is closed [MQTT-3.3.5-2]
    const refused = await waitFor('the refusal event', async () =>
      entriesOf(await audit(), 'privacy.payload_refused').find((e) => e.subject === 'device:sensor-2'),
    );
    expect(refused.data.schema).toBe('room-sensor');
    expect(refused.data.reason).toMatch(/temp/);
    await sleep(300);
    expect(inbox.analytics?.length).toBe(before.analytics);
    expect(inbox.ops?.length).toBe(before.ops);
    expect((await s.platform.telemetry.query({ deviceId: 'sensor-2' })).items.length).toBe(storedBefore);
    const metrics = await httpsRequest(`${s.httpsUrl}/metrics`, {
      ca,
      headers: { authorization: `Bearer ${await apiToken(s, 'metrics-reader', 'admin')}` },
    });
    expect(metrics.body).toMatch(/^bulwark_privacy_payloads_refused_total [1-9]\d*$/m);
  }, 60_000);

  it('3: erasing u-17 empties its export, shreds its encrypted fields everywhere, and the audit log verifies', async () => {
    // A reading with a heart rate: encrypted for everyone but the allowed purpose, and in the store.
    inbox.analytics = [];
    await sensor.publishAsync('devices/sensor-1/telemetry', JSON.stringify({ ...READING, hr: 72 }), {
      qos: 1,
    });
    await waitFor('the encrypted reading', () => inbox.analytics?.some((m) => 'hr' in m.body) ?? false);
    const token = inbox.analytics?.find((m) => 'hr' in m.body)?.body.hr as string;
    expect(token).toMatch(/^bwenc1\./);
    const before = JSON.parse(await cli(['privacy', 'request', 'export', 'u-17', '--json'])) as {
      export: { modules: Record<string, unknown[]> };
    };
    expect(before.export.modules.telemetry?.length).toBeGreaterThan(0);

    const erase = JSON.parse(await cli(['privacy', 'request', 'erase', 'u-17', '--json'])) as {
      request: { id: string; status: string };
    };
    expect(erase.request.status).toBe('completed');

    // The export of the subject is empty in every module.
    const after = JSON.parse(await cli(['privacy', 'request', 'export', 'u-17', '--json'])) as {
      export: { modules: Record<string, unknown[]>; audit: unknown[] };
    };
    for (const [module, records] of Object.entries(after.export.modules))
      expect(records, `module ${module}`).toEqual([]);
    expect(after.export.audit).toEqual([]);

    // The copy the analytics app received can no longer be decrypted: its key is gone.
    const decrypted = await s.platform.privacy.decrypt(
      { schema: 'room-sensor', field: 'hr', values: [token], purpose: 'essential.service.operations' },
      'test',
    );
    expect(decrypted.values).toEqual([null]);

    // The audit log still verifies, holds the receipt (counts, never the id) and no longer names u-17.
    const verify = await s.cli(['audit-log', 'verify']);
    expect(verify.code, verify.stderr + verify.stdout).toBe(0);
    const receipt = entriesOf(await audit(), 'privacy.request_completed').find(
      (e) => e.data.requestId === erase.request.id,
    );
    expect(receipt?.subject).toBe(`request:${erase.request.id}`);
    expect(receipt?.data.counts.telemetry).toBeGreaterThan(0);
    const raw = await s.platform.store.db
      .selectFrom('audit_log')
      .select(['actor', 'subject', 'data'])
      .execute();
    expect(JSON.stringify(raw)).not.toContain('u-17');
    expect(JSON.stringify(await audit())).not.toContain('u-17');
  }, 90_000);

  it('4: retention deletes exactly what is past its limit; the Art. 30 record lists every classified field', async () => {
    for (const temp of [19, 20]) {
      await sensor.publishAsync(
        'devices/sensor-1/telemetry',
        JSON.stringify({ ...READING, user_id: 'u-20', temp }),
        {
          qos: 1,
        },
      );
      await sleep(20);
    }
    const rows = await waitFor('two stored rows of u-20', async () => {
      const page = await s.platform.telemetry.query({ deviceId: 'sensor-1' });
      return page.items.length >= 2 && page.items;
    });
    const newest = Math.max(...rows.map((r) => r.receivedAt));
    const limit = 30 * 86_400_000;
    // Just before the newest row reaches the limit: only the rows older than it go.
    const runs = await s.platform.privacy.applyRetention(newest + limit);
    const left = (await s.platform.telemetry.query({ deviceId: 'sensor-1' })).items;
    expect(left.map((r) => r.receivedAt)).toEqual([newest]);
    expect(runs.find((r) => r.store === 'telemetry')?.deleted).toBe(
      rows.filter((r) => r.receivedAt < newest).length,
    );
    expect(entriesOf(await audit(), 'privacy.retention_applied').length).toBeGreaterThan(0);

    const record = JSON.parse(await cli(['privacy', 'record', '--format', 'json'])) as {
      activities: {
        name: string;
        fields: {
          path: string;
          category: string;
          purposes: string[];
          lawfulBasis: string;
          retention: string | null;
        }[];
      }[];
    };
    const activity = record.activities.find((a) => a.name === 'room-sensor');
    expect(activity?.fields.map((f) => f.path).sort()).toEqual(['hr', 'lat', 'lon', 'temp', 'user_id']);
    const lat = activity?.fields.find((f) => f.path === 'lat');
    expect(lat).toMatchObject({
      category: 'user.location.precise',
      lawfulBasis: 'contract',
      retention: '30d',
    });
    expect(lat?.purposes).toContain('essential.service.operations');
    const html = await cli(['privacy', 'record', '--format', 'html']);
    for (const word of ['room-sensor', 'user.location.precise', 'contract', 'user.biometric.health'])
      expect(html).toContain(word);
  }, 60_000);
});
