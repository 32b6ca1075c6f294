import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createRetainedStore, type RetainedStore } from './retained.ts';

const limits = { perDevice: 10, bytesPerDevice: 10_000, total: 100, bytesTotal: 100_000 };

for (const dialect of testDialects) {
  describe(`retained messages and privacy on ${dialect}`, () => {
    let t: TestStore;
    let clock: number;
    let retained: RetainedStore;

    /** Retains a message and waits for its write. */
    async function retain(
      deviceId: string,
      m: { topic: string; payload: string; schema?: string; subject?: string | null },
    ) {
      const verdict = retained.retain(deviceId, {
        topic: m.topic,
        payload: Buffer.from(m.payload),
        qos: 1,
        ...(m.schema ? { classified: { schema: m.schema, subject: m.subject ?? null } } : {}),
      });
      if (!verdict.ok) throw new Error(verdict.reason);
      await verdict.stored;
    }
    const topics = () => [...retained.match(['#'])].map((m) => m.topic).sort();

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 1000;
      retained = createRetainedStore({ db: t.store.db, now: () => clock, limits });
      await retain('pump-1', {
        topic: 'devices/pump-1/telemetry',
        payload: '{"user_id":"ps1.1.x","temp":21}',
        schema: 'room-sensor',
        subject: 'u-17',
      });
      clock = 2000;
      await retain('pump-2', {
        topic: 'devices/pump-2/telemetry',
        payload: '{"user_id":"ps1.1.y","temp":19}',
        schema: 'room-sensor',
        subject: 'u-18',
      });
      await retain('pump-1', { topic: 'devices/pump-1/state', payload: 'on' });
    });
    afterEach(async () => t.cleanup());

    it('keeps the subject and schema of a message, in the store and for delivery', async () => {
      const rows = await t.store.db
        .selectFrom('retained_messages')
        .select(['topic', 'subject_id', 'data_schema', 'updated_at'])
        .orderBy('topic')
        .execute();
      expect(rows.map((r) => [r.topic, r.subject_id, r.data_schema, Number(r.updated_at)])).toEqual([
        ['devices/pump-1/state', null, null, 2000],
        ['devices/pump-1/telemetry', 'u-17', 'room-sensor', 1000],
        ['devices/pump-2/telemetry', 'u-18', 'room-sensor', 2000],
      ]);
      // After a restart too: the classification of the payload the core delivers.
      const reloaded = createRetainedStore({ db: t.store.db, now: () => clock, limits });
      expect(await reloaded.load()).toBe(3);
      const [message] = [...reloaded.match(['devices/pump-1/telemetry'])];
      expect(message && reloaded.classificationOf(message.payload)).toMatchObject({
        schema: 'room-sensor',
        subject: 'u-17',
        deviceId: 'pump-1',
      });
      const [state] = [...reloaded.match(['devices/pump-1/state'])];
      expect(state && reloaded.classificationOf(state.payload)).toMatchObject({
        schema: null,
        subject: null,
      });
      expect(reloaded.classificationOf(Buffer.from('on'))).toBeUndefined();
    });

    it("exports and erases a person's retained messages, and a device's", async () => {
      const person = { kind: 'person' as const, id: 'u-17' };
      const source = retained.privacySource;
      expect(source.module).toBe('retained');
      expect(await source.exportSubject(person)).toEqual([
        {
          record: 'retained_message',
          topic: 'devices/pump-1/telemetry',
          deviceId: 'pump-1',
          qos: 1,
          updatedAt: 1000,
          dataSchema: 'room-sensor',
          payload: { user_id: 'ps1.1.x', temp: 21 },
          payloadBase64: Buffer.from('{"user_id":"ps1.1.x","temp":21}').toString('base64'),
        },
      ]);
      const ofDevice = await retained.subjectData.exportSubject({ kind: 'device', id: 'pump-1' });
      // A payload that is not JSON is exported as its bytes.
      expect(ofDevice.map((r) => [r.topic, r.payload])).toEqual([
        ['devices/pump-1/state', null],
        ['devices/pump-1/telemetry', { user_id: 'ps1.1.x', temp: 21 }],
      ]);
      expect(await retained.subjectData.exportSubject({ kind: 'user', id: 'u-17' })).toEqual([]);

      expect(await source.eraseSubject(person, 'cli')).toEqual({ erased: 1 });
      expect(topics()).toEqual(['devices/pump-1/state', 'devices/pump-2/telemetry']);
      expect(retained.usage('pump-1').count).toBe(1);
      expect(await source.exportSubject(person)).toEqual([]);
      expect(await retained.subjectData.eraseSubject({ kind: 'device', id: 'pump-2' }, 'cli')).toEqual({
        erased: 1,
      });
      expect(topics()).toEqual(['devices/pump-1/state']);
      expect(retained.usage()).toMatchObject({ count: 1 });
      // The store says the same after a restart.
      const reloaded = createRetainedStore({ db: t.store.db, now: () => clock, limits });
      expect(await reloaded.load()).toBe(1);
    });

    it("deletes a data schema's messages last updated before a time, keeping the quotas right", async () => {
      expect(retained.privacySource.store).toBe('retained');
      expect(await retained.privacySource.deleteForSchema('room-sensor', 1500)).toBe(1);
      expect(topics()).toEqual(['devices/pump-1/state', 'devices/pump-2/telemetry']);
      expect(retained.usage('pump-1').count).toBe(1);
      expect(await retained.deleteForSchema('other', 10_000)).toBe(0);
      expect(await retained.deleteForSchema('room-sensor', 10_000)).toBe(1);
      expect(topics()).toEqual(['devices/pump-1/state']);
      expect(retained.usage()).toMatchObject({ count: 1 });
      const rows = await t.store.db.selectFrom('retained_messages').select('topic').execute();
      expect(rows.map((r) => r.topic)).toEqual(['devices/pump-1/state']);
    });

    it('forgets what another process deleted from the store, not what was retained meanwhile', async () => {
      // Another process (the CLI, with a store of its own and nothing in memory) erases u-17 and expires u-18.
      const other = createRetainedStore({ db: t.store.db, now: () => clock, limits });
      expect(await other.privacySource.eraseSubject({ kind: 'person', id: 'u-17' }, 'cli')).toEqual({
        erased: 1,
      });
      expect(await other.deleteForSchema('room-sensor', 10_000)).toBe(1);
      expect(topics()).toHaveLength(3);
      // Retained here while this store follows (its write queued after the check): a new message, kept.
      const forgetting = retained.forgetDeleted();
      const verdict = retained.retain('pump-2', {
        topic: 'devices/pump-2/telemetry',
        payload: Buffer.from('{"temp":18}'),
        qos: 1,
      });
      expect(await forgetting).toBe(1);
      expect(verdict.ok && (await verdict.stored)).toBeUndefined();
      expect(topics()).toEqual(['devices/pump-1/state', 'devices/pump-2/telemetry']);
      expect(retained.usage('pump-1').count).toBe(1);
      expect(await retained.forgetDeleted()).toBe(0);
    });
  });
}
