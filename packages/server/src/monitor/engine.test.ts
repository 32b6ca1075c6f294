import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { subjectOf, type AuditEntry, type EventData, type EventType } from '../events/index.ts';
import { createEngine, networkOf, topicShape, type Finding } from './engine.ts';
import {
  behaviourSchema,
  effectiveProfile,
  type AttachmentKind,
  type EffectiveProfile,
  type ProfileDocumentInput,
  type SecurityProfile,
} from './profile.ts';
import { parseProfileDocument } from './profile.service.ts';

// The detection engine driven by hand: a fake sink that records what it is told, times passed to tick()
// and to the audit entries, the broker's hot path replayed through `engine.meter(id).published()`.
// `Date` is faked so that a breach seen on the hot path (which stamps the finding with Date.now()) is
// stamped with the test's clock too.

const S = 1000;
const M = 60_000;
/** Monday 5 January 2026, 10:00 UTC. */
const T0 = Date.UTC(2026, 0, 5, 10);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

function securityProfile(
  name: string,
  doc: ProfileDocumentInput,
  attachments: { kind: AttachmentKind; target: string }[] = [{ kind: 'all', target: '*' }],
): SecurityProfile {
  const { document, explicitBuiltins } = parseProfileDocument(doc);
  return {
    id: name,
    name,
    version: 1,
    document,
    explicitBuiltins,
    attachments,
    updatedAt: T0,
    updatedBy: 'test',
  };
}

/** What one profile attached to `all` makes of a device. */
const profile = (doc: ProfileDocumentInput = {}, name = 'test'): EffectiveProfile =>
  effectiveProfile([securityProfile(name, doc)], { deviceId: 'x' });

let seq = 0;
/** An audit entry of one type, with that type's data. */
function entry<T extends EventType>(
  type: T,
  ts: number,
  subject: string | null,
  data: EventData[T],
): AuditEntry<T>;
function entry(type: EventType, ts: number, subject: string | null, data: EventData[EventType]) {
  return { seq: ++seq, ts, type, actor: subject ?? 'system', subject, data, prevHash: '', hash: '' };
}
const connected = (id: string, remoteAddress: string, ts: number): AuditEntry =>
  entry('mqtt.connected', ts, subjectOf.device(id), { remoteAddress, certSerial: '0a1b2c' });
const disconnected = (id: string, remoteAddress: string, ts: number): AuditEntry =>
  entry('mqtt.disconnected', ts, subjectOf.device(id), { remoteAddress, reason: 'disconnected' });

function setup(
  options: {
    silentAfterMs?: number;
    baselineIntervalMs?: number;
    startedAt?: number;
    global?: EffectiveProfile;
  } = {},
) {
  const raised: Finding[] = [];
  const cleared: { detector: string; subject: string; resolution: string }[] = [];
  const global = options.global ?? profile();
  const engine = createEngine({
    sink: {
      raise: (finding) => raised.push(finding),
      clear: (detector, subject, resolution) => cleared.push({ detector, subject, resolution }),
    },
    globalProfile: () => global,
    silentAfterMs: options.silentAfterMs ?? 3_600_000,
    baselineIntervalMs: options.baselineIntervalMs ?? M,
    startedAt: options.startedAt ?? T0,
  });
  /** `n` messages of `bytes` from a device at time `at` (the broker's hot path). */
  const publish = (id: string, n: number, at: number, bytes = 100, topic = `devices/${id}/telemetry`) => {
    vi.setSystemTime(at);
    const meter = engine.meter(id);
    for (let i = 0; i < n; i++) meter.published(topic, bytes);
  };
  /** Ticks every `step` from `from` to `to` inclusive. */
  const tickEvery = (from: number, to: number, step = S) => {
    for (let t = from; t <= to; t += step) {
      vi.setSystemTime(t);
      engine.tick(t);
    }
  };
  const of = (detector: string) => raised.filter((f) => f.detector === detector);
  const clearedOf = (detector: string) => cleared.filter((c) => c.detector === detector);
  /** Alerts the sink would still have open, as the alert service reports them at start. */
  const openAlarms = (): [string, string][] => {
    const open = new Map<string, [string, string]>();
    for (const f of raised) open.set(`${f.detector}|${f.subject}`, [f.detector, f.subject]);
    for (const c of cleared) open.delete(`${c.detector}|${c.subject}`);
    return [...open.values()];
  };
  return { engine, raised, cleared, publish, tickEvery, of, clearedOf, openAlarms };
}

const burst = (extra: Record<string, unknown> = {}) =>
  profile({
    behaviours: [
      {
        name: 'burst',
        metric: 'messages_sent',
        operator: 'gt',
        threshold: 5,
        window: '10s',
        severity: 'high',
        ...extra,
      },
    ],
  });

