import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entriesOf } from '../events/index.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

interface Summary {
  devices: number;
  enrolled: number;
  reused: number;
  connected: number;
  telemetry: number;
  attacks: { kind: string; device: string | null; expect: string }[];
  stoppedBy: string;
}

const ids = ['sim-0001', 'sim-0002', 'sim-0003'];

/**
 * Issue 20, "a first hour that shows value": `bulwark simulate` (the built CLI, in its own process on the
 * server's data directory) registers devices, enrolls them over EST against the running server, connects them
 * over mutual TLS and sends telemetry; its attacks raise the platform's own detectors, and the default
 * profile's response follows. A second run reuses the enrolled devices.
 */
describe('bulwark simulate against the real server', { timeout: 90_000 }, () => {
  let s: TestServer;
  const simulate = (args: string[]) =>
    s.cli(['simulate', '--url', s.httpsUrl, '--mqtt', s.mqttUrl, '--json', ...args]);

  beforeAll(async () => {
    s = await startTestServer({ 'monitor.defaultProfile': true }); // as a new installation has it
    // The telemetry store keeps what the devices publish: what arrived can be read back.
    await s.platform.telemetry.setPattern('devices/+/telemetry', { retentionMs: 3_600_000 }, 'test');
  });
  afterAll(async () => s?.stop());

  it('enrolls and connects the devices, sends telemetry, and a tamper report and a topic scan raise their alerts', async () => {
    const run = simulate([
      '--devices',
      '3',
      '--duration',
      '20s',
      '--interval',
      '2s',
      '--attack',
      'tamper,scan',
    ]);

    const devices = await waitFor('the three devices enrolled and online', async () => {
      const found = await Promise.all(ids.map((id) => s.platform.devices.find(id)));
      return found.every((d) => d?.status === 'active' && d.online) && found;
    });
    expect(devices.map((d) => [d?.id, d?.group, d?.attributes.model])).toEqual([
      ['sim-0001', 'buildings', 'thermostat'],
      ['sim-0002', 'pumps', 'pump'],
      ['sim-0003', 'meters', 'meter'],
    ]);

    const stored = await waitFor('telemetry from every device', async () => {
      const pages = await Promise.all(
        ids.map((deviceId) =>
          s.platform.telemetry.query({ deviceId, topic: `devices/${deviceId}/telemetry` }),
        ),
      );
      return pages.every((p) => p.items.length > 0) && pages.map((p) => p.items[0]?.payload);
    });
    // Each device's readings, by its model: the field names with their types.
    const shapes = stored.map((payload) =>
      Object.entries(payload as Record<string, unknown>).map(([k, v]) => `${k}:${typeof v}`),
    );
    expect(shapes).toEqual([
      ['ts:number', 'temperature:number', 'humidity:number'],
      ['ts:number', 'flow:number', 'pressure:number'],
      ['ts:number', 'power:number', 'voltage:number'],
    ]);

    // tamper: a signed report from sim-0001; the default profile quarantines the device.
    const tamper = await waitFor('the tamper alert and its quarantine', async () => {
      const [a] = await s.platform.monitor.alerts.list({ detector: 'tamper_report', deviceId: 'sim-0001' });
      return a?.responsesRun.some((r) => r.action === 'quarantine' && r.ok) && a;
    });
    expect(tamper.title).toBe('sim-0001 reported tampering: enclosure-opened');
    expect((await s.platform.devices.find('sim-0001'))?.state).toBe('quarantined');

    // scan: sim-0002 subscribes to what is not its own.
    const scan = await waitFor('the topic scan alert', async () => {
      const [a] = await s.platform.monitor.alerts.list({ detector: 'topic_scan', deviceId: 'sim-0002' });
      return a;
    });
    expect(scan.evidence.distinctTopics).toBeGreaterThanOrEqual(10);

    const result = await run;
    expect(result.stderr).toMatch(/registered 3 devices: 3 added/);
    expect(result.stderr).toMatch(/enrolled 3\/3 devices over EST/);
    expect(result.stderr).toMatch(/connected 3\/3 devices/);
    expect(result.stderr).toMatch(/attack tamper from sim-0001: expect alert tamper_report/);
    expect(result.stderr).toMatch(
      /attack scan from sim-0002: subscribed to \d+ topic filters .*, \d+ refused/,
    );
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as Summary;
    expect(summary).toMatchObject({
      devices: 3,
      enrolled: 3,
      reused: 0,
      connected: 3,
      stoppedBy: 'duration',
    });
    expect(summary.telemetry).toBeGreaterThan(0);
    expect(summary.attacks.map((a) => [a.kind, a.device])).toEqual([
      ['tamper', 'sim-0001'],
      ['scan', 'sim-0002'],
    ]);
    // Every device said DISCONNECT at the end.
    await waitFor('the devices offline', async () => {
      const found = await Promise.all(ids.map((id) => s.platform.devices.find(id)));
      return found.every((d) => d?.online === false);
    });
  });

  it('a second run reuses the devices enrolled by the first', async () => {
    const enrollments = async () =>
      entriesOf(await s.platform.audit.readAfter(0, 10_000), 'certificate.issued').filter((e) =>
        e.subject?.startsWith('device:sim-'),
      ).length;
    const before = await enrollments();
    expect(before).toBe(3);
    const since = Date.now();

    const result = await simulate(['--devices', '3', '--duration', '3s']);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /registered 3 devices: 0 added, 3 with the identity kept from an earlier run/,
    );
    expect(result.stderr).toMatch(/quarantined: sim-0001/);
    expect(JSON.parse(result.stdout)).toMatchObject({ devices: 3, enrolled: 0, reused: 3, connected: 3 });
    expect(await enrollments()).toBe(before);
    // They connected again, each with the certificate it kept.
    const connects = entriesOf(await s.platform.audit.readAfter(0, 10_000), 'mqtt.connected').filter(
      (e) => e.ts >= since,
    );
    expect(new Set(connects.map((e) => e.subject))).toEqual(new Set(ids.map((id) => `device:${id}`)));
  });
});
