import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commandRequestSchema,
  commandTopics,
  COMMAND_MAX_BYTES,
  type CommandRequest,
  type CommandResult,
} from '@bulwark/protocol';
import { createTestPlatform, type TestPlatform } from '../test-support/platform.ts';
import { enrollInProcess } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';
import { formatWait, isJson, timeoutMessage } from './command.rules.ts';

type Answer = (name: string, request: CommandRequest) => Omit<CommandResult, 'id'> | undefined;

/** A device that answers its commands with `answer` (undefined: stays silent); what it received is kept. */
async function commandedDevice(t: TestPlatform, id: string, answer: Answer) {
  const creds = await enrollInProcess(t, id);
  const client = await t.mqtt(creds);
  const received: { name: string; request: CommandRequest }[] = [];
  client.on('message', (topic, payload) => {
    const name = commandTopics.nameOf(id, topic);
    if (name === undefined) return;
    const request = commandRequestSchema.parse(JSON.parse(payload.toString()));
    received.push({ name, request });
    const result = answer(name, request);
    if (result)
      client.publish(commandTopics.result(id, name), JSON.stringify({ id: request.id, ...result }), {
        qos: 1,
      });
  });
  await client.subscribeAsync(commandTopics.all(id), { qos: 1 });
  await waitFor(`${id} online`, async () => (await t.platform.devices.find(id))?.online);
  return { client, received };
}

