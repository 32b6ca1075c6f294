import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, commandRequestSchema, commandTopics } from '@bulwark/protocol';
import { connectMqtt, exec } from '../test-support/clients.ts';
import { BULWARK_BIN, enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

/**
 * Issue 14, acceptance 2: `bulwark device command pump-1 ping` from a second process (no broker there)
 * reaches an mqtt.js device through the running server and prints its answer; an offline device times out
 * with a clear line; both are in the audit log.
 */
describe('bulwark device command (CLI process → running server → device)', { timeout: 90_000 }, () => {
  let s: TestServer;
  let device: MqttClient;

  beforeAll(async () => {
    s = await startTestServer();
    const ca = (await s.platform.pki()).chainPem();
    const creds = await enrollInProcess(s, 'pump-1');
    device = await connectMqtt(s.mqttUrl, ca, creds);
    device.on('message', (topic, payload) => {
      const name = commandTopics.nameOf('pump-1', topic);
      if (name === undefined) return;
      const request = commandRequestSchema.parse(JSON.parse(payload.toString()));
      const answer =
        name === 'ping'
          ? { id: request.id, status: 'ok', result: { pong: true, data: request.data ?? null } }
          : { id: request.id, status: 'refused', message: `unknown command ${name}` };
      device.publish(commandTopics.result('pump-1', name), JSON.stringify(answer), { qos: 1 });
    });
    await device.subscribeAsync(commandTopics.all('pump-1'), { qos: 1 });
    await waitFor('pump-1 online', async () => (await s.platform.devices.find('pump-1'))?.online);
    await s.platform.devices.add({ id: 'pump-2' }, 'test');
  }, 60_000);

  afterAll(async () => {
    device?.end(true);
    await s?.stop();
  });

  it('prints the answer of an online device, and the API contract parses its --json', async () => {
    const text = await s.cli([
      'device',
      'command',
      'pump-1',
      'ping',
      '--args',
      '{"n":1}',
      '--timeout',
      '20s',
    ]);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ok\n\{\n/);
    expect(JSON.parse(text.stdout.slice('ok\n'.length))).toEqual({ pong: true, data: { n: 1 } });

    const json = await s.cli(['device', 'command', 'pump-1', 'ping', '--json']);
    expect(json.code).toBe(0);
    const outcome = api.devices.commandOutcome.strict().parse(JSON.parse(json.stdout));
    expect(outcome).toMatchObject({ status: 'ok', result: { pong: true, data: null }, online: true });
    const sent = await s.platform.audit.query({
      type: 'device.command_sent',
      subject: 'device:pump-1',
      limit: 10,
    });
    expect(sent.map((e) => e.actor)).toEqual(['cli', 'cli']);
    const results = await s.platform.audit.query({ type: 'device.command_result', limit: 10 });
    expect(results.map((e) => e.data.commandId)).toContain(outcome.commandId);
  });

  it('exits 1 with one line when the device refuses', async () => {
    const r = await s.cli(['device', 'command', 'pump-1', 'self-destruct']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('refused: device pump-1: unknown command self-destruct\n');
  });

  it('times out on an offline device with a clear line, recorded in the audit log', async () => {
    const r = await s.cli(['device', 'command', 'pump-2', 'ping', '--timeout', '1s']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('timeout: device pump-2 is offline (never connected); no answer within 1 s\n');
    const [timedOut] = await s.platform.audit.query({
      type: 'device.command_timed_out',
      subject: 'device:pump-2',
      limit: 10,
    });
    expect(timedOut?.data).toMatchObject({ name: 'ping', timeoutMs: 1000, online: false });
  });

  it('refuses bad --args or --timeout before anything is sent', async () => {
    const head = (await s.platform.audit.head()).seq;
    const data = await s.cli(['device', 'command', 'pump-1', 'ping', '--args', '{oops']);
    expect(data.code).toBe(1);
    expect(data.stderr).toMatch(/^bulwark: --args is not JSON: /);
    // `--data` names the data directory (here from BULWARK_DATA): JSON there is a misplaced --args.
    const misplaced = await exec(
      process.execPath,
      [BULWARK_BIN, ...['device', 'command', 'pump-1', 'ping'], '--data', '{"n":1}'],
      {
        env: { ...process.env, BULWARK_DATA: s.dataDir },
      },
    ).catch((err: unknown) => err as { code: number; stderr: string });
    expect(misplaced).toMatchObject({
      code: 1,
      stderr: "bulwark: --data names the data directory: give the command's JSON data as --args\n",
    });
    const timeout = await s.cli(['device', 'command', 'pump-1', 'ping', '--timeout', 'soon']);
    expect(timeout.stderr.trim()).toBe('bulwark: --timeout "soon" is not a duration such as 30s or 2m');
    const long = await s.cli(['device', 'command', 'pump-1', 'ping', '--timeout', '1h']);
    expect(long.stderr.trim()).toBe('bulwark: command timeout must be from 1s to 10m');
    const sent = await s.platform.audit.query({ type: 'device.command_sent', limit: 100 });
    expect(sent.filter((e) => e.seq > head)).toEqual([]);
  });
});
