import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollDevice, startAgent, type Agent } from '@bulwark/device';
import { entriesOf } from './events/index.ts';
import { connectMqtt, httpsRequest, opensslCsr } from './test-support/clients.ts';
import { apiToken, enrollInProcess, startTestServer, type TestServer } from './test-support/server.ts';
import { testTmpDir } from './test-support/tmp.ts';
import { sleep, waitFor } from './test-support/wait.ts';

/**
 * Issue 14's acceptance, as a new user would try it: the real server, the real `bulwark` CLI, mosquitto_sub
 * with an app's token, mqtt.js devices with their certificates, and bulwark-agent answering commands.
 */

/** mosquitto_sub as a child process; its stdout lines and exit as they come. */
function mosquittoSub(args: string[]) {
  const child: ChildProcess = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '', code: undefined as number | null | undefined };
  child.stdout?.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out.stderr += d.toString()));
  child.on('exit', (code) => (out.code = code));
  return { child, out, stop: () => child.kill('SIGTERM') };
}

const certPem = (csrBase64: string) =>
  `-----BEGIN CERTIFICATE REQUEST-----\n${csrBase64.replace(/.{1,64}/g, '$&\n')}-----END CERTIFICATE REQUEST-----\n`;

describe('applications: a backend reads fleet data and commands devices through Bulwark', () => {
  let s: TestServer;
  let ca: string;
  let port: string;
  const clients: MqttClient[] = [];
  const agents: Agent[] = [];
  const subs: ReturnType<typeof mosquittoSub>[] = [];
  let pump: MqttClient;
  let fan: MqttClient;

  const audit = async () => s.platform.audit.readAfter(0, 10_000);
  const cli = async (args: string[]) => {
    const r = await s.cli(args);
    if (r.code !== 0) throw new Error(`bulwark ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };

  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
    port = new URL(s.mqttUrl).port;
    const pumpId = await enrollInProcess(s, 'pump-1', 'pumps');
    const fanId = await enrollInProcess(s, 'fan-1', 'fans');
    pump = await connectMqtt(s.mqttUrl, ca, pumpId);
    fan = await connectMqtt(s.mqttUrl, ca, fanId);
    clients.push(pump, fan);
  });
  afterAll(async () => {
    for (const sub of subs) sub.stop();
    for (const a of agents) await a.stop();
    for (const c of clients) c.end(true);
    await s?.stop();
  });

  it('1: mosquitto_sub with the app token gets its group’s telemetry only; a filter outside the grant gets 0x80', async () => {
    await cli([
      'app',
      'add',
      'dashboard',
      '--purpose',
      'analytics.reporting',
      '--grant',
      'subscribe devices/+/telemetry group:pumps',
    ]);
    const { token } = JSON.parse(await cli(['app', 'token', 'dashboard', '--ttl', '90d', '--json'])) as {
      token: string;
    };
    const common = ['-h', 'localhost', '-p', port, '--cafile', s.caFile, '-u', 'dashboard', '-P', token];
    const sub = mosquittoSub([...common, '-i', 'dashboard', '-q', '1', '-v', '-t', 'devices/+/telemetry']);
    subs.push(sub);
    await waitFor('the app connected', async () =>
      entriesOf(await audit(), 'mqtt.connected').some((e) => e.subject === 'app:dashboard'),
    );
    await sleep(200); // the SUBSCRIBE follows the CONNACK
    // Publish until the first one arrives (the subscription is in place), then the ones that count.
    await waitFor('the subscription is live', async () => {
      await pump.publishAsync('devices/pump-1/telemetry', '{"probe":true}', { qos: 1 });
      return sub.out.stdout.includes('probe');
    });
    await fan.publishAsync('devices/fan-1/telemetry', '{"rpm":900}', { qos: 1 });
    await pump.publishAsync('devices/pump-1/telemetry', '{"flow":12}', { qos: 1 });
    await waitFor('the pump’s reading', () => sub.out.stdout.includes('{"flow":12}'));
    expect(sub.out.stdout).toContain('devices/pump-1/telemetry {"flow":12}');
    expect(sub.out.stdout).not.toContain('fan-1');

    // A filter outside the grant: SUBACK 0x80, which mosquitto_sub reports, and an event naming the reason.
    const refused = mosquittoSub([
      ...common,
      '-i',
      'dashboard/2',
      '-t',
      'devices/+/status',
      '-C',
      '1',
      '-W',
      '5',
    ]);
    subs.push(refused);
    await waitFor('mosquitto_sub to end', () => refused.out.code !== undefined, 10_000);
    expect(refused.out.stderr).toMatch(/denied/i);
    const denied = entriesOf(await audit(), 'mqtt.subscribe_denied').filter(
      (e) => e.subject === 'app:dashboard',
    );
    expect(denied.map((e) => e.data.topic)).toContain('devices/+/status');
    sub.stop();
  }, 60_000);

  it('2: `device command` gets the agent’s answer; an offline device times out with a clear message; both audited', async () => {
    await s.platform.devices.add({ id: 'pump-2', group: 'pumps' }, 'test');
    const { token } = await s.platform.devices.issueToken('pump-2', 'test');
    const dir = path.join(mkdtempSync(path.join(testTmpDir(), 'bulwark-agent-')), 'pump-2');
    await enrollDevice({ serverUrl: s.httpsUrl, deviceId: 'pump-2', token, dir, ca });
    const agent = await startAgent({ dir, mqttUrl: s.mqttUrl, heartbeatIntervalMs: 60_000 });
    agents.push(agent);
    await waitFor('the agent is connected', () => agent.connected);
    // It subscribes to its command topics right after the CONNACK; a command sent before that is not
    // delivered (QoS 1 to a topic nobody holds yet), so the first answer is awaited by asking again.
    const answer = await waitFor('the agent’s answer', async () => {
      const r = await s.cli(['device', 'command', 'pump-2', 'ping', '--timeout', '3s', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as { status: string; result: { pong: boolean } });
    });
    expect(answer.status).toBe('ok');
    expect(answer.result.pong).toBe(true);

    await enrollInProcess(s, 'pump-3', 'pumps'); // enrolled, never connected
    const offline = await s.cli(['device', 'command', 'pump-3', 'ping', '--timeout', '2s']);
    expect(offline.code).toBe(1);
    expect(offline.stdout + offline.stderr).toMatch(/pump-3.*offline|offline.*pump-3/);
    expect(offline.stdout + offline.stderr).toMatch(/2 s|2s/);

    const entries = await audit();
    const sent = entriesOf(entries, 'device.command_sent').filter((e) => e.data.name === 'ping');
    expect(sent.map((e) => e.subject)).toEqual(expect.arrayContaining(['device:pump-2', 'device:pump-3']));
    const result = entriesOf(entries, 'device.command_result').find((e) => e.subject === 'device:pump-2');
    expect(result?.data.status).toBe('ok');
    const timedOut = entriesOf(entries, 'device.command_timed_out').find(
      (e) => e.subject === 'device:pump-3',
    );
    expect(timedOut?.data.online).toBe(false);
  }, 60_000);

  it('3: revoking the app ends its live sessions within 1 s; an app never speaks as a device nor a device as an app', async () => {
    await cli(['app', 'add', 'billing', '--purpose', 'essential.service.operations']);
    const { token } = JSON.parse(await cli(['app', 'token', 'billing', '--json'])) as { token: string };
    const dir = mkdtempSync(path.join(testTmpDir(), 'bulwark-app-'));
    const csr = await opensslCsr(dir, 'billing');
    const issued = await s.platform.apps.issueCertificate('billing', certPem(csr.base64), 'test');
    const byToken = await connectMqtt(
      s.mqttUrl,
      ca,
      { id: 'billing/1', key: '', cert: '' },
      {
        key: undefined,
        cert: undefined,
        username: 'billing',
        password: token,
      },
    );
    const byCert = await connectMqtt(s.mqttUrl, ca, {
      id: 'billing/2',
      key: csr.keyPem,
      cert: issued.certificatePem,
    });
    clients.push(byToken, byCert);

    // Identities never cross: the app's certificate as a device, a device's certificate as the app, a
    // device id as a token's user name.
    await expect(
      connectMqtt(s.mqttUrl, ca, { id: 'pump-1', key: csr.keyPem, cert: issued.certificatePem }),
    ).rejects.toThrow();
    const pumpCreds = await enrollInProcess(s, 'pump-4', 'pumps');
    await expect(connectMqtt(s.mqttUrl, ca, { ...pumpCreds, id: 'billing' })).rejects.toThrow();
    await expect(
      connectMqtt(
        s.mqttUrl,
        ca,
        { id: 'pump-4', key: '', cert: '' },
        {
          key: undefined,
          cert: undefined,
          username: 'pump-4',
          password: token,
        },
      ),
    ).rejects.toThrow();

    const closedAt: number[] = [];
    for (const c of [byToken, byCert]) c.once('close', () => closedAt.push(Date.now()));
    await cli(['app', 'revoke', 'billing']);
    await waitFor('both sessions closed', () => closedAt.length === 2, 10_000);
    const revoked = entriesOf(await audit(), 'app.revoked').find((e) => e.subject === 'app:billing');
    expect(revoked).toBeDefined();
    for (const at of closedAt) expect(at - (revoked?.ts ?? 0)).toBeLessThan(1000);
  }, 60_000);

  it('4: the telemetry store returns a device’s message; retention removes exactly the rows older than its limit', async () => {
    await cli(['telemetry', 'enable', 'devices/+/telemetry', '--retention', '1h']);
    await waitFor('the store follows the pattern', async () => {
      await pump.publishAsync('devices/pump-1/telemetry', '{"level":1}', { qos: 1 });
      const page = await s.platform.telemetry.query({ deviceId: 'pump-1' });
      return page.items.length > 0;
    });
    await pump.publishAsync('devices/pump-1/telemetry', '{"level":2}', { qos: 1 });
    const token = await apiToken(s, 'reader', 'admin');
    const res = await httpsRequest(`${s.httpsUrl}/api/v1/devices/pump-1/telemetry?limit=100`, {
      ca,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body) as { items: { topic: string; payload: unknown; receivedAt: number }[] };
    expect(body.items.map((i) => i.payload)).toContainEqual({ level: 2 });
    // Prometheus counts what the store wrote (and what it could not).
    const metrics = await httpsRequest(`${s.httpsUrl}/metrics`, {
      ca,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(metrics.status).toBe(200);
    const stored = /^bulwark_telemetry_stored_total (\d+)$/m.exec(metrics.body);
    expect(Number(stored?.[1])).toBeGreaterThanOrEqual(body.items.length);
    expect(metrics.body).toMatch(/^bulwark_telemetry_dropped_total 0$/m);
    expect(metrics.body).toMatch(/^bulwark_command_results_rejected_total \d+$/m);

    // Retention: the rows received before (now − 1 h) go, the others stay, to the row.
    const all = body.items.map((i) => i.receivedAt).sort((a, b) => a - b);
    const newest = all[all.length - 1] ?? 0;
    const cut = newest; // rows strictly older than `newest` are older than the limit at now = newest + 1 h
    const older = all.filter((t) => t < cut).length;
    const deleted = await s.platform.telemetry.applyRetention(cut + 3_600_000);
    expect(deleted).toBe(older);
    const left = await s.platform.telemetry.query({ deviceId: 'pump-1', limit: 100 });
    expect(left.items.map((i) => i.receivedAt).every((t) => t >= cut)).toBe(true);
    expect(left.items.length).toBe(all.length - older);
  }, 60_000);
});