describe('device commands (in process)', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  const clients: MqttClient[] = [];
  type CommandEvent = 'device.command_sent' | 'device.command_result' | 'device.command_timed_out';
  const eventsOf = async (type: CommandEvent, commandId: string) =>
    (await t.platform.audit.query({ type, limit: 1000 })).filter((e) => e.data.commandId === commandId);

  beforeAll(async () => {
    t = await createTestPlatform();
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await t?.close();
  });

  it('sends a command and returns the answer; both are in the audit log', async () => {
    const device = await commandedDevice(t, 'pump-1', (name, request) =>
      name === 'ping' ? { status: 'ok', result: { pong: true, echo: request.data ?? null } } : undefined,
    );
    clients.push(device.client);
    const outcome = await t.platform.commands.send({
      deviceId: 'pump-1',
      name: 'ping',
      data: { n: 7 },
      timeoutMs: 5_000,
      actor: 'user:alice',
    });
    expect(outcome).toMatchObject({ status: 'ok', result: { pong: true, echo: { n: 7 } }, online: true });
    const [got] = device.received;
    expect(got?.request).toMatchObject({ id: outcome.commandId, issuedBy: 'user:alice', data: { n: 7 } });
    expect((got?.request.expiresAt ?? 0) - (got?.request.issuedAt ?? 0)).toBe(5_000);
    const [sent] = await eventsOf('device.command_sent', outcome.commandId);
    expect(sent).toMatchObject({
      actor: 'user:alice',
      subject: 'device:pump-1',
      data: { name: 'ping', via: 'platform', data: { n: 7 } },
    });
    const [result] = await eventsOf('device.command_result', outcome.commandId);
    expect(result).toMatchObject({
      actor: 'device:pump-1',
      subject: 'device:pump-1',
      data: { name: 'ping', status: 'ok', result: { pong: true } },
    });
  });

  it('returns a refused or failed answer with the device message', async () => {
    const device = await commandedDevice(t, 'pump-2', (name) =>
      name === 'reboot'
        ? { status: 'failed', message: 'busy' }
        : { status: 'refused', message: `unknown command ${name}` },
    );
    clients.push(device.client);
    const send = (name: string) =>
      t.platform.commands.send({ deviceId: 'pump-2', name, timeoutMs: 5_000, actor: 'cli' });
    expect(await send('self-destruct')).toMatchObject({
      status: 'refused',
      message: 'unknown command self-destruct',
      online: true,
    });
    expect(await send('reboot')).toMatchObject({ status: 'failed', message: 'busy' });
  });

  it('times out when an online device does not answer, and still records a late answer', async () => {
    const device = await commandedDevice(t, 'pump-3', () => undefined);
    clients.push(device.client);
    const outcome = await t.platform.commands.send({
      deviceId: 'pump-3',
      name: 'ping',
      timeoutMs: 1_000,
      actor: 'cli',
    });
    expect(outcome).toMatchObject({
      status: 'timeout',
      online: true,
      message: 'device pump-3 did not answer within 1 s (online, no answer)',
    });
    const [timedOut] = await eventsOf('device.command_timed_out', outcome.commandId);
    expect(timedOut?.data).toEqual({
      commandId: outcome.commandId,
      name: 'ping',
      timeoutMs: 1_000,
      online: true,
    });
    // Late, and an answer to a command the platform did not send (an app's, over MQTT): recorded all the same.
    await t.platform.events.emit({
      type: 'device.command_sent',
      actor: 'app:ops',
      subject: 'device:pump-3',
      data: {
        commandId: 'app-made-1',
        name: 'ping',
        issuedAt: Date.now(),
        expiresAt: Date.now() + 60_000,
        via: 'mqtt',
      },
    });
    const before = t.platform.commands.results.rejected();
    // A second answer to one command, and an id never sent to this device: refused, counted, not recorded.
    for (const id of [outcome.commandId, 'app-made-1', outcome.commandId, 'made-up-1'])
      await device.client.publishAsync(
        commandTopics.result('pump-3', 'ping'),
        JSON.stringify({ id, status: 'ok' }),
        {
          qos: 1,
        },
      );
    for (const id of [outcome.commandId, 'app-made-1'])
      await waitFor(`result ${id}`, async () => (await eventsOf('device.command_result', id)).length === 1);
    await waitFor(
      'the two refused results counted',
      () => t.platform.commands.results.rejected() === before + 2,
    );
    expect(await eventsOf('device.command_result', 'made-up-1')).toEqual([]);
    expect(await eventsOf('device.command_result', outcome.commandId)).toHaveLength(1);
  });

  it('times out saying the device is offline when it is not connected', async () => {
    await t.platform.devices.add({ id: 'pump-4' }, 'test');
    const never = await t.platform.commands.send({
      deviceId: 'pump-4',
      name: 'ping',
      timeoutMs: 1_000,
      actor: 'cli',
    });
    expect(never).toMatchObject({
      status: 'timeout',
      online: false,
      message: 'device pump-4 did not answer within 1 s (offline, never connected)',
    });
    const device = await commandedDevice(t, 'pump-5', () => ({ status: 'ok' }));
    await device.client.endAsync();
    await waitFor('pump-5 offline', async () => (await t.platform.devices.find('pump-5'))?.online === false);
    const gone = await t.platform.commands.send({
      deviceId: 'pump-5',
      name: 'ping',
      timeoutMs: 1_000,
      actor: 'cli',
    });
    expect(gone).toMatchObject({ status: 'timeout', online: false });
    expect(gone.message).toMatch(/^device pump-5 did not answer within 1 s \(offline since \d{4}-\d\d-\d\dT/);
    const [timedOut] = await eventsOf('device.command_timed_out', gone.commandId);
    expect(timedOut).toMatchObject({ data: { online: false } });
  });

  it('drops a result that fails the schema: counted, nothing recorded, the sender times out', async () => {
    const device = await commandedDevice(t, 'pump-6', () => ({ status: 'done' as 'ok' }));
    clients.push(device.client);
    const before = t.platform.commands.results.rejected();
    const outcome = await t.platform.commands.send({
      deviceId: 'pump-6',
      name: 'ping',
      timeoutMs: 1_000,
      actor: 'cli',
    });
    expect(outcome.status).toBe('timeout');
    await waitFor('the refused result counted', () => t.platform.commands.results.rejected() > before);
    expect(await eventsOf('device.command_result', outcome.commandId)).toEqual([]);
  });

  it('refuses bad input before anything is recorded', async () => {
    const head = (await t.platform.audit.head()).seq;
    const send = (input: Partial<Parameters<typeof t.platform.commands.send>[0]>) =>
      t.platform.commands.send({
        deviceId: 'pump-1',
        name: 'ping',
        timeoutMs: 5_000,
        actor: 'cli',
        ...input,
      });
    await expect(send({ deviceId: 'ghost' })).rejects.toThrow('device ghost does not exist');
    await expect(send({ name: 'a/b' })).rejects.toThrow(/command name must be/);
    await expect(send({ name: 'result' })).rejects.toThrow(/reserved/);
    await expect(send({ timeoutMs: 500 })).rejects.toThrow(/from 1s to 10m/);
    await expect(send({ timeoutMs: 11 * 60_000 })).rejects.toThrow(/from 1s to 10m/);
    await expect(send({ data: 'x'.repeat(COMMAND_MAX_BYTES) })).rejects.toThrow(/more than 16384/);
    await expect(send({ data: () => 1 })).rejects.toThrow(/must be JSON/);
    await (await t.platform.pki()).revokeDevice('pump-2', 'test', 'cessationOfOperation');
    await expect(send({ deviceId: 'pump-2' })).rejects.toThrow('device pump-2 is revoked');
    const sent = await t.platform.audit.query({ type: 'device.command_sent', limit: 100 });
    expect(sent.filter((e) => e.seq > head)).toEqual([]);
  });

  it('POST /api/v1/devices/:id/commands answers every outcome with 200; operators may, viewers may not', async () => {
    const operator = await t.signIn('operator');
    const post = (id: string, headers: Record<string, string>, payload: Record<string, unknown>) =>
      t.app.inject({ method: 'POST', url: `/api/v1/devices/${id}/commands`, headers, payload });
    const ok = await post('pump-1', operator.headers, { name: 'ping', data: [1, 2] });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ status: 'ok', result: { pong: true, echo: [1, 2] }, online: true });
    const silent = await post('pump-3', operator.headers, { name: 'ping', timeout: '1s' });
    expect(silent.statusCode).toBe(200);
    expect(silent.json()).toMatchObject({ status: 'timeout', online: true });
    const [sent] = (await t.platform.audit.query({ type: 'device.command_sent', limit: 1000 })).filter(
      (e) => e.data.commandId === ok.json<{ commandId: string }>().commandId,
    );
    expect(sent?.actor).toMatch(new RegExp(`^user:${operator.username}/token:`));

    expect((await post('pump-1', operator.headers, { name: 'ping', timeoutMs: 100 })).statusCode).toBe(400);
    expect(
      (await post('pump-1', operator.headers, { name: 'ping', timeout: '2s', timeoutMs: 2000 })).statusCode,
    ).toBe(400);
    expect((await post('ghost', operator.headers, { name: 'ping' })).statusCode).toBe(404);
    const viewer = await t.signIn('viewer');
    expect((await post('pump-1', viewer.headers, { name: 'ping' })).statusCode).toBe(403);
    // A user limited to other groups does not see the device at all.
    const limited = await t.signIn('operator', { groups: ['line-9'] });
    expect((await post('pump-1', limited.headers, { name: 'ping' })).statusCode).toBe(404);
  });
});

