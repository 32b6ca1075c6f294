import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firmwareCommandSchema, firmwareTopics, type FirmwareStep } from '@bulwark/protocol';
import { connectMqtt } from '../test-support/clients.ts';
import { initTuf, shipRelease, type OfflineKeys } from '../test-support/firmware.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import type { Rollout } from './index.ts';

const FLEET = 100;

/**
 * 100 simulated devices on real MQTT connections (mTLS, their own topics only) answer the server's install
 * commands as the agent does; some fail. The rollout gates react to what they report.
 */
describe('staged rollout over 100 devices', () => {
  let s: TestServer;
  let keys: OfflineKeys;
  const clients: MqttClient[] = [];
  /** Devices told to fail (by id); the others succeed. */
  const failing = new Set<string>();
  const commandsSeen = new Map<string, number>();
  /** Devices answer once this resolves (so the test can pick the failing ones from the rollout's plan first). */
  let answer: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    s = await startTestServer({ 'firmware.rolloutInterval': 100 });
    keys = await initTuf(s.platform);
    const ca = readFileSync(s.caFile, 'utf8');
    for (let i = 0; i < FLEET; i++) {
      const id = `sim-${String(i).padStart(3, '0')}`;
      const creds = await enrollInProcess(s, id, 'pumps');
      const client = await connectMqtt(s.mqttUrl, ca, creds);
      clients.push(client);
      await client.subscribeAsync(firmwareTopics.command(id), { qos: 1 });
      client.on('message', (_topic, payload) => {
        const command = firmwareCommandSchema.parse(JSON.parse(payload.toString()));
        commandsSeen.set(id, (commandsSeen.get(id) ?? 0) + 1);
        const send = (step: FirmwareStep, extra: object = {}) =>
          client.publishAsync(
            firmwareTopics.status(id),
            JSON.stringify({
              step,
              target: command.target,
              rolloutId: command.rolloutId,
              attempt: command.attempt,
              ts: Date.now(),
              ...extra,
            }),
            { qos: 1 },
          );
        void (async () => {
          await answer;
          for (const step of ['available', 'downloading', 'verifying', 'installing'] as const)
            await send(step);
          if (failing.has(id))
            await send('failed', { reason: 'install_failed', detail: 'flash write error' });
          else {
            await send('rebooting');
            await send('succeeded');
          }
        })();
      });
    }
  }, 120_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await s?.stop();
  });

  async function until(id: string, done: (r: Rollout) => boolean, timeoutMs = 30_000): Promise<Rollout> {
    const started = Date.now();
    for (;;) {
      const r = await s.platform.firmware.rollouts.get(id);
      if (done(r)) return r;
      if (Date.now() - started > timeoutMs)
        throw new Error(`rollout still ${r.status}: ${JSON.stringify(r.phases)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  it('pauses itself at the first gate when 20% of the devices fail, with an event (the alert)', async () => {
    const { release } = await shipRelease(s.platform, keys, { version: '2.0.0', securityVersion: 2 });
    const rollouts = s.platform.firmware.rollouts;
    let go = () => {};
    answer = new Promise<void>((resolve) => (go = resolve));
    const created = await rollouts.create(
      {
        release: release.id,
        selector: { groups: ['pumps'] },
        settings: {
          phases: [1, 10, 50, 100].map((percent) => ({ percent, soakMs: 0 })),
          failureThreshold: 10,
          maxRetries: 1,
          retryDelayMs: 0,
        },
      },
      'test',
    );
    expect(created.phases.map((p) => p.devices)).toEqual([1, 9, 40, 50]);
    // Every fifth device in rollout order fails: 20% of the fleet, and 20% of every phase.
    const plan = await rollouts.devices(created.id);
    expect(plan).toHaveLength(FLEET);
    plan.forEach((d, i) => {
      if (i % 5 === 0) failing.add(d.deviceId);
    });
    expect(failing.size).toBe(20);
    go();

    const paused = await until(created.id, (r) => r.status !== 'running');
    expect(paused.status).toBe('paused');
    expect(paused.currentPhase).toBe(0);
    expect(paused.pauseReason).toMatch(/failure rate 100% in phase 1 is above the threshold of 10%/);
    expect(paused.phases[0]).toMatchObject({ devices: 1, failed: 1 });
    expect(paused.phases.slice(1).every((p) => p.pending === p.devices)).toBe(true);
    const failedDevice = plan[0]!.deviceId;
    // Retried a bounded number of times: 1 + maxRetries commands.
    expect(commandsSeen.get(failedDevice)).toBe(2);
    const [row] = await rollouts.devices(created.id, { phase: 0 });
    expect(row).toMatchObject({ status: 'failed', attempts: 2, reason: 'install_failed' });

    const log = await s.platform.audit.readAfter(0, 100_000);
    expect(
      log.find((e) => e.type === 'rollout.paused' && e.subject === `rollout:${created.id}`)?.data,
    ).toMatchObject({
      reason: 'failure_threshold',
      automatic: true,
      phase: 0,
    });
    expect(
      log.filter((e) => e.type === 'firmware.update_failed' && e.subject === `device:${failedDevice}`),
    ).toHaveLength(2);
    // No device of a later phase was ever sent a command.
    expect(plan.slice(1).every((d) => !commandsSeen.has(d.deviceId))).toBe(true);

    // The pause is an alert for the operator, resolved when the rollout is aborted.
    const [alert] = await s.platform.monitor.alerts.list({ detector: 'rollout_paused' });
    expect(alert).toMatchObject({ subject: `rollout:${created.id}`, severity: 'high', status: 'open' });
    expect(alert!.evidence).toMatchObject({ reason: 'failure_threshold', phase: 0 });

    await rollouts.abort(created.id, 'test', 'bad build');
    expect((await rollouts.get(created.id)).status).toBe('aborted');
    await s.platform.events.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect((await s.platform.monitor.alerts.get(alert!.id)).status).toBe('resolved');
  });

  it('runs to completion through every phase when no device fails', async () => {
    failing.clear();
    commandsSeen.clear();
    const { release } = await shipRelease(s.platform, keys, { version: '2.1.0', securityVersion: 2 });
    const started = await s.platform.firmware.rollouts.create(
      {
        release: `${release.name}@${release.version}`,
        selector: { groups: ['pumps'] },
        settings: {
          phases: [1, 10, 50, 100].map((percent) => ({ percent, soakMs: 50 })),
          failureThreshold: 10,
        },
      },
      'test',
    );
    const done = await until(started.id, (r) => r.status !== 'running', 60_000);
    expect(done.status).toBe('completed');
    expect(done.phases.map((p) => [p.devices, p.succeeded])).toEqual([
      [1, 1],
      [9, 9],
      [40, 40],
      [50, 50],
    ]);
    expect(commandsSeen.size).toBe(FLEET);
    const log = await s.platform.audit.readAfter(0, 100_000);
    const mine = log.filter((e) => e.subject === `rollout:${started.id}`).map((e) => e.type);
    expect(mine).toEqual([
      'rollout.created',
      'rollout.phase_started',
      'rollout.phase_started',
      'rollout.phase_started',
      'rollout.phase_started',
      'rollout.completed',
    ]);
  });
});
