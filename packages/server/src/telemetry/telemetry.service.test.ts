import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { waitFor } from '../test-support/wait.ts';
import { createTelemetryService, type TelemetryService } from './telemetry.service.ts';
import { compilePatterns, patternProblem } from './telemetry.patterns.ts';
import { insertMessages, nextMessageId } from './telemetry.store.ts';

const box = createSecretBox(randomBytes(32));
const DAY = 86_400_000;

describe('telemetry patterns', () => {
  it('accepts filters under a device level only', () => {
    expect(patternProblem('devices/+/telemetry')).toBeUndefined();
    expect(patternProblem('devices/pump-1/#')).toBeUndefined();
    expect(patternProblem('devices/+/sensors/+/value')).toBeUndefined();
    expect(patternProblem('devices/#')).toMatch(/device level/);
    expect(patternProblem('devices/+')).toMatch(/not under devices/);
    expect(patternProblem('apps/x/#')).toMatch(/not under devices/);
    expect(patternProblem('devices/+/te#')).toMatch(/not a valid MQTT topic filter/);
    expect(patternProblem('devices/a+b/x')).toMatch(/not a valid/);
    expect(patternProblem('devices/bad..id/x')).toMatch(/not a device id/);
  });

  it('matches as MQTT does, preferring the longest retention', () => {
    const m = compilePatterns([
      { pattern: 'devices/+/telemetry', retentionMs: DAY },
      { pattern: 'devices/pump-1/#', retentionMs: 30 * DAY },
    ]);
    expect(m.match('devices/pump-2/telemetry')).toBe('devices/+/telemetry');
    expect(m.match('devices/pump-1/telemetry')).toBe('devices/pump-1/#');
    expect(m.match('devices/pump-2/telemetry/x')).toBeUndefined();
    expect(m.match('apps/dashboard/telemetry')).toBeUndefined();
    expect(m.match('devices')).toBeUndefined();
  });
});

