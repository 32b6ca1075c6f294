import { mqttConnackOf } from '@bulwark/protocol';
import { describe, expect, it } from 'vitest';
import type { DeviceAccess } from '../policy/index.ts';
import { connectStages, type ConnectDecision, type ConnectStageDeps } from './connect-stages.ts';
import { createIngressRouter, isDeviceTopic, parseIngress } from './ingress.ts';
import { createDeliverPipeline, createPublishPipeline } from './pipeline.ts';
import { v3ConnackOf } from './core/index.ts';
import { connackError } from './refusal.ts';
import {
  CONTINUE,
  runConnectStages,
  type BrokerSession,
  type ConnectContext,
  type PublishPacket,
  type PublishStage,
} from './stages.ts';
import { deviceIngress } from '@bulwark/protocol';

const allow = { allow: true as const, reason: 'allowed' };
function access(overrides: Partial<DeviceAccess> = {}): DeviceAccess {
  return {
    deviceId: 'd1',
    zone: null,
    connect: () => allow,
    publish: () => allow,
    subscribe: () => allow,
    receive: () => true,
    receiveDecision: () => allow,
    describe: () => ({ statements: [], dropped: [] }),
    ...overrides,
  };
}

function session(overrides: Partial<BrokerSession> = {}): BrokerSession {
  return {
    principal: { kind: 'device', id: 'd1' },
    key: 'd1',
    subject: 'device:d1',
    actor: 'device:d1',
    serial: '01',
    remoteAddress: '10.0.0.1',
    certSubject: {},
    anonymous: false,
    access: access(),
    meter: undefined,
    active: true,
    transport: { pause: () => undefined, resume: () => undefined },
    ...overrides,
  };
}

const packet = (): PublishPacket => ({
  topic: 'devices/d1/telemetry',
  payload: Buffer.from('{}'),
  qos: 1,
  retain: false,
});
const run = (stages: PublishStage[], s = session(), p = packet()) =>
  new Promise<Error | null>((resolve) => createPublishPipeline(stages).run(s, p, resolve));

describe('publish pipeline', () => {
  it('runs every stage in order and accepts when all continue', async () => {
    const seen: string[] = [];
    const stage = (name: string): PublishStage => ({ name, run: () => (seen.push(name), CONTINUE) });
    expect(await run([stage('quota'), stage('authorize'), stage('transform'), stage('meter')])).toBeNull();
    expect(seen).toEqual(['quota', 'authorize', 'transform', 'meter']);
  });

  it('stops at a denial, whose reason is the refusal', async () => {
    let after = false;
    const err = await run([
      { name: 'authorize', run: () => ({ kind: 'deny', reason: 'publish to x denied: no statement' }) },
      { name: 'meter', run: () => ((after = true), CONTINUE) },
    ]);
    expect(err?.message).toBe('publish to x denied: no statement');
    expect(after).toBe(false);
  });

  it('waits with the connection paused, then goes on from the next stage; a session dropped meanwhile gets nothing', async () => {
    const calls: string[] = [];
    const s = session({
      transport: { pause: () => calls.push('pause'), resume: () => calls.push('resume') },
    });
    const stages: PublishStage[] = [
      { name: 'quota', run: () => (calls.push('quota'), { kind: 'wait', ms: 5 }) },
      { name: 'authorize', run: () => (calls.push('authorize'), CONTINUE) },
    ];
    expect(await run(stages, s)).toBeNull();
    expect(calls).toEqual(['quota', 'pause', 'resume', 'authorize']);
    const dropped = session();
    const ended = run([{ name: 'quota', run: () => ({ kind: 'wait', ms: 5 }) }], dropped);
    dropped.active = false;
    expect((await ended)?.message).toBe('session ended');
  });

  it('settles a pending verdict (a store write) before going on', async () => {
    const transformed = packet();
    const err = await run(
      [
        { name: 'retain', run: () => ({ kind: 'pending', verdict: Promise.resolve(CONTINUE) }) },
        { name: 'transform', run: (_s, p) => ((p.payload = 'changed'), CONTINUE) },
      ],
      session(),
      transformed,
    );
    expect(err).toBeNull();
    expect(transformed.payload).toBe('changed');
    const denied = await run([
      {
        name: 'retain',
        run: () => ({ kind: 'pending', verdict: Promise.resolve({ kind: 'deny', reason: 'no' }) }),
      },
    ]);
    expect(denied?.message).toBe('no');
  });

  it('delivers through the deliver stages, each may withhold or replace the packet', () => {
    const pipeline = createDeliverPipeline([
      { name: 'authorize', run: (s, p) => (s.access.receive(p.topic) ? p : null) },
      { name: 'transform', run: (_s, p) => ({ ...p, payload: 'redacted' }) },
    ]);
    expect(pipeline.run(session(), { topic: 't', payload: 'secret' })).toEqual({
      topic: 't',
      payload: 'redacted',
    });
    const denied = session({ access: access({ receive: () => false }) });
    expect(pipeline.run(denied, { topic: 't', payload: 'secret' })).toBeNull();
  });
});

