import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, type TestPlatform } from '../test-support/platform.ts';
import { apiToken, enrollInProcess } from '../test-support/server.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Security profiles, automatic and manual responses, the alert lifecycle and its live stream, device
 * metrics reports and Prometheus, over the HTTP API (inject) with mqtt.js devices, on the platform in
 * process: what is tested is the API and the services, not the wire (the CLI stays a real process).
 */
describe('monitor API: profiles, responses, alert lifecycle, stream and /metrics', () => {
  let s: TestPlatform;
  let admin: string;
  let viewer: string;
  const clients: MqttClient[] = [];

  const api = async (
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    body?: unknown,
    token = admin,
  ) => {
    const res = await s.app.inject({
      method,
      url: path,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
    const json = String(res.headers['content-type'] ?? '').includes('json')
      ? (JSON.parse(res.body) as Record<string, unknown>)
      : {};
    return { status: res.statusCode, body: json, text: res.body };
  };

  beforeAll(async () => {
    s = await createTestPlatform({ overrides: { 'monitor.tickInterval': 100 } });
    admin = await apiToken(s, 'alice', 'admin');
    viewer = await apiToken(s, 'victor', 'viewer');
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) c.end(true);
    await s.close();
  });

  it('refuses a bad profile with a reason and keeps the old one', async () => {
    const good = {
      behaviours: [
        {
          name: 'burst',
          metric: 'messages_sent',
          operator: 'gt',
          threshold: 30,
          window: '10s',
          severity: 'high',
        },
        { name: 'ports', metric: 'listening_tcp_ports', allowed: [8080], severity: 'medium' },
      ],
      builtins: { device_silent: { enabled: false } },
      responses: [
        { action: 'quarantine', detectors: ['burst'], mode: 'automatic' },
        { action: 'ban_address', detectors: ['*'], mode: 'manual', duration: '2h' },
      ],
    };
    const put = await api('PUT', '/api/v1/security-profiles/pumps', good);
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ name: 'pumps', version: 1 });
    for (const [bad, why] of [
      [
        { behaviours: [{ name: 'x', metric: 'messages_sent', window: '10s' }] },
        /behaviours\.0.*operator.*threshold/,
      ],
      [
        { behaviours: [{ name: 'x', metric: 'cpu_temperature', operator: 'gt', threshold: 1 }] },
        /metric must be one of/,
      ],
      [
        { behaviours: [{ name: 'x', metric: 'messages_sent', operator: 'gt', threshold: 1, window: '2s' }] },
        /duration between 10s and 3600s/,
      ],
      [{ responses: [{ action: 'reboot' }] }, /responses\.0\.action/],
      [
        {
          behaviours: [
            { name: 'x', metric: 'messages_sent', statistic: 'avg', operator: 'gt', threshold: 1 },
          ],
        },
        /counted per window: its statistic is sum/,
      ],
      [{ behaviours: [], surprise: true }, /surprise|Unrecognized/i],
    ] as const) {
      const res = await api('PUT', '/api/v1/security-profiles/pumps', bad);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(String(res.body.detail)).toMatch(why);
    }
    const kept = await api('GET', '/api/v1/security-profiles/pumps');
    expect(kept.body).toMatchObject({ version: 1 });
    expect((await api('PUT', '/api/v1/security-profiles/pumps', good, viewer)).status).toBe(403);
    const attached = await api('POST', '/api/v1/security-profiles/pumps/attachments', {
      kind: 'group',
      target: 'pumps',
    });
    expect(attached.body.attachments).toEqual([{ kind: 'group', target: 'pumps' }]);
  });

  it('quarantines a device automatically when it crosses its threshold, and streams the alert', async () => {
    const streamed: string[] = [];
    const streaming = new AbortController();
    const stream = (
      await s.app.inject({
        method: 'GET',
        url: '/api/v1/alerts/stream',
        headers: { authorization: `Bearer ${admin}` },
        payloadAsStream: true,
        signal: streaming.signal,
      })
    ).stream();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      for (const m of chunk.matchAll(/^event: (.+)$/gm)) streamed.push(m[1]!);
    });
    stream.on('error', () => undefined);
    await sleep(300);

    const creds = await enrollInProcess(s, 'pump-1', 'pumps');
    const device = await s.mqtt(creds);
    clients.push(device);
    device.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => device.once('close', () => resolve()));
    for (let i = 0; i < 31; i++)
      await device.publishAsync('devices/pump-1/telemetry', `{"i":${i}}`, { qos: 1 });
    // The 31st message crossed the threshold: the response quarantines the device; what it sends next is refused.
    const until = Date.now() + 5000;
    while (device.connected && Date.now() < until) {
      device.publish('devices/pump-1/telemetry', '{}', { qos: 0 });
      await sleep(50);
    }
    await Promise.race([closed, sleep(2000)]);
    expect(device.connected).toBe(false);

    const listed = await api('GET', '/api/v1/alerts?detector=burst');
    const alerts = listed.body.alerts as {
      id: string;
      evidence: Record<string, unknown>;
      severity: string;
      responses: string[];
    }[];
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.severity).toBe('high');
    expect(alerts[0]!.evidence).toMatchObject({
      metric: 'messages_sent',
      threshold: 30,
      value: 31,
      windowMs: 10_000,
    });
    expect(alerts[0]!.responses.sort()).toEqual(['ban_address', 'notify', 'quarantine']);
    const access = await api('GET', '/api/v1/devices/pump-1/access');
    expect(JSON.stringify(access.body)).toContain('quarantine');
    const executed = await s.platform.audit.query({ type: 'response.executed', limit: 10 });
    expect(executed).toHaveLength(1);
    expect(executed[0]!.data).toMatchObject({
      action: 'quarantine',
      automatic: true,
      alertId: alerts[0]!.id,
    });
    const quarantined = await s.platform.audit.query({ type: 'device.quarantined', limit: 10 });
    expect(quarantined[0]!.subject).toBe('device:pump-1');

    await sleep(300);
    expect(streamed).toEqual(expect.arrayContaining(['alert.raised', 'response.executed']));
    streaming.abort();

    const metrics = await api('GET', '/api/v1/devices/pump-1/metrics');
    expect(metrics.body).toMatchObject({ totals: { messagesSent: expect.any(Number) as number } });
    expect((metrics.body.totals as { messagesSent: number }).messagesSent).toBeGreaterThanOrEqual(31);
    expect((metrics.body.windows as Record<string, unknown>)['10s']).toBeDefined();
  });

  it('walks an alert through acknowledge, assign, note, a manual response and resolve', async () => {
    const { alerts } = (await api('GET', '/api/v1/alerts?detector=burst')).body as {
      alerts: { id: string }[];
    };
    const id = alerts[0]!.id;
    expect((await api('POST', `/api/v1/alerts/${id}/acknowledge`, undefined, viewer)).status).toBe(403);
    // An operator limited to another group neither sees nor handles it.
    const outsider = await apiToken(s, 'olga', 'operator', ['boilers']);
    expect((await api('GET', `/api/v1/alerts/${id}`, undefined, outsider)).status).toBe(404);
    expect((await api('POST', `/api/v1/alerts/${id}/acknowledge`, undefined, outsider)).status).toBe(404);
    expect((await api('GET', '/api/v1/alerts', undefined, outsider)).body.alerts).toEqual([]);
    expect((await api('POST', `/api/v1/alerts/${id}/acknowledge`)).body).toMatchObject({
      status: 'acknowledged',
      acknowledgedBy: expect.stringMatching(/^user:alice/) as string,
    });
    // Only to a user who exists and is not disabled: anyone else is refused, naming the field.
    await s.platform.users.create({ username: 'bob', role: 'operator' }, 'test');
    await s.platform.users.create({ username: 'dora', role: 'operator' }, 'test');
    await s.platform.users.update('dora', { disabled: true }, 'test');
    for (const who of ['mallory', 'dora']) {
      const refused = await api('POST', `/api/v1/alerts/${id}/assign`, { assignee: who });
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({
        code: 'validation_failed',
        detail: `assignee: no active user ${who}`,
      });
    }
    expect((await api('GET', `/api/v1/alerts/${id}`)).body.assignee).toBeNull();
    expect(await s.platform.audit.query({ type: 'alert.assigned', limit: 10 })).toEqual([]);
    expect((await api('POST', `/api/v1/alerts/${id}/assign`, { assignee: 'bob' })).body).toMatchObject({
      assignee: 'bob',
    });
    const noted = await api('POST', `/api/v1/alerts/${id}/notes`, {
      text: 'looked at the pump, firmware bug',
    });
    expect(noted.body.notes).toEqual([
      expect.objectContaining({
        by: expect.stringMatching(/^user:alice/) as string,
        text: 'looked at the pump, firmware bug',
      }),
    ]);
    const wrong = await api('POST', `/api/v1/alerts/${id}/respond`, { action: 'revoke' });
    expect(wrong.status).toBe(400);
    expect(String(wrong.body.detail)).toMatch(/not a response of this alert's profile/);
    const banned = await api('POST', `/api/v1/alerts/${id}/respond`, { action: 'ban_address' });
    expect(banned.status).toBe(200);
    const bans = await api('GET', '/api/v1/bans');
    expect(JSON.stringify(bans.body)).toContain('127.0.0.1');
    await api('DELETE', `/api/v1/bans/${(bans.body as unknown as { id: string }[])[0]?.id ?? 'x'}`);
    const resolved = await api('POST', `/api/v1/alerts/${id}/resolve`, { resolution: 'firmware fixed' });
    expect(resolved.body).toMatchObject({
      status: 'resolved',
      resolution: 'firmware fixed',
      resolvedBy: expect.stringMatching(/^user:alice/) as string,
    });
    expect((await api('POST', `/api/v1/alerts/${id}/resolve`, { resolution: 'again' })).status).toBe(409);
    expect((await api('GET', '/api/v1/alerts')).body.alerts).toEqual([]);
    const types = (await s.platform.audit.query({ subject: 'device:pump-1', limit: 100 })).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'alert.raised',
        'alert.acknowledged',
        'alert.assigned',
        'alert.noted',
        'alert.resolved',
      ]),
    );
  });

  it('lists and handles alerts and profiles from the CLI', async () => {
    const listed = await s.cli(['alerts', 'list', '--status', 'resolved', '--json']);
    expect(listed.code).toBe(0);
    const alerts = JSON.parse(listed.stdout) as { id: string; detector: string; resolution: string }[];
    // The address ban run above is an alert too, resolved when the ban was lifted.
    expect(alerts).toHaveLength(2);
    expect(alerts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ detector: 'burst', resolution: 'firmware fixed' }),
        expect.objectContaining({ detector: 'firewall_ban', resolution: 'ban lifted' }),
      ]),
    );
    const burst = alerts.find((a) => a.detector === 'burst')!;
    const table = await s.cli(['alerts', 'list', '--status', 'open,resolved']);
    expect(table.stdout).toMatch(/^ID\s+SEVERITY\s+STATUS/m);
    expect(table.stdout).toContain('burst');
    const shown = await s.cli(['alerts', 'show', burst.id]);
    expect(shown.stdout).toMatch(/evidence\n {2}metric: "messages_sent"/);
    const missing = await s.cli(['alerts', 'ack', 'no-such-alert']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('bulwark: no alert no-such-alert\n');
    const bad = await s.cli(['alerts', 'list', '--status', 'closed']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--status must be one of open, acknowledged, resolved/);
    const profiles = await s.cli(['security-profile', 'list']);
    expect(profiles.stdout).toMatch(
      /pumps\s+1\s+burst ports\s+quarantine\(automatic\) ban_address\(manual\)\s+group:pumps/,
    );
  });

  it('checks device reports against the schema and the allow-lists', async () => {
    const creds = await enrollInProcess(s, 'pump-2', 'pumps');
    const device = await s.mqtt(creds);
    clients.push(device);
    await device.publishAsync('devices/pump-2/metrics', 'not json', { qos: 1 });
    await device.publishAsync('devices/pump-2/metrics', JSON.stringify({ listeningTcpPorts: [70000] }), {
      qos: 1,
    });
    await device.publishAsync(
      'devices/pump-2/metrics',
      JSON.stringify({ listeningTcpPorts: [8080], establishedConnections: 2 }),
      { qos: 1 },
    );
    await sleep(300);
    const rejected = await s.platform.audit.query({ type: 'device.metrics_rejected', limit: 10 });
    expect(rejected.map((e) => e.data.reason)).toEqual([
      'report is not JSON',
      expect.stringMatching(/listeningTcpPorts\.0/),
    ]);
    expect((await api('GET', '/api/v1/alerts?device=pump-2')).body.alerts).toEqual([]);
    await device.publishAsync('devices/pump-2/metrics', JSON.stringify({ listeningTcpPorts: [22, 8080] }), {
      qos: 1,
    });
    const deadline = Date.now() + 3000;
    let alerts: { detector: string; evidence: Record<string, unknown> }[] = [];
    while (alerts.length === 0 && Date.now() < deadline) {
      alerts = (await api('GET', '/api/v1/alerts?device=pump-2')).body.alerts as typeof alerts;
      await sleep(100);
    }
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ detector: 'ports', evidence: { outside: ['22'], allowed: ['8080'] } });
  });

  it('serves Prometheus metrics to a token with metrics:read only', async () => {
    const res = await api('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^bulwark_alerts_raised_total\{detector="burst"\} 1$/m);
    expect(res.text).toMatch(/^bulwark_broker_sessions \d+$/m);
    expect(res.text).toMatch(/^bulwark_broker_messages_published_total \d+/m);
    expect(res.text).toMatch(/^bulwark_audit_log_entries \d+/m);
    expect(res.text).toMatch(/^bulwark_process_resident_memory_bytes \d+/m);
    expect((await api('GET', '/metrics', undefined, viewer)).status).toBe(403);
  });

  it('pages alerts with the cursor it hands out, never skipping ones that share a millisecond', async () => {
    const at = Date.now() - 60_000;
    for (let i = 0; i < 45; i++)
      await s.platform.monitor.alerts.raise({
        detector: 'paging',
        subject: `address:10.9.0.${i}`,
        deviceId: null,
        severity: 'low',
        title: `paging ${i}`,
        evidence: {},
        at,
      });
    const ids: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await api(
        'GET',
        `/api/v1/alerts?detector=paging&limit=10${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      expect(res.status).toBe(200);
      ids.push(...(res.body.alerts as { id: string }[]).map((a) => a.id));
      cursor = res.body.next as string | undefined;
      pages += 1;
    } while (cursor && pages < 10);
    expect(pages).toBe(5);
    expect(new Set(ids).size).toBe(45);
    const bad = await api('GET', '/api/v1/alerts?cursor=nonsense');
    expect(bad.status).toBe(400);
    expect(String(bad.body.detail)).toMatch(/^cursor: /);
  });
});