describe('rule behaviours on counters the broker bumps', () => {
  it('fires on the (N+1)th message, not before, and once per window', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile('pump-1', burst(), 'pumps');
    publish('pump-1', 5, T0 + 1 * S);
    tickEvery(T0 + S, T0 + 5 * S);
    expect(raised).toEqual([]);

    publish('pump-1', 1, T0 + 6 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      detector: 'burst',
      subject: 'device:pump-1',
      deviceId: 'pump-1',
      severity: 'high',
      profile: 'test',
      at: T0 + 6 * S,
      evidence: {
        metric: 'messages_sent',
        statistic: 'sum',
        operator: 'gt',
        threshold: 5,
        value: 6,
        windowMs: 10_000,
      },
    });

    publish('pump-1', 50, T0 + 7 * S);
    tickEvery(T0 + 6 * S, T0 + 9 * S);
    expect(raised).toHaveLength(1);
  });

  it('schema_violations: payloads refused by privacy, counted per device', () => {
    const { engine, of } = setup();
    const bad = { name: 'bad-payloads', metric: 'schema_violations', operator: 'gt' as const, threshold: 2 };
    engine.setProfile('pump-1', profile({ behaviours: [{ ...bad, window: '1m' }] }), null);
    const refused = (id: string, ts: number) =>
      engine.onEvent(
        entry('privacy.payload_refused', ts, `device:${id}`, {
          topic: `devices/${id}/telemetry`,
          schema: 'room-sensor',
          reason: '/temp: must be number',
        }),
      );
    refused('pump-1', T0 + S);
    refused('pump-1', T0 + 2 * S);
    refused('pump-2', T0 + 2 * S);
    expect(of('bad-payloads')).toEqual([]);
    refused('pump-1', T0 + 3 * S);
    expect(of('bad-payloads')).toHaveLength(1);
    expect(of('bad-payloads')[0]).toMatchObject({
      deviceId: 'pump-1',
      evidence: { metric: 'schema_violations', value: 3 },
    });
  });

  it('counts bytes too, and messages delivered to the device', () => {
    const { engine, of, publish } = setup();
    engine.setProfile(
      'pump-1',
      profile({
        behaviours: [
          { name: 'bytes', metric: 'bytes_sent', operator: 'gt', threshold: 1000 },
          { name: 'inbound', metric: 'messages_received', operator: 'gte', threshold: 3 },
        ],
      }),
      null,
    );
    publish('pump-1', 10, T0 + S, 100);
    expect(of('bytes')).toEqual([]);
    publish('pump-1', 1, T0 + S, 1);
    expect(of('bytes')).toHaveLength(1);
    expect(of('bytes')[0]!.evidence.value).toBe(1001);

    const meter = engine.meter('pump-1');
    meter.received(10);
    meter.received(10);
    expect(of('inbound')).toEqual([]);
    meter.received(10);
    expect(of('inbound')).toHaveLength(1);
  });

  it('with toAlarm: 3, raises only in the third consecutive breaching window', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile('pump-1', burst({ toAlarm: 3 }), null);
    // Windows start at T0 (when the profile was set) and are 10 s long.
    publish('pump-1', 6, T0 + 1 * S);
    tickEvery(T0 + S, T0 + 10 * S);
    publish('pump-1', 6, T0 + 11 * S);
    tickEvery(T0 + 11 * S, T0 + 20 * S);
    // A clean window: the count starts again.
    tickEvery(T0 + 21 * S, T0 + 30 * S);
    publish('pump-1', 6, T0 + 31 * S);
    tickEvery(T0 + 31 * S, T0 + 40 * S);
    publish('pump-1', 6, T0 + 41 * S);
    tickEvery(T0 + 41 * S, T0 + 50 * S);
    expect(raised).toEqual([]);

    publish('pump-1', 5, T0 + 51 * S);
    expect(raised).toEqual([]);
    publish('pump-1', 1, T0 + 52 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.evidence).toMatchObject({ consecutive: 3, value: 6 });
  });

  it('clears after toClear clean windows, then can fire again', () => {
    const { engine, raised, cleared, publish, tickEvery } = setup();
    engine.setProfile('pump-1', burst({ toClear: 2 }), null);
    publish('pump-1', 6, T0 + S);
    tickEvery(T0 + S, T0 + 10 * S);
    // Still breaching in the next window: no second alert.
    publish('pump-1', 20, T0 + 11 * S);
    tickEvery(T0 + 11 * S, T0 + 20 * S);
    expect(raised).toHaveLength(1);
    // One clean window is not enough.
    publish('pump-1', 2, T0 + 21 * S);
    tickEvery(T0 + 21 * S, T0 + 30 * S);
    expect(cleared).toEqual([]);
    tickEvery(T0 + 31 * S, T0 + 40 * S);
    expect(cleared).toEqual([
      {
        detector: 'burst',
        subject: 'device:pump-1',
        resolution: expect.stringMatching(/2 window/) as string,
      },
    ]);

    publish('pump-1', 6, T0 + 41 * S);
    expect(raised).toHaveLength(2);
    expect(raised[1]!.at).toBe(T0 + 41 * S);
  });

  it('gte fires on the Nth message', () => {
    const { engine, raised, publish } = setup();
    engine.setProfile('pump-1', burst({ operator: 'gte' }), null);
    publish('pump-1', 4, T0 + S);
    expect(raised).toEqual([]);
    publish('pump-1', 1, T0 + S);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.evidence).toMatchObject({ operator: 'gte', value: 5 });
  });

  it('lt 1 over a window is silence by rule: raised when a window closes empty, cleared when heard from', () => {
    const { engine, raised, cleared, publish, tickEvery } = setup();
    engine.setProfile(
      'meter-1',
      profile({
        behaviours: [
          { name: 'heartbeat', metric: 'messages_sent', operator: 'lt', threshold: 1, window: '10s' },
        ],
      }),
      null,
    );
    publish('meter-1', 1, T0 + 2 * S);
    tickEvery(T0 + S, T0 + 10 * S);
    tickEvery(T0 + 11 * S, T0 + 14 * S);
    publish('meter-1', 1, T0 + 15 * S);
    tickEvery(T0 + 15 * S, T0 + 20 * S);
    expect(raised).toEqual([]);
    // An empty window: judged when it closes, not before.
    tickEvery(T0 + 21 * S, T0 + 29 * S);
    expect(raised).toEqual([]);
    tickEvery(T0 + 30 * S, T0 + 30 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      detector: 'heartbeat',
      at: T0 + 30 * S,
      evidence: { value: 0, operator: 'lt' },
    });
    tickEvery(T0 + 31 * S, T0 + 40 * S);
    expect(raised).toHaveLength(1);
    tickEvery(T0 + 41 * S, T0 + 44 * S);
    publish('meter-1', 1, T0 + 45 * S);
    tickEvery(T0 + 45 * S, T0 + 50 * S);
    expect(cleared.map((c) => c.detector)).toEqual(['heartbeat']);
  });
});

describe('rule behaviours on message size and topics', () => {
  const sizes = (behaviour: Record<string, unknown>) =>
    profile({ behaviours: [{ name: 'size', metric: 'message_size', window: '10s', ...behaviour }] });

  it('max: one large message breaches at once', () => {
    const { engine, raised, publish } = setup();
    engine.setProfile('cam-1', sizes({ operator: 'gt', threshold: 1000 }), null);
    publish('cam-1', 100, T0 + S, 999);
    expect(raised).toEqual([]);
    publish('cam-1', 1, T0 + 2 * S, 5000);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ at: T0 + 2 * S, evidence: { statistic: 'max', value: 5000 } });
  });

  it('avg: the mean size of the window, judged when the window closes', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile('cam-1', sizes({ statistic: 'avg', operator: 'gt', threshold: 500 }), null);
    // 3 × 100 + 1 × 1000: 325 on average.
    publish('cam-1', 3, T0 + S, 100);
    publish('cam-1', 1, T0 + 2 * S, 1000);
    tickEvery(T0 + S, T0 + 10 * S);
    expect(raised).toEqual([]);
    // 2 × 1000 + 2 × 200 over two ticks: 600 on average.
    publish('cam-1', 2, T0 + 11 * S, 1000);
    tickEvery(T0 + 11 * S, T0 + 15 * S);
    publish('cam-1', 2, T0 + 16 * S, 200);
    tickEvery(T0 + 16 * S, T0 + 19 * S);
    expect(raised).toEqual([]);
    tickEvery(T0 + 20 * S, T0 + 20 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.evidence).toMatchObject({ statistic: 'avg', value: 600 });
  });

  it('min: the smallest message of the window', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile('cam-1', sizes({ statistic: 'min', operator: 'lt', threshold: 10 }), null);
    publish('cam-1', 5, T0 + S, 100);
    tickEvery(T0 + S, T0 + 10 * S);
    expect(raised).toEqual([]);
    publish('cam-1', 5, T0 + 11 * S, 100);
    publish('cam-1', 1, T0 + 12 * S, 3);
    tickEvery(T0 + 11 * S, T0 + 20 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.evidence).toMatchObject({ statistic: 'min', value: 3 });
  });

  it('p90: a few large messages do not move it, many do (the middle of its histogram bucket, within ~9 %)', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile('cam-1', sizes({ statistic: 'p90', operator: 'gt', threshold: 1000 }), null);
    publish('cam-1', 95, T0 + S, 100);
    publish('cam-1', 5, T0 + 2 * S, 4000);
    tickEvery(T0 + S, T0 + 10 * S);
    expect(raised).toEqual([]);
    publish('cam-1', 80, T0 + 11 * S, 100);
    publish('cam-1', 20, T0 + 12 * S, 4000);
    tickEvery(T0 + 11 * S, T0 + 20 * S);
    expect(raised).toHaveLength(1);
    const value = raised[0]!.evidence.value as number;
    expect(value).toBeGreaterThanOrEqual(4000 / 1.1);
    expect(value).toBeLessThanOrEqual(4000 * 1.1);
  });

  it('latest: the last message of the window', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile('cam-1', sizes({ statistic: 'latest', operator: 'lt', threshold: 50 }), null);
    publish('cam-1', 1, T0 + S, 10);
    publish('cam-1', 1, T0 + S, 100);
    tickEvery(T0 + S, T0 + 10 * S);
    expect(raised).toEqual([]);
    publish('cam-1', 1, T0 + 11 * S, 100);
    publish('cam-1', 1, T0 + 11 * S, 10);
    tickEvery(T0 + 11 * S, T0 + 20 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]!.evidence).toMatchObject({ statistic: 'latest', value: 10 });
  });

  it('disconnect_duration: raised while the device stays away, cleared once it is back', () => {
    const { engine, raised, cleared, tickEvery } = setup();
    engine.setProfile(
      'cam-1',
      profile({
        behaviours: [
          { name: 'away', metric: 'disconnect_duration', operator: 'gt', threshold: 60, window: '10s' },
        ],
      }),
      null,
    );
    engine.onEvent(connected('cam-1', '10.0.0.1', T0));
    engine.onEvent(disconnected('cam-1', '10.0.0.1', T0 + S));
    tickEvery(T0 + S, T0 + 61 * S);
    expect(raised).toEqual([]);
    tickEvery(T0 + 62 * S, T0 + 99 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ at: T0 + 62 * S, evidence: { value: 61 } });
    engine.onEvent(connected('cam-1', '10.0.0.1', T0 + 100 * S));
    tickEvery(T0 + 100 * S, T0 + 120 * S);
    expect(cleared.map((c) => c.detector)).toEqual(['away']);
    expect(raised).toHaveLength(1);
  });

  it('distinct_topics: counted over the window, at the tick', () => {
    const { engine, raised, publish, tickEvery } = setup();
    engine.setProfile(
      'cam-1',
      profile({
        behaviours: [
          { name: 'topics', metric: 'distinct_topics', operator: 'gt', threshold: 3, window: '10s' },
        ],
      }),
      null,
    );
    for (const t of ['a', 'b', 'c']) publish('cam-1', 2, T0 + S, 10, `devices/cam-1/${t}`);
    tickEvery(T0 + S, T0 + 10 * S);
    // A new window: three old and one new topic make four.
    for (const t of ['a', 'b', 'c']) publish('cam-1', 1, T0 + 11 * S, 10, `devices/cam-1/${t}`);
    tickEvery(T0 + 11 * S, T0 + 12 * S);
    expect(raised).toEqual([]);
    publish('cam-1', 1, T0 + 13 * S, 10, 'devices/cam-1/d');
    expect(raised).toEqual([]);
    tickEvery(T0 + 13 * S, T0 + 13 * S);
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ at: T0 + 13 * S, evidence: { value: 4 } });
  });
});

