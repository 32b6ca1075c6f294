import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CONTINUE, type BrokerSession, type PublishPacket, type PublishVerdict } from '../broker/index.ts';
import { createTestStore, type TestStore } from '../test-support/dialects.ts';
import { compilePatterns, type PatternMatcher } from './telemetry.patterns.ts';
import { createTelemetryStage } from './telemetry.stage.ts';
import { selectMessages } from './telemetry.store.ts';
import { createTelemetryWriter, type TelemetryWriter } from './telemetry.writer.ts';

const device = (id: string) => ({ principal: { kind: 'device', id } }) as unknown as BrokerSession;
const app = { principal: { kind: 'app', id: 'dashboard' } } as unknown as BrokerSession;
const packet = (topic: string, qos: 0 | 1 | 2 = 1, payload = '{"t":1}'): PublishPacket => ({
  topic,
  payload,
  qos,
  retain: false,
});
const silent = { error: () => undefined, warn: () => undefined };

async function settled(verdict: PublishVerdict): Promise<PublishVerdict> {
  return verdict.kind === 'pending' ? settled(await verdict.verdict) : verdict;
}

describe('the telemetry broker stage', () => {
  let t: TestStore;
  let matcher: PatternMatcher | null;
  let writer: TelemetryWriter;
  const stageWith = (w: Pick<TelemetryWriter, 'add'>) =>
    createTelemetryStage({
      patterns: { current: () => matcher },
      writer: w,
      now: () => 5000,
      logger: silent,
    });
  const stored = () => selectMessages(t.store.db, { deviceId: 'pump-1', limit: 1000 });

  beforeEach(async () => {
    t = await createTestStore('sqlite');
    matcher = compilePatterns([{ pattern: 'devices/+/telemetry', retentionMs: 86_400_000 }]);
    writer = createTelemetryWriter(t.store.db, { maxRows: 3, maxDelayMs: 20, maxQueuedRows: 5 });
  });
  afterEach(async () => {
    await writer.flush();
    await t.cleanup();
  });

  it('does nothing when no pattern is stored, or for other topics and for apps', () => {
    matcher = null;
    const stage = stageWith(writer);
    expect(stage.run(device('pump-1'), packet('devices/pump-1/telemetry'))).toBe(CONTINUE);
    matcher = compilePatterns([{ pattern: 'devices/+/telemetry', retentionMs: 60_000 }]);
    expect(stage.run(device('pump-1'), packet('devices/pump-1/state'))).toBe(CONTINUE);
    expect(stage.run(app, packet('devices/pump-1/telemetry'))).toBe(CONTINUE);
    expect(writer.stats()).toMatchObject({ queued: 0, stored: 0 });
  });

  it('holds a QoS 1 PUBLISH until its batch is committed; QoS 0 goes on at once', async () => {
    const stage = stageWith(writer);
    const verdict = stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 1));
    expect(verdict.kind).toBe('pending');
    expect(await stored()).toEqual([]);
    expect(await settled(verdict)).toBe(CONTINUE);
    // Resolved means committed: the row is there.
    expect(await stored()).toMatchObject([
      {
        device_id: 'pump-1',
        topic: 'devices/pump-1/telemetry',
        pattern: 'devices/+/telemetry',
        received_at: 5000,
      },
    ]);
    expect(stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 0))).toBe(CONTINUE);
    await writer.flush();
    expect((await stored()).length).toBe(2);
  });

  it("stores privacy's kept form with its subject and schema; nothing when the schema keeps nothing", async () => {
    const stage = stageWith(writer);
    const kept = packet('devices/pump-1/telemetry', 1, '{"user_id":"u-17","lat":48.137154}');
    kept.kept = Buffer.from('{"user_id":"ps1.1.x","lat":48.14}');
    kept.classified = { schema: 'room-sensor', subject: 'u-17' };
    expect(await settled(stage.run(device('pump-1'), kept))).toBe(CONTINUE);
    const none = packet('devices/pump-1/telemetry', 1, '{"user_id":"u-17"}');
    none.kept = null;
    none.classified = { schema: 'room-sensor', subject: 'u-17' };
    expect(stage.run(device('pump-1'), none)).toBe(CONTINUE);
    const plain = packet('devices/pump-1/telemetry', 1, '{"on":true}');
    plain.classified = { schema: 'plain', subject: null };
    expect(await settled(stage.run(device('pump-1'), plain))).toBe(CONTINUE);
    const rows = await stored();
    expect(
      rows.map((r) => [Buffer.from(r.payload, 'base64').toString(), r.subject_id, r.data_schema, r.bytes]),
    ).toEqual([
      ['{"user_id":"ps1.1.x","lat":48.14}', 'u-17', 'room-sensor', 33],
      ['{"on":true}', null, 'plain', 11],
    ]);
  });

  it('writes in batches: a full batch at once, the rest after the delay, in arrival order', async () => {
    const stage = stageWith(writer);
    const verdicts = [1, 2, 3, 4].map((n) =>
      stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 1, JSON.stringify({ n }))),
    );
    expect(writer.stats().queued).toBe(4);
    await Promise.all(verdicts.map(settled));
    expect(writer.stats()).toMatchObject({ stored: 4, queued: 0 });
    const rows = await stored();
    expect(rows.map((r) => JSON.parse(Buffer.from(r.payload, 'base64').toString()) as unknown)).toEqual([
      { n: 1 },
      { n: 2 },
      { n: 3 },
      { n: 4 },
    ]);
  });

  it('does not store beyond the queue bound, and counts it', () => {
    const stage = stageWith(writer);
    for (let i = 0; i < 7; i++) stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 0));
    expect(writer.stats()).toMatchObject({ dropped: 2 });
    expect(stage.counters.unstored).toBe(2);
  });

  it('does not store beyond the byte bound of the queue either, and counts it', async () => {
    const bytes = createTelemetryWriter(t.store.db, {
      maxRows: 100,
      maxDelayMs: 20,
      maxQueuedRows: 100,
      maxQueuedBytes: 2500,
    });
    const stage = stageWith(bytes);
    const big = 'x'.repeat(1000);
    for (let i = 0; i < 4; i++) stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 0, big));
    expect(bytes.stats()).toMatchObject({ queued: 2, queuedBytes: 2000, dropped: 2 });
    expect(stage.counters.unstored).toBe(2);
    // A small one still fits; once written, the bytes are free again.
    stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 0, '{"t":1}'));
    expect(bytes.stats()).toMatchObject({ queued: 3, dropped: 2 });
    await bytes.flush();
    expect(bytes.stats()).toMatchObject({ stored: 3, queued: 0, queuedBytes: 0 });
    stage.run(device('pump-1'), packet('devices/pump-1/telemetry', 0, big));
    expect(bytes.stats()).toMatchObject({ queued: 1, queuedBytes: 1000, dropped: 2 });
    await bytes.flush();
  });

  it('a store out of reach delivers without storing; another failure refuses the PUBLISH', async () => {
    const lost = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const failing = (err: Error) => ({ add: () => Promise.reject(err) });
    expect(
      await settled(stageWith(failing(lost)).run(device('pump-1'), packet('devices/pump-1/telemetry'))),
    ).toBe(CONTINUE);
    const other = stageWith(failing(new Error('no such table')));
    expect(await settled(other.run(device('pump-1'), packet('devices/pump-1/telemetry')))).toEqual({
      kind: 'deny',
      reason: 'telemetry could not be stored',
    });
    expect(other.counters.unstored).toBe(1);
  });
});
