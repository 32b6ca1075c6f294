import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MqttClient } from 'mqtt';
import { api } from '@bulwark/protocol';
import { createTestPlatform, type TestCredentials, type TestPlatform } from '../test-support/platform.ts';
import { enrollInProcess } from '../test-support/server.ts';

/** The telemetry API and the broker stage in one platform (in-process MQTT, `app.inject()`). */
describe('the telemetry store through the broker and the API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let admin: TestCredentials;
  let pump: MqttClient;

  const get = (url: string, who: TestCredentials = admin) =>
    t.app.inject({ method: 'GET', url, headers: who.headers });

  beforeAll(async () => {
    t = await createTestPlatform();
    admin = await t.signIn('admin');
    const device = await enrollInProcess(t, 'pump-1', 'pumps');
    await enrollInProcess(t, 'valve-1', 'valves');
    pump = await t.mqtt(device);
  });
  afterAll(async () => {
    pump?.end(true);
    await t?.close();
  });

  it('stores a QoS 1 message before its PUBACK and serves it by device', async () => {
    const set = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/telemetry/patterns',
      headers: admin.headers,
      payload: { pattern: 'devices/+/telemetry', retention: '30d' },
    });
    expect(set.statusCode).toBe(200);
    expect(api.telemetry.setPattern.response[200].parse(set.json())).toMatchObject({
      pattern: 'devices/+/telemetry',
      retentionMs: 30 * 86_400_000,
    });

    await pump.publishAsync('devices/pump-1/telemetry', '{"level":7}', { qos: 1 });
    await pump.publishAsync('devices/pump-1/state', '{"not":"stored"}', { qos: 1 });
    // The PUBACK came after the commit: the message is there without waiting.
    const res = await get('/api/v1/devices/pump-1/telemetry');
    expect(res.statusCode).toBe(200);
    const page = api.telemetry.query.response[200].parse(res.json());
    expect(page.items).toMatchObject([
      { topic: 'devices/pump-1/telemetry', payload: { level: 7 }, bytes: 11 },
    ]);
    expect(page.next).toBeNull();

    const ranged = await get(`/api/v1/devices/pump-1/telemetry?to=${page.items[0]?.receivedAt ?? 0}`);
    expect(ranged.json()).toEqual({ items: [], next: null });
    const iso = new Date((page.items[0]?.receivedAt ?? 0) - 1).toISOString();
    expect(
      (await get(`/api/v1/devices/pump-1/telemetry?from=${iso}`)).json<{ items: unknown[] }>().items,
    ).toHaveLength(1);
    expect((await get('/api/v1/devices/pump-1/telemetry?from=soon')).statusCode).toBe(400);
  });

  it('answers 404 for a device outside the reader’s groups or unknown', async () => {
    const valves = await t.signIn('viewer', { groups: ['valves'] });
    expect((await get('/api/v1/devices/pump-1/telemetry', valves)).statusCode).toBe(404);
    expect((await get('/api/v1/devices/valve-1/telemetry', valves)).statusCode).toBe(200);
    expect((await get('/api/v1/devices/nobody/telemetry')).statusCode).toBe(404);
  });

  it('lets only fleet-wide writers change patterns', async () => {
    const operator = await t.signIn('operator');
    const refused = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/telemetry/patterns',
      headers: operator.headers,
      payload: { pattern: 'devices/+/state', retention: '1d' },
    });
    expect(refused.statusCode).toBe(403);
    const limited = await t.signIn('admin', { groups: ['pumps'] });
    const alsoRefused = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/telemetry/patterns',
      headers: limited.headers,
      payload: { pattern: 'devices/+/state', retention: '1d' },
    });
    expect(alsoRefused.statusCode).toBe(403);
    const bad = await t.app.inject({
      method: 'PUT',
      url: '/api/v1/telemetry/patterns',
      headers: admin.headers,
      payload: { pattern: 'sensors/#', retention: '1d' },
    });
    expect(bad.statusCode).toBe(400);
  });

  it('lists patterns with their counts and removes one by its encoded name, with its rows', async () => {
    const listed = api.telemetry.patterns.response[200].parse(
      (await get('/api/v1/telemetry/patterns')).json(),
    );
    expect(listed).toMatchObject([{ pattern: 'devices/+/telemetry', messages: 1 }]);
    const removed = await t.app.inject({
      method: 'DELETE',
      url: `/api/v1/telemetry/patterns/${encodeURIComponent('devices/+/telemetry')}`,
      headers: admin.headers,
    });
    expect(removed.statusCode).toBe(200);
    expect(removed.json()).toEqual({ pattern: 'devices/+/telemetry', deleted: 1 });
    expect((await get('/api/v1/devices/pump-1/telemetry')).json()).toEqual({ items: [], next: null });
    // No pattern: nothing more is stored.
    await pump.publishAsync('devices/pump-1/telemetry', '{"level":8}', { qos: 1 });
    expect((await get('/api/v1/devices/pump-1/telemetry')).json()).toEqual({ items: [], next: null });
  });
});