describe('set behaviours: allow-lists', () => {
  it('source_address against IPv4 and IPv6 CIDRs (and IPv4-mapped addresses)', () => {
    const { engine, raised } = setup();
    const p = profile({
      behaviours: [
        { name: 'where', metric: 'source_address', allowed: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] },
      ],
    });
    for (const id of ['a', 'b', 'c']) engine.setProfile(id, p, null);
    let t = T0;
    for (const address of ['10.1.2.3', '::ffff:10.9.9.9', '2001:db8:5::1', '192.0.2.7']) {
      engine.onEvent(connected('a', address, (t += S)));
      engine.onEvent(disconnected('a', address, (t += S)));
    }
    expect(raised).toEqual([]);
    engine.onEvent(connected('b', '192.0.2.8', (t += S)));
    engine.onEvent(connected('c', '2001:db9::1', (t += S)));
    expect(raised.map((f) => [f.subject, f.evidence.outside])).toEqual([
      ['device:b', ['192.0.2.8']],
      ['device:c', ['2001:db9::1']],
    ]);
    expect(raised[0]!.evidence.allowed).toEqual(['10.0.0.0/8', '2001:db8::/32', '192.0.2.7']);
  });

  it('a device still connected from a refused address stays alarmed; reconnecting from an allowed one clears', () => {
    const { engine, raised, cleared, tickEvery } = setup();
    engine.setProfile(
      'a',
      profile({
        behaviours: [{ name: 'where', metric: 'source_address', allowed: ['10.0.0.0/8'], window: '10s' }],
      }),
      null,
    );
    engine.onEvent(connected('a', '203.0.113.9', T0 + S));
    tickEvery(T0 + S, T0 + 60 * S);
    expect(raised).toHaveLength(1);
    expect(cleared).toEqual([]);
    engine.onEvent(disconnected('a', '203.0.113.9', T0 + 61 * S));
    engine.onEvent(connected('a', '10.0.0.4', T0 + 62 * S));
    tickEvery(T0 + 61 * S, T0 + 80 * S);
    expect(raised).toHaveLength(1);
    expect(cleared.map((c) => c.detector)).toEqual(['where']);
  });

  it('listening ports (TCP and UDP) and destinations with ip:port', () => {
    const { engine, raised } = setup();
    engine.setProfile(
      'gw-1',
      profile({
        behaviours: [
          { name: 'tcp', metric: 'listening_tcp_ports', allowed: [443, 8883] },
          { name: 'udp', metric: 'listening_udp_ports', allowed: ['123'] },
          { name: 'dest', metric: 'destinations', allowed: ['203.0.113.0/24', '2001:db8::/32'] },
        ],
      }),
      null,
    );
    engine.onReport(
      'gw-1',
      {
        listeningTcpPorts: [443, 8883],
        listeningUdpPorts: [123],
        destinations: ['203.0.113.5:443', '[2001:db8::1]:8883', '2001:db8::2', '203.0.113.6'],
      },
      T0 + S,
    );
    expect(raised).toEqual([]);
    engine.onReport(
      'gw-1',
      {
        listeningTcpPorts: [443, 22, 23],
        listeningUdpPorts: [123, 161],
        destinations: ['198.51.100.7:443', '[2001:db9::1]:443'],
      },
      T0 + 2 * S,
    );
    expect(raised.map((f) => [f.detector, f.evidence.outside])).toEqual([
      ['tcp', ['22', '23']],
      ['udp', ['161']],
      ['dest', ['198.51.100.7:443', '[2001:db9::1]:443']],
    ]);
    expect(raised[0]!.evidence.allowed).toEqual(['443', '8883']);
    expect(raised[0]!.title).toMatch(/outside its allow-list/);
  });

  it('custom string and string-set metrics against their allow-lists; custom numbers against a threshold', () => {
    const { engine, raised } = setup();
    engine.setProfile(
      'gw-1',
      profile({
        behaviours: [
          { name: 'channel', metric: 'custom:fw_channel', allowed: ['stable', 'lts'] },
          { name: 'modules', metric: 'custom:modules', allowed: ['modbus', 'bacnet'] },
          { name: 'hot', metric: 'custom:cpu_temp', operator: 'gt', threshold: 80 },
        ],
      }),
      null,
    );
    engine.onReport('gw-1', { custom: { fw_channel: 'stable', modules: ['modbus'], cpu_temp: 60 } }, T0 + S);
    expect(raised).toEqual([]);
    engine.onReport(
      'gw-1',
      { custom: { fw_channel: 'beta', modules: ['modbus', 'ssh'], cpu_temp: 85 } },
      T0 + 2 * S,
    );
    expect(raised.map((f) => [f.detector, f.evidence.outside ?? f.evidence.value])).toEqual([
      ['channel', ['beta']],
      ['modules', ['ssh']],
      ['hot', 85],
    ]);
  });

  it('a window without a report neither clears nor breaches; a clean report clears', () => {
    const { engine, raised, cleared, tickEvery } = setup();
    engine.setProfile(
      'gw-1',
      profile({
        behaviours: [
          { name: 'tcp', metric: 'listening_tcp_ports', allowed: [443], window: '10s' },
          { name: 'conns', metric: 'established_connections', operator: 'gt', threshold: 10, window: '10s' },
        ],
      }),
      null,
    );
    // The device reports every 25 s: most windows have no report at all.
    engine.onReport('gw-1', { listeningTcpPorts: [443, 22], establishedConnections: 40 }, T0 + S);
    tickEvery(T0 + S, T0 + 25 * S);
    expect(raised.map((f) => f.detector)).toEqual(['tcp', 'conns']);
    expect(cleared).toEqual([]);
    engine.onReport('gw-1', { listeningTcpPorts: [443], establishedConnections: 2 }, T0 + 26 * S);
    tickEvery(T0 + 26 * S, T0 + 30 * S);
    expect(cleared.map((c) => c.detector).sort()).toEqual(['conns', 'tcp']);
    tickEvery(T0 + 31 * S, T0 + 90 * S);
    expect(raised).toHaveLength(2);
  });
});

