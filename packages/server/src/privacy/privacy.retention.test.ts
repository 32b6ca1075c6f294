import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dataSchemaDocumentSchema } from '@bulwark/protocol';
import { entriesOf } from '../events/index.ts';
import { testDialects } from '../test-support/dialects.ts';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { schemaRetentionMs } from './privacy.retention.ts';

const DAY = 86_400_000;

/** A schema with a personal field kept 30 days and one not kept at all (its 1 day does not count). */
const roomSensor = {
  name: 'room-sensor',
  topic: 'devices/+/telemetry',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { user_id: { type: 'string' }, temp: { type: 'number' }, note: { type: 'string' } },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      transform: 'pseudonymise',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    temp: { category: 'system.operations', lawfulBasis: 'legitimate_interests', retention: '90d' },
    note: { category: 'user.content', lawfulBasis: 'contract', retention: '1d', store: 'none' },
  },
};

/** A schema without personal data nor retention: left to the telemetry store's own limits. */
const plant = {
  name: 'plant',
  topic: 'plants/+/state',
  schema: { type: 'object', additionalProperties: false, properties: { level: { type: 'number' } } },
  fields: { level: { category: 'system.operations' } },
};

describe('the retention of a data schema', () => {
  it('is the shortest retention of the fields it keeps', () => {
    expect(schemaRetentionMs(dataSchemaDocumentSchema.parse(roomSensor))).toBe(30 * DAY);
    expect(schemaRetentionMs(dataSchemaDocumentSchema.parse(plant))).toBeUndefined();
  });
});

for (const dialect of testDialects) {
  describe(`retention on ${dialect}`, () => {
    let p: PrivacyTestContext;
    beforeEach(async () => {
      p = await createPrivacyTestContext(dialect);
      await p.privacy.putSchema(roomSensor, 'user:dpo');
      await p.privacy.putSchema(plant, 'user:dpo');
    });
    afterEach(async () => {
      await p.close();
    });

    const storedTimes = async (schema: string) =>
      (await p.telemetry.rowsForSchema({ schema, limit: 100 })).map((r) => r.receivedAt);

    it('deletes exactly what is past the limit, in every store, one event per store that deleted', async () => {
      const now = p.clock.now;
      const limit = now - 30 * DAY;
      for (const at of [limit - DAY, limit - 1, limit, limit + 1, now])
        await p.keep({ subject: 'u-17', at, payload: { user_id: 'ps1.1.x', temp: 20 } });
      await p.keep({ subject: null, at: limit - DAY, schema: 'plant', payload: { level: 3 } });
      const retainedCalls: [string, number][] = [];
      const sources = p.deps.sources();
      sources.retained = {
        module: 'retained',
        store: 'retained',
        exportSubject: () => Promise.resolve([]),
        eraseSubject: () => Promise.resolve({ erased: 0 }),
        deleteForSchema: (schema, before) => {
          retainedCalls.push([schema, before]);
          return Promise.resolve(0);
        },
      };

      const runs = await p.privacy.applyRetention(now);
      expect(runs).toEqual([
        { schema: 'room-sensor', store: 'telemetry', deleted: 2, before: limit },
        { schema: 'room-sensor', store: 'retained', deleted: 0, before: limit },
      ]);
      expect(retainedCalls).toEqual([['room-sensor', limit]]);
      // 1 ms older than the limit goes; at the limit and 1 ms newer stay; the schema without retention is left.
      expect(await storedTimes('room-sensor')).toEqual([limit, limit + 1, now]);
      expect(await storedTimes('plant')).toEqual([limit - DAY]);
      const events = entriesOf(await p.log.readAfter(0, 1000), 'privacy.retention_applied');
      expect(events.map((e) => [e.subject, e.data])).toEqual([
        ['data_schema:room-sensor', { schema: 'room-sensor', store: 'telemetry', deleted: 2, before: limit }],
      ]);
      // A second pass finds nothing more and records nothing.
      expect((await p.privacy.applyRetention(now)).map((r) => r.deleted)).toEqual([0, 0]);
      expect(entriesOf(await p.log.readAfter(0, 1000), 'privacy.retention_applied')).toHaveLength(1);
    });

    it('reports a store that fails and still runs the others', async () => {
      await p.keep({
        subject: 'u-17',
        at: p.clock.now - 31 * DAY,
        payload: { user_id: 'ps1.1.x', temp: 20 },
      });
      const sources = p.deps.sources();
      sources.retained = {
        module: 'retained',
        store: 'retained',
        exportSubject: () => Promise.resolve([]),
        eraseSubject: () => Promise.resolve({ erased: 0 }),
        deleteForSchema: () => Promise.reject(new Error('retained store down')),
      };
      const runs = await p.privacy.applyRetention(p.clock.now);
      expect(runs).toEqual([
        expect.objectContaining({ store: 'telemetry', deleted: 1 }),
        expect.objectContaining({ store: 'retained', deleted: 0, error: 'retained store down' }),
      ]);
      expect(p.errors).toEqual([new Error('retained store down')]);
    });
  });
}
