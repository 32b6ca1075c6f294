import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, httpsRequest } from '../test-support/clients.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { sleep, waitFor } from '../test-support/wait.ts';
import type { Alert } from './index.ts';

let s: TestServer;

/**
 * Issue 5, acceptance 1: with real MQTT clients over mTLS, a flood, a topic scan, a guessing run from one
 * address, a cloned certificate used from two addresses and a silent device each raise exactly the
 * expected alert, with evidence, while 50 well-behaved devices over the same period raise none.
 */
describe('monitor: misbehaving devices among a well-behaved fleet', () => {
  let ca: string;
  const clients: MqttClient[] = [];
  const timers: NodeJS.Timeout[] = [];

  beforeAll(async () => {
    s = await startTestServer({
      'monitor.tickInterval': 100,
      'monitor.silentAfter': 2500,
      // The flooder meets the default-style quota; the fleet stays well under it.
      'firewall.publishRate': 50,
      'firewall.publishBurst': 100,
      'firewall.throttlesBeforeDisconnect': 3,
    });
    ca = s.platform.pki ? (await s.platform.pki()).chainPem() : '';
  }, 60_000);

  afterAll(async () => {
    for (const t of timers) clearInterval(t);
    for (const c of clients) c.end(true);
    await s.stop();
  });

  const open = async (creds: { id: string; key: string; cert: string }, from = '127.0.0.1') => {
    const c = await connectMqtt(s.mqttUrl.replace('localhost', '127.0.0.1'), ca, creds, {
      localAddress: from,
      servername: 'localhost',
    } as never);
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };

  it('raises exactly one alert per misbehaviour and none for the 50 calm devices', async () => {
    const fleet = await Promise.all(
      Array.from({ length: 50 }, (_, i) => enrollInProcess(s, `calm-${i}`, 'calm')),
    );
    const [flooder, scanner, clone, silent] = await Promise.all(
      ['flooder-1', 'scanner-1', 'camera-1', 'meter-1'].map((id) => enrollInProcess(s, id, 'odd')),
    );
    // The calm fleet: each device reports telemetry five times a second for the whole scenario.
    for (const creds of fleet) {
      const c = await open(creds);
      let n = 0;
      timers.push(
        setInterval(
          () => c.publish(`devices/${creds.id}/telemetry`, JSON.stringify({ n: n++ }), { qos: 1 }),
          200,
        ),
      );
    }

    // A silent device: one heartbeat, then nothing while staying connected.
    const quiet = await open(silent!);
    await quiet.publishAsync(
      `devices/${silent!.id}/heartbeat`,
      JSON.stringify({ ts: Date.now(), seq: 1, uptimeS: 1 }),
      { qos: 1 },
    );

    // A flood: as fast as the socket takes it, until the firewall throttles and then disconnects it.
    const flood = await open(flooder!);
    const payload = Buffer.alloc(512, 7);
    const closed = new Promise<void>((resolve) => flood.once('close', () => resolve()));
    for (let i = 0; i < 3000 && flood.connected; i++)
      flood.publish(`devices/${flooder!.id}/telemetry`, payload, { qos: 0 });
    await Promise.race([closed, sleep(10_000)]);
    expect(flood.connected).toBe(false);
    // It comes back and behaves (else it would rightly be reported silent too).
    const calmAgain = await open(flooder!);
    timers.push(
      setInterval(() => calmAgain.publish(`devices/${flooder!.id}/telemetry`, '{}', { qos: 1 }), 200),
    );

    // A topic scan: subscriptions to other devices' topics and the broker's internals, each refused.
    const scan = await open(scanner!);
    for (const topic of [
      'devices/calm-1/#',
      'devices/calm-2/#',
      'devices/+/telemetry',
      '#',
      '$SYS/#',
      'admin/#',
      'devices/calm-3/commands',
      'devices/meter-1/#',
      'factory/reset',
      'devices/calm-4/#',
      'devices/calm-5/secrets',
    ])
      await scan.subscribeAsync(topic).catch(() => undefined);

    // Guessing: sign-in attempts for many user names from one address.
    for (const username of ['admin', 'root', 'operator', 'support', 'service', 'test']) {
      const res = await httpsRequest(`${s.httpsUrl}/api/v1/auth/sign-in`, {
        method: 'POST',
        ca,
        localAddress: '127.0.0.2',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username, password: 'Guess-1234567' }),
      });
      expect([401, 429]).toContain(res.status);
    }

    // A cloned certificate: the same identity from two addresses at once.
    const original = await open(clone!, '127.0.0.3');
    original.on('close', () => undefined);
    await open(clone!, '127.0.0.4');

    const expected = [
      ['payload_flood', 'device:flooder-1'],
      ['topic_scan', 'device:scanner-1'],
      ['guessing', 'address:127.0.0.2'],
      ['cloned_identity', 'device:camera-1'],
      ['device_silent', 'device:meter-1'],
    ];
    const alerts = await waitFor('the five alerts', async () => {
      const list = await s.platform.monitor.alerts.list({ status: ['open', 'acknowledged', 'resolved'] });
      return expected.every(([d, sub]) => list.some((a) => a.detector === d && a.subject === sub))
        ? list
        : undefined;
    });
    // Let the calm fleet run on for a while longer: still nothing about it.
    await sleep(1500);
    const all = await s.platform.monitor.alerts.list({ status: ['open', 'acknowledged', 'resolved'] });
    expect(all.map((a) => [a.detector, a.subject]).sort()).toEqual([...expected].sort());
    expect(all.filter((a) => a.deviceId?.startsWith('calm-'))).toEqual([]);
    expect(all.length).toBe(alerts.length);

    const by = (d: string) => all.find((a) => a.detector === d) as Alert;
    expect(by('payload_flood').evidence).toMatchObject({
      firewall: expect.any(String) as string,
      reason: expect.any(String) as string,
    });
    expect(by('payload_flood').severity).toBe('high');
    expect(by('topic_scan').evidence.distinctTopics).toBeGreaterThanOrEqual(10);
    expect(by('topic_scan').evidence.deniedTopics).toContain('$SYS/#');
    expect(by('guessing').evidence).toMatchObject({
      address: '127.0.0.2',
      distinctIdentities: expect.any(Number) as number,
    });
    expect(by('guessing').evidence.distinctIdentities).toBeGreaterThanOrEqual(5);
    expect((by('cloned_identity').evidence.addresses as string[]).sort()).toEqual(['127.0.0.3', '127.0.0.4']);
    expect(by('cloned_identity').severity).toBe('critical');
    expect(by('device_silent').evidence.silentForMs).toBeGreaterThan(2500);

    // Every raise is an event in the audit log, with its evidence.
    const raised = await s.platform.audit.query({ type: 'alert.raised', limit: 100 });
    expect(raised.map((e) => e.data.detector).sort()).toEqual(expected.map(([d]) => d).sort());
  }, 90_000);
});