describe('built-in detectors', () => {
  const signInFailed = (username: string, address: string, ts: number) =>
    entry('auth.sign_in_failed', ts, `user:${username}`, { address, reason: 'bad_credentials' });

  it('guessing: 5 identities from one address within the window fire once; 4 do not', () => {
    const { engine, of } = setup();
    let t = T0;
    // Four identities, tried many times: not guessing.
    for (let round = 0; round < 5; round++)
      for (const u of ['admin', 'root', 'ops', 'test'])
        engine.onEvent(signInFailed(u, '198.51.100.9', (t += S)));
    expect(of('guessing')).toEqual([]);
    engine.onEvent(signInFailed('support', '198.51.100.9', (t += S)));
    expect(of('guessing')).toHaveLength(1);
    expect(of('guessing')[0]).toMatchObject({
      subject: 'address:198.51.100.9',
      deviceId: null,
      severity: 'high',
      evidence: {
        address: '198.51.100.9',
        distinctIdentities: 5,
        failures: 21,
        windowMs: 300_000,
        lastReason: 'bad_credentials',
      },
    });
    expect((of('guessing')[0]!.evidence.identities as string[]).sort()).toEqual(
      ['user:admin', 'user:ops', 'user:root', 'user:support', 'user:test'].sort(),
    );
    // The same run goes on: the same episode.
    for (const u of ['guest', 'pi', 'ubnt']) engine.onEvent(signInFailed(u, '198.51.100.9', (t += S)));
    expect(of('guessing')).toHaveLength(1);
    // MQTT refusals from another address count there, not here.
    for (let i = 0; i < 4; i++)
      engine.onEvent(
        entry('mqtt.connect_refused', (t += S), `device:cam-${i}`, {
          remoteAddress: '203.0.113.1',
          reason: 'unknown certificate',
          returnCode: 5,
        }),
      );
    expect(of('guessing')).toHaveLength(1);
    // After the window, a new run is a new episode.
    t += 10 * M;
    for (const u of ['a', 'b', 'c', 'd', 'e']) engine.onEvent(signInFailed(u, '198.51.100.9', (t += S)));
    expect(of('guessing')).toHaveLength(2);
  });

  it('topic_scan: 10 distinct denied topics fire once; 9 do not', () => {
    const { engine, of } = setup();
    engine.setProfile('cam-1', profile(), null);
    let t = T0;
    const deny = (topic: string) =>
      engine.onEvent(
        entry('mqtt.subscribe_denied', (t += 100), 'device:cam-1', { topic, reason: 'no_rule' }),
      );
    for (let i = 0; i < 9; i++) deny(`devices/other-${i}/#`);
    deny('devices/other-0/#');
    expect(of('topic_scan')).toEqual([]);
    deny('$SYS/#');
    expect(of('topic_scan')).toHaveLength(1);
    expect(of('topic_scan')[0]).toMatchObject({
      subject: 'device:cam-1',
      deviceId: 'cam-1',
      severity: 'high',
      evidence: { distinctTopics: 10, denials: 11, windowMs: 60_000 },
    });
    expect(of('topic_scan')[0]!.evidence.deniedTopics).toContain('$SYS/#');
    deny('admin/#');
    deny('#');
    expect(of('topic_scan')).toHaveLength(1);
  });

  it('cloned identity: two addresses live at once fire once; a reconnection from a new address does not', () => {
    const { engine, of } = setup();
    engine.onEvent(connected('cam-1', '192.0.2.10', T0 + S));
    engine.onEvent(disconnected('cam-1', '192.0.2.10', T0 + 2 * S));
    engine.onEvent(connected('cam-1', '198.51.100.20', T0 + 3 * S));
    // Two sessions from one address (behind one NAT) are not a clone either.
    engine.onEvent(connected('cam-1', '198.51.100.20', T0 + 4 * S));
    expect(of('cloned_identity')).toEqual([]);

    engine.onEvent(connected('cam-1', '203.0.113.30', T0 + 5 * S));
    expect(of('cloned_identity')).toHaveLength(1);
    expect(of('cloned_identity')[0]).toMatchObject({
      subject: 'device:cam-1',
      severity: 'critical',
      at: T0 + 5 * S,
      evidence: { addresses: ['198.51.100.20', '203.0.113.30'], certSerial: '0a1b2c' },
    });
    engine.onEvent(connected('cam-1', '203.0.113.31', T0 + 6 * S));
    expect(of('cloned_identity')).toHaveLength(1);
    // An operator resolved the alert: the next occurrence is a new episode.
    engine.forget('cloned_identity', 'device:cam-1');
    engine.onEvent(connected('cam-1', '203.0.113.32', T0 + 7 * S));
    expect(of('cloned_identity')).toHaveLength(2);
  });

  it('device_silent: never for a device never heard from; after silentAfter for one that was; cleared when heard again', () => {
    const { engine, of, clearedOf, publish, tickEvery } = setup({ silentAfterMs: 30 * S });
    engine.onEvent(connected('mute-1', '10.0.0.1', T0));
    engine.onEvent(connected('meter-1', '10.0.0.2', T0));
    publish('meter-1', 1, T0 + 500);
    tickEvery(T0 + S, T0 + 31 * S);
    expect(of('device_silent')).toEqual([]);
    tickEvery(T0 + 32 * S, T0 + 32 * S);
    expect(of('device_silent')).toHaveLength(1);
    expect(of('device_silent')[0]).toMatchObject({
      subject: 'device:meter-1',
      severity: 'medium',
      evidence: { lastHeardAt: T0 + S, silentForMs: 31 * S, allowedMs: 30 * S, connected: true },
    });
    tickEvery(T0 + 33 * S, T0 + 10 * M);
    expect(of('device_silent')).toHaveLength(1);
    publish('meter-1', 1, T0 + 10 * M + 500);
    tickEvery(T0 + 10 * M + S, T0 + 10 * M + S);
    expect(clearedOf('device_silent')).toEqual([
      { detector: 'device_silent', subject: 'device:meter-1', resolution: 'the device is heard from again' },
    ]);
    // A second silence is a second episode.
    tickEvery(T0 + 10 * M + 2 * S, T0 + 11 * M);
    expect(of('device_silent')).toHaveLength(2);
    expect(of('device_silent').map((f) => f.subject)).not.toContain('device:mute-1');
  });

  it('distinct_source_addresses and subscriptions', () => {
    const { engine, raised, tickEvery } = setup();
    engine.setProfile(
      'gw-1',
      profile({
        behaviours: [
          {
            name: 'roaming',
            metric: 'distinct_source_addresses',
            operator: 'gt',
            threshold: 2,
            window: '1m',
          },
          {
            name: 'subs',
            metric: 'subscriptions',
            statistic: 'max',
            operator: 'gt',
            threshold: 3,
            window: '10s',
          },
        ],
      }),
      null,
    );
    for (const [i, a] of ['10.0.0.1', '10.0.0.2', '10.0.0.2'].entries()) {
      engine.onEvent(connected('gw-1', a, T0 + i * S));
      engine.onEvent(disconnected('gw-1', a, T0 + i * S + 500));
    }
    expect(raised).toEqual([]);
    engine.onEvent(connected('gw-1', '10.0.0.3', T0 + 4 * S));
    expect(raised.map((f) => [f.detector, f.evidence.value])).toEqual([['roaming', 3]]);
    engine.meter('gw-1').subscriptions = 4;
    tickEvery(T0 + 5 * S, T0 + 12 * S);
    expect(raised.map((f) => f.detector)).toEqual(['roaming', 'subs']);
  });

  it('device_silent: an operator dismissing it holds until the device is heard again, across a restart', () => {
    const { engine, of, publish, tickEvery } = setup({ silentAfterMs: 30 * S });
    engine.onEvent(connected('meter-1', '10.0.0.2', T0));
    publish('meter-1', 1, T0 + 500);
    tickEvery(T0 + S, T0 + 32 * S);
    expect(of('device_silent')).toHaveLength(1);
    engine.forget('device_silent', 'device:meter-1');
    tickEvery(T0 + 33 * S, T0 + 5 * M);
    expect(of('device_silent')).toHaveLength(1);
    // Restart: the dismissal is part of the saved state.
    const saved = engine.dirtyState();
    const later = setup({ silentAfterMs: 30 * S, startedAt: T0 + 6 * M });
    later.engine.restore({ novelty: saved.novelty, baselines: saved.baselines, openAlarms: [] });
    later.tickEvery(T0 + 6 * M, T0 + 10 * M);
    expect(later.of('device_silent')).toEqual([]);
    // Heard again, then silent again: a new episode.
    later.publish('meter-1', 1, T0 + 10 * M + 500);
    later.tickEvery(T0 + 10 * M + S, T0 + 12 * M);
    expect(later.of('device_silent')).toHaveLength(1);
  });

  it('guessing: TLS failures count once per reason (one device retrying an expired certificate is not guessing)', () => {
    const { engine, of } = setup();
    for (let i = 0; i < 20; i++)
      engine.onEvent(
        entry('tls.handshake_failed', T0 + i * S, null, {
          listener: 'mqtt',
          remoteAddress: '198.51.100.9',
          reason: 'CERT_HAS_EXPIRED',
        }),
      );
    expect(of('guessing')).toEqual([]);
  });

  it('device_silent: a profile sets its own delay, or turns it off', () => {
    const { engine, of, publish, tickEvery } = setup({ silentAfterMs: 30 * S });
    engine.setProfile('slow-1', profile({ builtins: { device_silent: { after: '5m' } } }), null);
    engine.setProfile('off-1', profile({ builtins: { device_silent: { enabled: false } } }), null);
    publish('slow-1', 1, T0 + 500);
    publish('off-1', 1, T0 + 500);
    tickEvery(T0 + S, T0 + 5 * M + S);
    expect(of('device_silent')).toEqual([]);
    tickEvery(T0 + 5 * M + 2 * S, T0 + 30 * M, 10 * S);
    expect(of('device_silent').map((f) => f.subject)).toEqual(['device:slow-1']);
  });

  it('device_silent: a profile attached to a group sets the heartbeat expectation of that group only', () => {
    const { engine, of, publish, tickEvery } = setup({ silentAfterMs: 30 * M });
    const profiles = [
      securityProfile('default', {}),
      securityProfile('meters', { builtins: { device_silent: { after: '2m' } } }, [
        { kind: 'group', target: 'meters' },
      ]),
    ];
    const resolve = (deviceId: string, group: string | null) =>
      engine.setProfile(deviceId, effectiveProfile(profiles, { deviceId, group }), group);
    resolve('meter-1', 'meters');
    resolve('pump-1', 'pumps');
    resolve('lone-1', null);
    for (const id of ['meter-1', 'pump-1', 'lone-1']) publish(id, 1, T0 + 500);
    tickEvery(T0 + S, T0 + 2 * M, 10 * S);
    expect(of('device_silent')).toEqual([]);
    tickEvery(T0 + 2 * M + 10 * S, T0 + 20 * M, 10 * S);
    expect(of('device_silent')).toEqual([
      expect.objectContaining({
        subject: 'device:meter-1',
        title: 'meter-1 has been silent for more than 120 s',
        evidence: expect.objectContaining({ allowedMs: 2 * M }) as unknown,
      }),
    ]);
    tickEvery(T0 + 20 * M + 10 * S, T0 + 31 * M, 10 * S);
    expect(of('device_silent').map((f) => f.subject)).toEqual([
      'device:meter-1',
      'device:pump-1',
      'device:lone-1',
    ]);
  });

  it('payload_flood: once per episode on throttling, cleared after 60 s within quota', () => {
    const { engine, of, clearedOf, publish, tickEvery } = setup();
    publish('flood-1', 300, T0 + 500, 512);
    const throttled = (ts: number) =>
      engine.onEvent(
        entry('firewall.throttled', ts, 'device:flood-1', { reason: 'publish_rate', waitMs: 200 }),
      );
    throttled(T0 + S);
    throttled(T0 + 2 * S);
    throttled(T0 + 3 * S);
    expect(of('payload_flood')).toHaveLength(1);
    expect(of('payload_flood')[0]).toMatchObject({
      subject: 'device:flood-1',
      severity: 'high',
      at: T0 + S,
      evidence: { reason: 'publish_rate', firewall: 'throttled', messagesSent: 300, bytesSent: 300 * 512 },
    });
    tickEvery(T0 + 4 * S, T0 + 63 * S);
    expect(clearedOf('payload_flood')).toEqual([]);
    tickEvery(T0 + 64 * S, T0 + 64 * S);
    expect(clearedOf('payload_flood')).toHaveLength(1);
    engine.onEvent(
      entry('firewall.disconnected', T0 + 70 * S, 'device:flood-1', {
        reason: 'publish_rate',
        remoteAddress: '10.0.0.1',
      }),
    );
    expect(of('payload_flood')).toHaveLength(2);
    expect(of('payload_flood')[1]!.evidence.firewall).toBe('disconnected');
  });

  it('firmware_downgrade: only for a lower security version or a metadata rollback', () => {
    const { engine, of } = setup();
    const failed = (id: string, reason: string, ts: number) =>
      engine.onEvent(
        entry('firmware.update_failed', ts, `device:${id}`, { target: 'fw-1.2.0.bin', reason, detail: 'x' }),
      );
    failed('pump-1', 'hash_mismatch', T0 + S);
    failed('pump-1', 'download_failed', T0 + 2 * S);
    expect(of('firmware_downgrade')).toEqual([]);
    failed('pump-1', 'security_version_lower', T0 + 3 * S);
    failed('pump-1', 'security_version_lower', T0 + 4 * S);
    failed('pump-2', 'metadata_rollback', T0 + 5 * S);
    expect(of('firmware_downgrade').map((f) => [f.subject, f.evidence])).toEqual([
      ['device:pump-1', { reason: 'security_version_lower', target: 'fw-1.2.0.bin', detail: 'x' }],
      ['device:pump-2', { reason: 'metadata_rollback', target: 'fw-1.2.0.bin', detail: 'x' }],
    ]);
  });

  it('new_source_network: only after the warm-up, once per network (/24, /48)', () => {
    const { engine, of } = setup();
    let t = T0;
    const session = (id: string, address: string) => {
      engine.onEvent(connected(id, address, (t += S)));
      engine.onEvent(disconnected(id, address, (t += S)));
    };
    // Nine connections, then a new network: still warming up, so it is learned.
    for (let i = 0; i < 9; i++) session('young', `10.0.0.${i}`);
    session('young', '10.0.1.1');
    expect(of('new_source_network')).toEqual([]);

    for (let i = 0; i < 10; i++) session('old', `10.0.0.${i}`);
    session('old', '10.0.0.99');
    expect(of('new_source_network')).toEqual([]);
    session('old', '198.51.100.7');
    session('old', '198.51.100.8');
    expect(of('new_source_network')).toHaveLength(1);
    expect(of('new_source_network')[0]).toMatchObject({
      subject: 'device:old',
      evidence: {
        network: '198.51.100.0/24',
        address: '198.51.100.7',
        known: ['10.0.0.0/24'],
        connections: 11,
      },
    });
    session('old', '2001:db8:1::5');
    session('old', '2001:db8:1:ffff::9');
    expect(of('new_source_network').map((f) => f.evidence.network)).toEqual([
      '198.51.100.0/24',
      '2001:db8:1::/48',
    ]);
  });

  it('new_topic: only after the warm-up, once per kind of topic', () => {
    const { engine, of, publish, tickEvery } = setup();
    const p = profile({ builtins: { new_topic: { warmupMessages: 10 } } });
    engine.setProfile('young', p, null);
    engine.setProfile('old', p, null);
    publish('young', 5, T0 + 500, 10, 'devices/young/telemetry');
    for (let i = 0; i < 10; i++) publish('old', 1, T0 + 500, 10, `devices/old/telemetry/${i}`);
    tickEvery(T0 + S, T0 + S);
    publish('young', 1, T0 + 1500, 10, 'devices/young/config');
    publish('old', 1, T0 + 1500, 10, 'devices/old/telemetry/12345');
    tickEvery(T0 + 2 * S, T0 + 2 * S);
    expect(of('new_topic')).toEqual([]);
    publish('old', 1, T0 + 2500, 10, 'devices/old/config');
    tickEvery(T0 + 3 * S, T0 + 3 * S);
    publish('old', 1, T0 + 3500, 10, 'devices/old/config');
    tickEvery(T0 + 4 * S, T0 + 4 * S);
    expect(of('new_topic')).toHaveLength(1);
    expect(of('new_topic')[0]).toMatchObject({
      subject: 'device:old',
      severity: 'low',
      evidence: {
        topic: 'devices/old/config',
        shape: 'devices/old/config',
        known: ['devices/old/telemetry/+'],
        messages: 11,
      },
    });
  });

  it('unusual_hour: only after the warm-up, at an hour with no connections at or next to it', () => {
    const { engine, of } = setup();
    const p = profile({ builtins: { unusual_hour: { warmupConnections: 5 } } });
    engine.setProfile('young', p, null);
    engine.setProfile('old', p, null);
    const at = (hour: number, minute = 0) => Date.UTC(2026, 0, 6, hour, minute);
    const session = (id: string, ts: number) => {
      engine.onEvent(connected(id, '10.0.0.1', ts));
      engine.onEvent(disconnected(id, '10.0.0.1', ts + S));
    };
    for (let i = 0; i < 4; i++) session('young', at(9, i));
    session('young', at(3));
    for (let i = 0; i < 5; i++) session('old', at(9 + (i % 2), i));
    // 11:00 is next to 10:00.
    session('old', at(11));
    expect(of('unusual_hour')).toEqual([]);
    session('old', at(3, 15));
    session('old', at(3, 45));
    expect(of('unusual_hour')).toHaveLength(1);
    expect(of('unusual_hour')[0]).toMatchObject({
      subject: 'device:old',
      evidence: { hourUtc: 3, connections: 6 },
    });
  });

  it('networkOf and topicShape', () => {
    expect(networkOf('192.0.2.77')).toBe('192.0.2.0/24');
    expect(networkOf('::ffff:192.0.2.77')).toBe('192.0.2.0/24');
    expect(networkOf('2001:db8:abcd:12::1')).toBe('2001:db8:abcd::/48');
    expect(topicShape('devices/pump-1/telemetry/42')).toBe('devices/pump-1/telemetry/+');
    expect(topicShape('devices/pump-1/jobs/0190f3c2-7a4b-7c1d-9e2f-123456789abc')).toBe(
      'devices/pump-1/jobs/+',
    );
  });
});