describe('connect stages', () => {
  const context: ConnectContext = {
    peer: { remoteAddress: '10.0.0.1', cn: 'd1', serial: '01', subject: { CN: 'd1' }, anonymous: false },
    clientId: 'd1',
    startedAt: 1000,
  };
  function deps(overrides: Partial<ConnectStageDeps> = {}): ConnectStageDeps {
    return {
      firewall: { certificateBan: () => undefined, admitDevice: () => ({ ok: true }) },
      checkConnection: (): Promise<ConnectDecision> =>
        Promise.resolve({ ok: true, deviceId: 'd1', group: null, serial: '01' }),
      accessFor: () => Promise.resolve(access()),
      blockedSince: () => false,
      ...overrides,
    };
  }

  it('identifies the device and compiles its access', async () => {
    const outcome = await runConnectStages(connectStages(deps()), context);
    expect(outcome.ok && outcome.context.device).toEqual({ deviceId: 'd1', group: null, serial: '01' });
    expect(outcome.ok && outcome.context.access?.deviceId).toBe('d1');
  });

  it("refuses with an error code that maps to today's CONNACK codes", async () => {
    const refusal = async (d: ConnectStageDeps) => {
      const outcome = await runConnectStages(connectStages(d), context);
      if (outcome.ok) throw new Error('expected a refusal');
      return { ...outcome.refusal, connack: mqttConnackOf(outcome.refusal.code) };
    };
    // A banned certificate: refused before the store is asked, and not counted again.
    let asked = false;
    const banned = await refusal(
      deps({
        firewall: { certificateBan: () => 'too many refused connects', admitDevice: () => ({ ok: true }) },
        checkConnection: () => (
          (asked = true),
          Promise.resolve({ ok: false, code: 'forbidden', reason: 'x' })
        ),
      }),
    );
    expect(banned).toMatchObject({
      connack: 5,
      banned: true,
      reason: 'certificate banned: too many refused connects',
    });
    expect(asked).toBe(false);
    const wrongId = await refusal(
      deps({
        checkConnection: () => Promise.resolve({ ok: false, code: 'validation_failed', reason: 'id' }),
      }),
    );
    expect(wrongId.connack).toBe(2);
    const denied = await refusal(
      deps({
        accessFor: () =>
          Promise.resolve(access({ connect: () => ({ allow: false, reason: 'quarantined' }) })),
      }),
    );
    expect(denied).toMatchObject({ connack: 5, reason: 'connect denied: quarantined' });
    const revoked = await refusal(deps({ blockedSince: (_d, since) => since === 1000 }));
    expect(revoked).toMatchObject({ connack: 5, reason: 'device revoked or disabled while connecting' });
    // 0x88 Server unavailable; a 3.1.1 client gets return code 3 [MQTT-3.2.2-5].
    expect(v3ConnackOf(connackError('server unavailable', 'unavailable').reasonCode)).toBe(3);
  });
});

describe('ingress router', () => {
  it('matches a device topic exactly, in place', () => {
    expect(isDeviceTopic('devices/d1/metrics', 'd1', 'metrics')).toBe(true);
    expect(isDeviceTopic('devices/d1/metrics/x', 'd1', 'metrics')).toBe(false);
    expect(isDeviceTopic('devices/d2/metrics', 'd1', 'metrics')).toBe(false);
    expect(isDeviceTopic('devices/d11metrics', 'd1', 'metrics')).toBe(false);
    expect(isDeviceTopic('devices/d1/firmware/status', 'd1', 'firmware/status')).toBe(true);
  });

  it('validates once and hands the typed payload, or the problem, to the route handler', () => {
    const got: unknown[] = [];
    const router = createIngressRouter({
      handlers: {
        metrics: {
          accept: (deviceId, report) => void got.push([deviceId, report.listeningTcpPorts]),
          reject: (deviceId, problem) => void got.push([deviceId, problem]),
        },
        firmwareStatus: { accept: (deviceId, status) => void got.push([deviceId, status.step]) },
      },
      onError: (err) => {
        throw err;
      },
    });
    router.dispatch('d1', 'devices/d1/metrics', JSON.stringify({ listeningTcpPorts: [22] }));
    router.dispatch('d1', 'devices/d1/metrics', 'not json');
    router.dispatch('d1', 'devices/d1/firmware/status', JSON.stringify({ step: 'nope' })); // dropped
    router.dispatch(
      'd1',
      'devices/d1/firmware/status',
      JSON.stringify({ step: 'downloading', target: 'a/b', ts: 1 }),
    );
    router.dispatch('d1', 'devices/d2/metrics', '{}'); // not its own subtree
    expect(got).toEqual([
      ['d1', [22]],
      ['d1', 'report is not JSON'],
      ['d1', 'downloading'],
    ]);
  });

  it('refuses a report over its size before parsing it', () => {
    const big = Buffer.alloc((deviceIngress.metrics.maxBytes ?? 0) + 1, 0x20);
    expect(parseIngress(deviceIngress.metrics, big)).toEqual({
      ok: false,
      problem: 'report larger than 65536 bytes',
    });
  });
});