describe('device commands at shutdown', { timeout: 60_000 }, () => {
  it('ends the waits of a stopping server with unavailable, naming the command', async () => {
    const t = await createTestPlatform();
    try {
      await t.platform.devices.add({ id: 'pump-7' }, 'test');
      const pending = t.platform.commands.send({
        deviceId: 'pump-7',
        name: 'ping',
        timeoutMs: 60_000,
        actor: 'cli',
      });
      const sent = await waitFor('the command recorded', async () =>
        (await t.platform.audit.query({ type: 'device.command_sent', limit: 10 })).at(0),
      );
      const stop = t.platform.commands.serve({ publish: () => Promise.resolve(), onError: () => undefined });
      stop();
      await expect(pending).rejects.toThrow(
        `the server is shutting down: command ${sent.data.commandId} was sent; its answer, if any, will be in the audit log`,
      );
    } finally {
      await t.close();
    }
  });
});

describe('command rules', () => {
  it('says how long it waited and what it knows of the device', () => {
    expect(formatWait(30_000)).toBe('30 s');
    expect(formatWait(1_500)).toBe('1.5 s');
    expect(formatWait(600_000)).toBe('10 min');
    expect(
      timeoutMessage({ deviceId: 'p', timeoutMs: 30_000, online: false, lastSeenAt: Date.UTC(2026, 0, 2) }),
    ).toBe('device p did not answer within 30 s (offline since 2026-01-02T00:00:00.000Z)');
  });

  it('accepts plain JSON only', () => {
    expect(isJson({ a: [1, 'b', null, true, { c: 2 }] })).toBe(true);
    expect(isJson(Number.NaN)).toBe(false);
    expect(isJson(new Date())).toBe(false);
    expect(isJson({ f: () => 1 })).toBe(false);
    expect(isJson(undefined)).toBe(false);
  });
});