describe('profiles in the engine', () => {
  it('a built-in turned off by the device profile does not fire', () => {
    const { engine, of } = setup();
    engine.setProfile(
      'cam-1',
      profile({ builtins: { payload_flood: { enabled: false }, cloned_identity: { enabled: false } } }),
      null,
    );
    engine.onEvent(
      entry('firewall.throttled', T0 + S, 'device:cam-1', { reason: 'publish_rate', waitMs: 100 }),
    );
    engine.onEvent(connected('cam-1', '192.0.2.1', T0 + S));
    engine.onEvent(connected('cam-1', '192.0.2.200', T0 + 2 * S));
    expect(of('payload_flood')).toEqual([]);
    expect(of('cloned_identity')).toEqual([]);
  });

  it('guessing follows the profiles attached to all', () => {
    const { engine, of } = setup({ global: profile({ builtins: { guessing: { identities: 2 } } }) });
    engine.onEvent(entry('auth.sign_in_failed', T0 + S, 'user:a', { address: '192.0.2.1', reason: 'x' }));
    engine.onEvent(entry('auth.sign_in_failed', T0 + 2 * S, 'user:b', { address: '192.0.2.1', reason: 'x' }));
    expect(of('guessing')).toHaveLength(1);
  });

  it('a new profile keeps the state of a behaviour it keeps and clears the alarms of behaviours it drops', () => {
    const { engine, raised, cleared, publish, tickEvery } = setup();
    const two = (threshold: number) =>
      profile({
        behaviours: [
          { name: 'burst', metric: 'messages_sent', operator: 'gt', threshold, window: '10s' },
          { name: 'big', metric: 'message_size', operator: 'gt', threshold: 1000, window: '10s' },
        ],
      });
    engine.setProfile('pump-1', two(5), null);
    publish('pump-1', 6, T0 + S);
    publish('pump-1', 1, T0 + S, 2000);
    expect(raised.map((f) => f.detector)).toEqual(['burst', 'big']);
    // A new version with a new threshold: burst stays alarmed (no second alert while it goes on).
    engine.setProfile('pump-1', two(8), null);
    publish('pump-1', 9, T0 + 2 * S);
    expect(raised).toHaveLength(2);
    expect(cleared).toEqual([]);
    // A version without `big`: its alarm is cleared.
    engine.setProfile('pump-1', burst(), null);
    expect(cleared).toEqual([
      { detector: 'big', subject: 'device:pump-1', resolution: 'behaviour removed from the profile' },
    ]);
    tickEvery(T0 + 3 * S, T0 + 30 * S);
    expect(cleared.map((c) => c.detector)).toEqual(['big', 'burst']);
  });
});

