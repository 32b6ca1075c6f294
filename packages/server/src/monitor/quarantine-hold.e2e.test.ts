import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt } from '../test-support/clients.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { sleep, waitFor } from '../test-support/wait.ts';
import type { Alert } from './index.ts';

/**
 * Issue 12, acceptance: on a fresh data directory a device that floods is quarantined by the automatic
 * response of the default security profile (the built-in payload_flood detector at its defaults); `bulwark device list --status
 * quarantined --json` lists it; its alert does not close itself when the flood detector's clear window has
 * passed while the device is still quarantined, and is resolved when an operator releases the device.
 */
describe('an alert whose response quarantined a device', () => {
  let s: TestServer;
  let ca: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    s = await startTestServer({
      'monitor.defaultProfile': true, // as a new installation has it
      'monitor.tickInterval': 100,
      'firewall.publishRate': 50,
      'firewall.publishBurst': 100,
      'firewall.throttlesBeforeDisconnect': 3,
    });
    ca = (await s.platform.pki()).chainPem();
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await s.stop();
  });

  it('stays open while the device is quarantined and is resolved when it is released', async () => {
    // Nothing attached by hand: a new installation's `default` profile quarantines a flooding device.
    const profiles = JSON.parse((await s.cli(['security-profile', 'list', '--json'])).stdout) as {
      name: string;
      attachments: { kind: string }[];
    }[];
    expect(profiles.map((p) => [p.name, p.attachments.map((a) => a.kind)])).toEqual([['default', ['all']]]);

    const flooder = await enrollInProcess(s, 'flooder-1', 'pumps');
    const flood = await connectMqtt(s.mqttUrl, ca, flooder);
    flood.on('error', () => undefined);
    clients.push(flood);
    const payload = Buffer.alloc(512, 7);
    for (let i = 0; i < 3000 && flood.connected; i++)
      flood.publish(`devices/${flooder.id}/telemetry`, payload, { qos: 0 });

    const alert = await waitFor('the flood alert with its quarantine', async () => {
      const [a] = await s.platform.monitor.alerts.list({ detector: 'payload_flood', deviceId: 'flooder-1' });
      return a?.responsesRun.some((r) => r.action === 'quarantine' && r.ok) ? a : undefined;
    });
    expect(alert.status).toBe('open');

    const listed = await s.cli(['device', 'list', '--status', 'quarantined', '--json']);
    expect(listed.code).toBe(0);
    const quarantined = JSON.parse(listed.stdout) as { id: string; state: string; status: string }[];
    expect(quarantined.map((d) => [d.id, d.state, d.status])).toEqual([
      ['flooder-1', 'quarantined', 'active'],
    ]);
    // The effective state is what `--status active` filters on too: a quarantined device is not active.
    const active = JSON.parse((await s.cli(['device', 'list', '--status', 'active', '--json'])).stdout) as {
      id: string;
    }[];
    expect(active.map((d) => d.id)).not.toContain('flooder-1');

    // `alerts show` names the response that ran.
    const shown = await s.cli(['alerts', 'show', alert.id]);
    expect(shown.stdout).toMatch(/responses run\n\s+\S+\s+quarantine\s+automatic\s+done: device flooder-1/);
    expect(shown.stdout).toContain(
      'held       open while flooder-1 is quarantined: resolve it, or release the device',
    );

    // The flood detector's clear window (60 s without throttling) passes: the engine's tick decides the
    // behaviour has cleared and asks for the alert to be resolved...
    s.platform.monitor.engine.tick(Date.now() + 5 * 60_000);
    // ...which runs after the tick's request on the same alert (one queue per alert): the alert stays open.
    await s.platform.monitor.alerts.autoResolve(
      'payload_flood',
      'device:flooder-1',
      'test: clear window passed',
    );
    const held = await s.platform.monitor.alerts.get(alert.id);
    expect(held.status).toBe('open');
    expect(held.resolvedAt).toBeNull();
    const openList = JSON.parse(
      (await s.cli(['alerts', 'list', '--device', 'flooder-1', '--json'])).stdout,
    ) as Alert[];
    expect(openList.map((a) => [a.id, a.status])).toEqual([[alert.id, 'open']]);

    // The operator releases the device: its alert is resolved, naming who released it.
    const released = await s.cli(['device', 'release', 'flooder-1', '--reason', 'firmware fixed']);
    expect(released.code).toBe(0);
    expect(released.stdout).toContain(`alert ${alert.id} (payload_flood) resolved`);
    const resolved = await s.platform.monitor.alerts.get(alert.id);
    expect(resolved).toMatchObject({
      status: 'resolved',
      resolvedBy: 'cli',
      resolution: 'device flooder-1 released from quarantine',
    });
    expect(JSON.parse((await s.cli(['device', 'list', '--status', 'quarantined', '--json'])).stdout)).toEqual(
      [],
    );
    // One resolution event, although the server (through the tail) and the CLI both apply the rule.
    await sleep(500);
    const events = await s.platform.audit.query({ type: 'alert.resolved', limit: 100 });
    expect(events.filter((e) => e.data.alertId === alert.id)).toHaveLength(1);
  }, 120_000);

  it('is resolved by the server when the device is released through the API path', async () => {
    const flooder = await enrollInProcess(s, 'flooder-2', 'pumps');
    const flood = await connectMqtt(s.mqttUrl, ca, flooder);
    flood.on('error', () => undefined);
    clients.push(flood);
    const payload = Buffer.alloc(512, 7);
    for (let i = 0; i < 3000 && flood.connected; i++)
      flood.publish(`devices/${flooder.id}/telemetry`, payload, { qos: 0 });
    const alert = await waitFor('the second flood alert with its quarantine', async () => {
      const [a] = await s.platform.monitor.alerts.list({ detector: 'payload_flood', deviceId: 'flooder-2' });
      return a?.responsesRun.some((r) => r.action === 'quarantine' && r.ok) ? a : undefined;
    });
    s.platform.monitor.engine.tick(Date.now() + 5 * 60_000);
    await s.platform.monitor.alerts.autoResolve(
      'payload_flood',
      'device:flooder-2',
      'test: clear window passed',
    );
    expect((await s.platform.monitor.alerts.get(alert.id)).status).toBe('open');
    // What `POST /api/v1/devices/{id}/release` does: the release event reaches the monitor's subscription.
    await s.platform.access.setQuarantine('flooder-2', { quarantined: false }, 'user:olga');
    const resolved = await waitFor('the alert resolved by the release', async () => {
      const a = await s.platform.monitor.alerts.get(alert.id);
      return a.status === 'resolved' ? a : undefined;
    });
    expect(resolved).toMatchObject({
      resolvedBy: 'user:olga',
      resolution: 'device flooder-2 released from quarantine',
    });
  }, 120_000);
});
