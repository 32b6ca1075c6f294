import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollInProcess } from './server.ts';
import { createTestPlatform, type TestPlatform } from './platform.ts';
import { waitFor } from './wait.ts';

describe('createTestPlatform (no sockets)', () => {
  let t: TestPlatform;
  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('serves the API through inject() to a token and to a session with its CSRF token', async () => {
    const admin = await t.signIn('admin');
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/devices', headers: admin.headers });
    expect(list.statusCode).toBe(200);
    const session = await t.signInSession('admin');
    const me = await t.app.inject({ method: 'GET', url: '/api/v1/auth/session', headers: session.headers });
    expect(me.json()).toMatchObject({ username: session.username, via: 'session', state: 'active' });
    const add = await t.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: session.headers,
      payload: { id: 'pump-9' },
    });
    expect(add.statusCode).toBe(201);
    const noCsrf = await t.app.inject({
      method: 'POST',
      url: '/api/v1/devices',
      headers: { cookie: session.headers.cookie ?? '' },
      payload: { id: 'pump-10' },
    });
    expect(noCsrf.statusCode).toBe(403);
  });

  it('connects an mqtt.js client to the broker in memory, as the certificate names it', async () => {
    const a = await enrollInProcess(t, 'sensor-a');
    const b = await enrollInProcess(t, 'sensor-b');
    const client = await t.mqtt(a);
    await waitFor('the session', () => t.platform.broker.connectedDevices().includes('sensor-a'));
    await client.publishAsync('devices/sensor-a/telemetry', 'hello', { qos: 1 });
    // Another device's identity does not get this one's client id.
    await expect(t.mqtt(b, { clientId: 'sensor-a' })).rejects.toThrow();
    await client.endAsync();
  });
});