describe('restart', () => {
  it('restored open alarms: no second alert for an ongoing condition, and clears still happen', () => {
    const before = setup({ startedAt: T0 - 2 * 3_600_000, silentAfterMs: 30 * S });
    const t1 = T0 - 3_600_000;
    const ids = Array.from({ length: 5 }, (_, i) => `dev-${i}`);
    for (const id of ids) {
      before.engine.setProfile(id, burst(), null);
      before.engine.onEvent(connected(id, '10.0.0.1', t1));
      before.publish(id, 1, t1 + 500);
    }
    before.tickEvery(t1 + S, t1 + S);
    before.tickEvery(T0 - 20 * S, T0 - 20 * S);
    before.publish('dev-0', 10, T0 - 15 * S);
    before.engine.onEvent(
      entry('firewall.throttled', T0 - 12 * S, 'device:dev-1', { reason: 'rate', waitMs: 1 }),
    );
    before.engine.onEvent(connected('dev-2', '192.0.2.9', T0 - 11 * S));
    before.tickEvery(T0 - 10 * S, T0 - 10 * S);
    const open = before.openAlarms();
    expect(open.sort()).toEqual(
      [
        ['burst', 'device:dev-0'],
        ['payload_flood', 'device:dev-1'],
        ['cloned_identity', 'device:dev-2'],
        ...ids.filter((id) => id !== 'dev-0').map((id) => ['device_silent', `device:${id}`]),
      ].sort(),
    );
    const saved = before.engine.dirtyState();
    expect(saved.novelty.map(([id]) => id).sort()).toEqual([...ids].sort());
    expect(before.engine.dirtyState().novelty).toEqual([]);

    // The process restarts at T0; the devices come back and do what they did.
    const after = setup({ startedAt: T0, silentAfterMs: 30 * S });
    after.engine.restore({ novelty: saved.novelty, baselines: saved.baselines, openAlarms: open });
    for (const id of ids) after.engine.setProfile(id, burst(), null);
    after.engine.onEvent(connected('dev-0', '10.0.0.1', T0 + S));
    after.engine.onEvent(connected('dev-2', '10.0.0.1', T0 + S));
    after.engine.onEvent(connected('dev-2', '192.0.2.9', T0 + S));
    after.publish('dev-0', 9, T0 + 2 * S);
    // Then dev-0 and dev-3 send one message every 2 s (5 per window: within dev-0's limit); dev-1 is
    // throttled again 20 s after the start (its alarm was not cleared in between).
    for (let t = T0 + 2 * S; t <= T0 + 5 * M; t += 2 * S) {
      after.publish('dev-0', 1, t);
      after.publish('dev-3', 1, t);
      if (t === T0 + 20 * S)
        after.engine.onEvent(entry('firewall.throttled', t, 'device:dev-1', { reason: 'rate', waitMs: 1 }));
      after.tickEvery(t, t);
    }
    expect(after.raised).toEqual([]);
    // What ended after the restart is resolved: dev-0 calmed down, dev-1 no longer throttled, dev-3 is heard.
    expect(after.cleared.map((c) => [c.detector, c.subject]).sort()).toEqual(
      [
        ['burst', 'device:dev-0'],
        ['payload_flood', 'device:dev-1'],
        ['device_silent', 'device:dev-3'],
      ].sort(),
    );
  });

  it('no silence storm at start: time before it does not count, and each silent device is reported once', () => {
    const ids = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
    const { engine, of, publish, tickEvery } = setup({ startedAt: T0, silentAfterMs: 30 * S });
    engine.restore({
      novelty: ids.map((id) => [
        id,
        {
          networks: ['10.0.0.0/24'],
          topics: ['devices/+/telemetry'],
          hours: Array.from({ length: 24 }, () => 0),
          connections: 3,
          messages: 500,
          lastPublishAt: T0 - 3_600_000,
        },
      ]),
      baselines: {},
      openAlarms: [],
    });
    tickEvery(T0, T0 + 30 * S);
    expect(of('device_silent')).toEqual([]);
    for (const id of ['dev-0', 'dev-1']) {
      engine.onEvent(connected(id, '10.0.0.7', T0 + 5 * S));
      publish(id, 1, T0 + 5 * S);
    }
    tickEvery(T0 + 31 * S, T0 + 60 * S);
    expect(
      of('device_silent')
        .map((f) => f.subject)
        .sort(),
    ).toEqual(
      ids
        .slice(2)
        .map((id) => `device:${id}`)
        .sort(),
    );
    expect(Math.min(...of('device_silent').map((f) => f.at))).toBe(T0 + 31 * S);
  });

  it('a learned baseline: one alert for a 10x jump, none again after a restart while it goes on', () => {
    const steady = setup({ startedAt: T0, baselineIntervalMs: M });
    steady.engine.onEvent(connected('pump-1', '10.0.0.1', T0));
    let t = T0;
    const minutes = (engine: typeof steady, n: number, perMinute: number) => {
      for (let i = 0; i < n; i++) {
        t += M;
        engine.publish('pump-1', perMinute, t - S);
        engine.tickEvery(t, t);
      }
    };
    minutes(steady, 60, 50);
    expect(steady.raised).toEqual([]);
    minutes(steady, 10, 500);
    expect(steady.of('baseline_anomaly')).toHaveLength(1);
    expect(steady.of('baseline_anomaly')[0]).toMatchObject({
      subject: 'device:pump-1',
      evidence: { metric: 'messages_sent', value: 500, intervalMs: M },
    });

    const saved = steady.engine.dirtyState();
    const after = setup({ startedAt: t, baselineIntervalMs: M });
    after.engine.restore({ ...saved, openAlarms: steady.openAlarms() });
    after.engine.onEvent(connected('pump-1', '10.0.0.1', t));
    minutes(after, 10, 500);
    expect(after.raised).toEqual([]);
    minutes(after, 30, 50);
    expect(after.clearedOf('baseline_anomaly')).toHaveLength(1);
    expect(after.raised).toEqual([]);
  });

  it('a device restored at start follows the profiles attached to all until its own are resolved', () => {
    const { engine, of, tickEvery } = setup({
      startedAt: T0,
      silentAfterMs: 30 * S,
      global: profile({ builtins: { device_silent: { enabled: false } } }),
    });
    engine.restore({
      novelty: [
        [
          'pump-1',
          {
            networks: [],
            topics: [],
            hours: Array.from({ length: 24 }, () => 0),
            connections: 1,
            messages: 10,
            lastPublishAt: T0 - M,
          },
        ],
      ],
      baselines: {},
      openAlarms: [],
    });
    tickEvery(T0, T0 + 5 * M, 10 * S);
    expect(of('device_silent')).toEqual([]);
  });

  it('an alarm restored for a behaviour no longer in the profile is cleared when the profile is set', () => {
    const { engine, cleared } = setup();
    engine.restore({ novelty: [], baselines: {}, openAlarms: [['old-rule', 'device:pump-1']] });
    engine.setProfile('pump-1', burst(), null);
    expect(cleared).toEqual([
      { detector: 'old-rule', subject: 'device:pump-1', resolution: 'behaviour removed from the profile' },
    ]);
  });
});