for (const dialect of testDialects) {
  describe(`the telemetry store on ${dialect}`, () => {
    let t: TestStore;
    let clock: number;
    let audit: AuditLog;
    let bus: EventBus;
    let telemetry: TelemetryService;

    const busOn = async (store: Store) => {
      const log = createAuditLog({
        db: store.db,
        mac: box,
        now: Date.now,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await log.ensureAnchor();
      return { log, bus: createEventBus({ log, db: store.db }) };
    };
    const seed = (
      rows: {
        device: string;
        topic: string;
        at: number;
        pattern: string;
        payload?: string;
        subject?: string;
        schema?: string;
      }[],
    ) =>
      insertMessages(
        t.store.db,
        rows.map((r) => {
          const payload = Buffer.from(r.payload ?? JSON.stringify({ at: r.at }));
          return {
            id: nextMessageId(),
            device_id: r.device,
            topic: r.topic,
            pattern: r.pattern,
            subject_id: r.subject ?? null,
            data_schema: r.schema ?? null,
            received_at: r.at,
            payload: payload.toString('base64'),
            bytes: payload.length,
          };
        }),
      );

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 100 * DAY;
      ({ log: audit, bus } = await busOn(t.store));
      telemetry = createTelemetryService({ db: t.store.db, events: bus, now: () => clock });
    });
    afterEach(async () => {
      await telemetry.stop();
      await bus.close();
      await t.cleanup();
    });

    it('sets, lists and removes patterns, each with its event; removing deletes the stored rows', async () => {
      const set = await telemetry.setPattern('devices/+/telemetry', { retentionMs: 30 * DAY }, 'user:ada');
      expect(set).toEqual({
        pattern: 'devices/+/telemetry',
        retentionMs: 30 * DAY,
        createdAt: clock,
        updatedAt: clock,
        createdBy: 'user:ada',
        messages: 0,
        oldestAt: null,
      });
      clock += 1000;
      await telemetry.setPattern('devices/+/telemetry', { retentionMs: 7 * DAY }, 'user:bob');
      await seed([
        {
          device: 'pump-1',
          topic: 'devices/pump-1/telemetry',
          at: clock - 10,
          pattern: 'devices/+/telemetry',
        },
        {
          device: 'pump-2',
          topic: 'devices/pump-2/telemetry',
          at: clock - 5,
          pattern: 'devices/+/telemetry',
        },
      ]);
      expect(await telemetry.listPatterns()).toEqual([
        expect.objectContaining({
          retentionMs: 7 * DAY,
          createdBy: 'user:ada',
          messages: 2,
          oldestAt: clock - 10,
        }),
      ]);
      expect(await telemetry.removePattern('devices/+/telemetry', 'user:bob')).toEqual({
        pattern: 'devices/+/telemetry',
        deleted: 2,
      });
      expect(await telemetry.listPatterns()).toEqual([]);
      expect((await telemetry.query({ deviceId: 'pump-1' })).items).toEqual([]);
      await expect(telemetry.removePattern('devices/+/telemetry', 'user:bob')).rejects.toMatchObject({
        code: 'not_found',
      });
      const entries = await audit.readAfter(0, 100);
      expect(
        entries.filter((e) => e.type.startsWith('telemetry.')).map((e) => [e.type, e.actor, e.data]),
      ).toEqual([
        ['telemetry.pattern_set', 'user:ada', { pattern: 'devices/+/telemetry', retentionMs: 30 * DAY }],
        ['telemetry.pattern_set', 'user:bob', { pattern: 'devices/+/telemetry', retentionMs: 7 * DAY }],
        ['telemetry.pattern_removed', 'user:bob', { pattern: 'devices/+/telemetry', deleted: 2 }],
      ]);
    });

    it('refuses bad patterns and retentions with a reason, changing nothing', async () => {
      await expect(telemetry.setPattern('#', { retentionMs: DAY }, 'cli')).rejects.toBeInstanceOf(
        BulwarkError,
      );
      await expect(telemetry.setPattern('devices/+/t', { retentionMs: 59_999 }, 'cli')).rejects.toThrow(
        /1 minute to 10 years/,
      );
      await expect(
        telemetry.setPattern('devices/+/t', { retentionMs: 11 * 365 * DAY }, 'cli'),
      ).rejects.toThrow(/1 minute to 10 years/);
      expect(await telemetry.listPatterns()).toEqual([]);
    });

    it('answers a device by time range and topic, in arrival order, keyset-paginated', async () => {
      const p = 'devices/+/#';
      await seed([
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 1000, pattern: p },
        { device: 'pump-1', topic: 'devices/pump-1/state', at: 2000, pattern: p, payload: 'not json' },
        { device: 'pump-2', topic: 'devices/pump-2/telemetry', at: 2500, pattern: p },
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 3000, pattern: p },
        { device: 'pump-1', topic: 'devices/pump-1/sensors/a', at: 4000, pattern: p },
      ]);
      const all = await telemetry.query({ deviceId: 'pump-1' });
      expect(all.items.map((m) => m.receivedAt)).toEqual([1000, 2000, 3000, 4000]);
      expect(all.next).toBeNull();
      expect(all.items[0]).toMatchObject({ payload: { at: 1000 }, bytes: 11 });
      expect(all.items[1]).toMatchObject({
        payload: null,
        payloadBase64: Buffer.from('not json').toString('base64'),
      });

      const first = await telemetry.query({ deviceId: 'pump-1', limit: 2 });
      expect(first.items.map((m) => m.receivedAt)).toEqual([1000, 2000]);
      const second = await telemetry.query({ deviceId: 'pump-1', limit: 2, after: first.next ?? '' });
      expect(second.items.map((m) => m.receivedAt)).toEqual([3000, 4000]);
      const third = await telemetry.query({ deviceId: 'pump-1', limit: 2, after: second.next ?? '' });
      expect(third).toEqual({ items: [], next: null });

      const range = await telemetry.query({ deviceId: 'pump-1', from: 2000, to: 4000 });
      expect(range.items.map((m) => m.receivedAt)).toEqual([2000, 3000]);
      const exact = await telemetry.query({ deviceId: 'pump-1', topic: 'devices/pump-1/telemetry' });
      expect(exact.items.map((m) => m.receivedAt)).toEqual([1000, 3000]);
      const filter = await telemetry.query({ deviceId: 'pump-1', topic: 'devices/pump-1/+' });
      expect(filter.items.map((m) => m.topic)).toEqual([
        'devices/pump-1/telemetry',
        'devices/pump-1/state',
        'devices/pump-1/telemetry',
      ]);
      const page = await telemetry.query({ deviceId: 'pump-1', topic: 'devices/+/#', limit: 3 });
      expect(page.items.length).toBe(3);
      const rest = await telemetry.query({
        deviceId: 'pump-1',
        topic: 'devices/+/#',
        limit: 3,
        after: page.next ?? '',
      });
      expect(rest.items.map((m) => m.receivedAt)).toEqual([4000]);
      // LIKE wildcards in a filter's literal prefix match only themselves.
      expect((await telemetry.query({ deviceId: 'pump-1', topic: 'devices/pump_1/#' })).items).toEqual([]);
      await expect(telemetry.query({ deviceId: 'pump-1', topic: 'devices/#/x' })).rejects.toMatchObject({
        code: 'validation_failed',
      });
    });

    it('retention deletes exactly the rows older than each limit, with one event per pattern', async () => {
      await telemetry.setPattern('devices/+/telemetry', { retentionMs: DAY }, 'cli');
      await telemetry.setPattern('devices/+/state', { retentionMs: 7 * DAY }, 'cli');
      const limit = clock - DAY;
      await seed([
        { device: 'p', topic: 'devices/p/telemetry', at: limit - 1, pattern: 'devices/+/telemetry' },
        { device: 'p', topic: 'devices/p/telemetry', at: limit, pattern: 'devices/+/telemetry' },
        { device: 'p', topic: 'devices/p/telemetry', at: limit + 1, pattern: 'devices/+/telemetry' },
        { device: 'p', topic: 'devices/p/state', at: limit - 1, pattern: 'devices/+/state' },
      ]);
      expect(await telemetry.applyRetention(clock)).toBe(1);
      expect((await telemetry.query({ deviceId: 'p' })).items.map((m) => m.receivedAt)).toEqual([
        limit,
        limit + 1,
        limit - 1,
      ]);
      expect(await telemetry.applyRetention(clock)).toBe(0);
      const events = (await audit.readAfter(0, 100)).filter((e) => e.type === 'telemetry.retention_applied');
      expect(events.map((e) => e.data)).toEqual([
        { pattern: 'devices/+/telemetry', deleted: 1, before: limit },
      ]);
    });

    it('exports and erases a device subject: its stored messages, newest first', async () => {
      const p = 'devices/+/telemetry';
      await seed([
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 1, pattern: p },
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 2, pattern: p },
        { device: 'pump-2', topic: 'devices/pump-2/telemetry', at: 3, pattern: p },
      ]);
      const exported = await telemetry.subjectData.exportSubject({ kind: 'device', id: 'pump-1' });
      expect(exported.map((r) => [r.record, r.receivedAt])).toEqual([
        ['telemetry_message', 2],
        ['telemetry_message', 1],
      ]);
      expect(await telemetry.subjectData.exportSubject({ kind: 'user', id: 'pump-1' })).toEqual([]);
      expect(await telemetry.subjectData.eraseSubject({ kind: 'device', id: 'pump-1' }, 'cli')).toEqual({
        erased: 2,
      });
      expect((await telemetry.query({ deviceId: 'pump-1' })).items).toEqual([]);
      expect((await telemetry.query({ deviceId: 'pump-2' })).items.length).toBe(1);
    });

    it("exports and erases a person's messages (privacy: by subject), not the device's others", async () => {
      const p = 'devices/+/telemetry';
      await seed([
        {
          device: 'pump-1',
          topic: 'devices/pump-1/telemetry',
          at: 1,
          pattern: p,
          subject: 'u-17',
          schema: 's',
        },
        {
          device: 'pump-2',
          topic: 'devices/pump-2/telemetry',
          at: 2,
          pattern: p,
          subject: 'u-17',
          schema: 's',
        },
        {
          device: 'pump-1',
          topic: 'devices/pump-1/telemetry',
          at: 3,
          pattern: p,
          subject: 'u-18',
          schema: 's',
        },
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 4, pattern: p },
      ]);
      const person = { kind: 'person' as const, id: 'u-17' };
      const exported = await telemetry.privacySource.exportSubject(person);
      expect(exported.map((r) => [r.record, r.deviceId, r.receivedAt, r.dataSchema])).toEqual([
        ['telemetry_message', 'pump-2', 2, 's'],
        ['telemetry_message', 'pump-1', 1, 's'],
      ]);
      expect(telemetry.privacySource.module).toBe('telemetry');
      expect(await telemetry.privacySource.eraseSubject(person, 'cli')).toEqual({ erased: 2 });
      expect(await telemetry.subjectData.exportSubject(person)).toEqual([]);
      expect((await telemetry.query({ deviceId: 'pump-1' })).items.map((m) => m.receivedAt)).toEqual([3, 4]);
      expect(await telemetry.subjectData.eraseSubject({ kind: 'person', id: 'u-99' }, 'cli')).toEqual({
        erased: 0,
      });
    });

    it('deletes and lists the messages kept for a data schema (privacy retention and exports)', async () => {
      const p = 'devices/+/telemetry';
      await seed([
        {
          device: 'pump-1',
          topic: 'devices/pump-1/telemetry',
          at: 10,
          pattern: p,
          subject: 'u-1',
          schema: 'a',
        },
        { device: 'pump-2', topic: 'devices/pump-2/telemetry', at: 20, pattern: p, schema: 'a' },
        {
          device: 'pump-1',
          topic: 'devices/pump-1/telemetry',
          at: 30,
          pattern: p,
          subject: 'u-1',
          schema: 'a',
        },
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 5, pattern: p, schema: 'b' },
        { device: 'pump-1', topic: 'devices/pump-1/telemetry', at: 6, pattern: p },
      ]);
      const rows = await telemetry.rowsForSchema({ schema: 'a', limit: 10 });
      expect(rows.map((r) => [r.subjectId, r.deviceId, r.receivedAt])).toEqual([
        ['u-1', 'pump-1', 10],
        [null, 'pump-2', 20],
        ['u-1', 'pump-1', 30],
      ]);
      expect(JSON.parse(rows[0]?.payload.toString() ?? '')).toEqual({ at: 10 });
      expect(
        (await telemetry.rowsForSchema({ schema: 'a', from: 15, to: 30, limit: 10 })).map(
          (r) => r.receivedAt,
        ),
      ).toEqual([20]);
      expect((await telemetry.rowsForSchema({ schema: 'a', limit: 1 })).length).toBe(1);
      expect(telemetry.privacySource.store).toBe('telemetry');
      expect(await telemetry.privacySource.deleteForSchema('a', 30)).toBe(2);
      expect((await telemetry.rowsForSchema({ schema: 'a', limit: 10 })).map((r) => r.receivedAt)).toEqual([
        30,
      ]);
      // Other schemas and unclassified rows are untouched (in arrival order).
      expect((await telemetry.query({ deviceId: 'pump-1' })).items.map((m) => m.receivedAt)).toEqual([
        30, 5, 6,
      ]);
    });

    it('keeps the compiled patterns current from the events of another process', async () => {
      await telemetry.start(3_600_000);
      bus.startTail(20);
      await bus.flush();
      expect(telemetry.patterns.current()).toBeNull();
      const otherStore = await t.openAnother();
      const other = await busOn(otherStore);
      const cli = createTelemetryService({ db: otherStore.db, events: other.bus, now: () => clock });
      await cli.setPattern('devices/+/telemetry', { retentionMs: DAY }, 'cli');
      await waitFor('the pattern', () => telemetry.patterns.current()?.match('devices/x/telemetry'));
      await cli.removePattern('devices/+/telemetry', 'cli');
      await waitFor('no pattern', () => telemetry.patterns.current() === null);
      await other.bus.close();
    });
  });
}