describe('describe(): rolling windows', () => {
  it('counts what was sent or received before the first tick', () => {
    const { engine, publish, tickEvery } = setup();
    publish('pump-1', 5, T0 + 500);
    // A device that only receives (an actuator) has figures too.
    for (let i = 0; i < 3; i++) engine.meter('valve-1').received(40);
    tickEvery(T0 + S, T0 + S);
    const w = engine.describe('pump-1')!.windows;
    expect(w['10s']).toMatchObject({ spanMs: S, messagesSent: 5, bytesSent: 500 });
    expect(w['1h']).toMatchObject({ messagesSent: 5 });
    expect(engine.describe('valve-1')!.windows['1m']).toMatchObject({
      messagesSent: 0,
      messagesReceived: 3,
      bytesReceived: 120,
    });
  });

  it('gives the sums over 10 s, 1 m, 5 m, 15 m and 1 h, within a snapshot step of the nominal span', () => {
    const { engine, publish } = setup();
    const nominal: Record<string, [number, number]> = {
      '10s': [10 * S, 10 * S],
      '1m': [M, 10 * S],
      '5m': [5 * M, M],
      '15m': [15 * M, M],
      '1h': [60 * M, M],
    };
    // One message of 100 bytes and one delivery of 10 bytes every second, for two hours.
    for (let t = T0 + S; t <= T0 + 2 * 3_600_000; t += S) {
      publish('pump-1', 1, t - 500);
      engine.meter('pump-1').received(10);
      engine.tick(t);
      if ((t - T0) % (37 * S) !== 0) continue;
      const w = engine.describe('pump-1')!.windows;
      for (const [name, [span, step]] of Object.entries(nominal)) {
        const got = w[name]!;
        // What was sent in the span it reports, exactly.
        expect(got.messagesSent).toBe(got.spanMs / S);
        expect(got.bytesSent).toBe(got.spanMs / 10);
        expect(got.messagesReceived).toBe(got.spanMs / S);
        expect(got.bytesReceived).toBe(got.spanMs / 100);
        // And a span close to its name once there is that much history.
        if (t - T0 > span + step) expect(Math.abs(got.spanMs - span)).toBeLessThanOrEqual(step / 2 + S);
      }
    }
  });
});

describe('effectiveProfile', () => {
  const fleet = securityProfile(
    'fleet',
    {
      behaviours: [{ name: 'fleet-rate', metric: 'messages_sent', operator: 'gt', threshold: 1000 }],
      builtins: { guessing: { identities: 8 }, device_silent: { after: '5m' } },
      responses: [{ action: 'notify' }],
    },
    [{ kind: 'all', target: '*' }],
  );
  const pumps = securityProfile(
    'pumps',
    {
      behaviours: [{ name: 'pump-rate', metric: 'messages_sent', operator: 'gt', threshold: 100 }],
      builtins: { device_silent: { enabled: false } },
      responses: [{ action: 'quarantine', detectors: ['pump-rate'], mode: 'automatic' }],
    },
    [{ kind: 'group', target: 'pumps' }],
  );
  const hall = securityProfile('hall', { builtins: { device_silent: { after: '10m' } } }, [
    { kind: 'zone', target: 'hall-a' },
  ]);
  const special = securityProfile(
    'pump-7',
    {
      builtins: { guessing: { identities: 3 } },
      behaviours: [{ name: 'ports', metric: 'listening_tcp_ports', allowed: [443] }],
    },
    [
      { kind: 'all', target: '*' },
      { kind: 'device', target: 'pump-7' },
    ],
  );
  const all = [special, hall, pumps, fleet];

  it('built-ins: device over zone over group over all; unset built-ins keep the less specific setting', () => {
    const p7 = effectiveProfile(all, { deviceId: 'pump-7', group: 'pumps', zone: 'hall-a' });
    expect(p7.builtins.guessing.identities).toBe(3);
    expect(p7.builtins.device_silent).toEqual({ enabled: true, after: 600_000 });
    const p8 = effectiveProfile(all, { deviceId: 'pump-8', group: 'pumps', zone: null });
    expect(p8.builtins.device_silent.enabled).toBe(false);
    // `pump-7` is also attached to all: everyone else gets its guessing setting over the fleet's.
    expect(p8.builtins.guessing.identities).toBe(3);
    const other = effectiveProfile([hall, pumps, fleet], { deviceId: 'cam-1', group: 'cams' });
    expect(other.builtins.device_silent).toEqual({ enabled: true, after: 300_000 });
    expect(other.builtins.guessing.identities).toBe(8);
    // Untouched detectors keep their defaults.
    expect(other.builtins.topic_scan).toEqual({ enabled: true, deniedTopics: 10, window: 60_000 });
  });

  it('behaviours and responses add up, each named with its profile, whatever the input order', () => {
    const p = effectiveProfile([...all].reverse(), { deviceId: 'pump-7', group: 'pumps', zone: 'hall-a' });
    expect(p.behaviours.map((b) => [b.profile, b.name]).sort()).toEqual(
      [
        ['fleet', 'fleet-rate'],
        ['pumps', 'pump-rate'],
        ['pump-7', 'ports'],
      ].sort(),
    );
    expect(p.responses.map((r) => [r.profile, r.action]).sort()).toEqual(
      [
        ['fleet', 'notify'],
        ['pumps', 'quarantine'],
      ].sort(),
    );
    expect(
      effectiveProfile(all, { deviceId: 'cam-1' })
        .behaviours.map((b) => b.name)
        .sort(),
    ).toEqual(['fleet-rate', 'ports']);
    expect(effectiveProfile([pumps], { deviceId: 'cam-1', group: 'cams' })).toMatchObject({
      behaviours: [],
      responses: [],
    });
  });

  it('a behaviour with the same name in a more specific profile replaces the less specific one', () => {
    const tight = securityProfile(
      'tight',
      { behaviours: [{ name: 'fleet-rate', metric: 'messages_sent', operator: 'gt', threshold: 10 }] },
      [{ kind: 'group', target: 'pumps' }],
    );
    const p = effectiveProfile([fleet, tight], { deviceId: 'pump-1', group: 'pumps' });
    expect(p.behaviours.map((b) => [b.profile, b.name, b.threshold])).toEqual([['tight', 'fleet-rate', 10]]);
  });
});

describe('behaviour schema', () => {
  it('refuses allow-lists of addresses that are not IPs or CIDRs, and custom metrics with nothing to check', () => {
    const parse = (b: Record<string, unknown>) => behaviourSchema.safeParse({ name: 'b', ...b }).success;
    expect(parse({ metric: 'source_address', allowed: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'] })).toBe(
      true,
    );
    expect(parse({ metric: 'source_address', allowed: ['office'] })).toBe(false);
    expect(parse({ metric: 'source_address', allowed: ['10.0.0.0/33'] })).toBe(false);
    expect(parse({ metric: 'destinations', allowed: ['2001:db8::/129'] })).toBe(false);
    expect(parse({ metric: 'destinations', allowed: [443] })).toBe(false);
    expect(parse({ metric: 'custom:fw', allowed: ['stable'] })).toBe(true);
    expect(parse({ metric: 'custom:fw', operator: 'gt', threshold: 1 })).toBe(true);
    expect(parse({ metric: 'custom:fw' })).toBe(false);
  });
});
