import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { entriesOf } from '../events/index.ts';
import { testDialects } from '../test-support/dialects.ts';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';

/** Subject id pseudonymised (a direct identifier), location generalised (quasi-identifiers), a temperature. */
const roomSensor = {
  name: 'room-sensor',
  topic: 'devices/+/telemetry',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      user_id: { type: 'string' },
      lat: { type: 'number' },
      lon: { type: 'number' },
      temp: { type: 'number' },
    },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      transform: 'pseudonymise',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    lat: {
      category: 'user.location.precise',
      transform: { generalise: { grid: 1000, axis: 'latitude' } },
      lawfulBasis: 'contract',
      retention: '30d',
    },
    lon: {
      category: 'user.location.precise',
      transform: { generalise: { grid: 1000, axis: 'longitude', latitudeField: 'lat' } },
      lawfulBasis: 'contract',
      retention: '30d',
    },
    temp: { category: 'system.operations' },
  },
};

const cellA = { lat: 48.1395, lon: 11.5761 };
const cellB = { lat: 52.5205, lon: 13.4049 };

for (const dialect of testDialects) {
  describe(`k-anonymous telemetry exports on ${dialect}`, () => {
    let p: PrivacyTestContext;
    const exported = async () => entriesOf(await p.log.readAfter(0, 1000), 'privacy.telemetry_exported');

    beforeEach(async () => {
      p = await createPrivacyTestContext(dialect);
      await p.privacy.putSchema(roomSensor, 'user:dpo');
      // Five people in one cell (one of them twice), one person alone in another, an hour earlier.
      for (const [i, subject] of ['u-1', 'u-2', 'u-3', 'u-4', 'u-5', 'u-5'].entries())
        await p.keep({
          subject,
          at: p.clock.now - 10 + i,
          payload: { user_id: `ps1.1.token${subject}`, ...cellA, temp: 20 + i },
        });
      await p.keep({
        subject: 'u-9',
        at: p.clock.now - 3_600_000,
        payload: { user_id: 'ps1.1.tokenu-9', ...cellB, temp: 18 },
      });
    });
    afterEach(async () => {
      await p.close();
    });

    it('refuses an export whose quasi-identifiers single out fewer than k subjects, and records nothing', async () => {
      await expect(
        p.privacy.exportTelemetry({ schema: 'room-sensor', k: 5 }, 'user:analyst'),
      ).rejects.toMatchObject({
        code: 'validation_failed',
        message:
          'k-anonymity: 1 of 2 groups single out fewer than k=5 subjects (quasi-identifiers lat, lon); generalise them further or raise the group size',
      });
      // Five distinct subjects in the big group: k=6 fails there too.
      await expect(
        p.privacy.exportTelemetry(
          { schema: 'room-sensor', k: 6, from: p.clock.now - 60_000 },
          'user:analyst',
        ),
      ).rejects.toMatchObject({ message: expect.stringMatching(/^k-anonymity: 1 of 1 groups/) as string });
      expect(await exported()).toEqual([]);
    });

    it('exports only quasi-identifiers and non-personal fields when every group holds k subjects', async () => {
      const result = await p.privacy.exportTelemetry(
        { schema: 'room-sensor', k: 5, from: p.clock.now - 60_000 },
        'user:analyst',
      );
      expect(result).toMatchObject({ k: 5, classes: 1, smallestClass: 5, quasiIdentifiers: ['lat', 'lon'] });
      expect(result.rows).toHaveLength(6);
      expect(result.rows[0]).toEqual({ ...cellA, temp: 20 });
      expect(JSON.stringify(result.rows)).not.toMatch(/user_id|ps1\.|u-\d|pump/);
      expect((await exported()).map((e) => [e.actor, e.subject, e.data])).toEqual([
        [
          'user:analyst',
          'data_schema:room-sensor',
          { schema: 'room-sensor', rows: 6, k: 5, quasiIdentifiers: ['lat', 'lon'] },
        ],
      ]);
    });

    it('counts the device as the subject of a message without one', async () => {
      for (let i = 0; i < 3; i++)
        await p.keep({
          subject: null,
          device: 'pump-7',
          at: p.clock.now + i,
          payload: { ...cellB, temp: 1 },
        });
      await expect(
        p.privacy.exportTelemetry({ schema: 'room-sensor', k: 2, from: p.clock.now }, 'user:analyst'),
      ).rejects.toMatchObject({ message: expect.stringMatching(/^k-anonymity: 1 of 1 groups/) as string });
    });

    it('checks k, the limit and the schema', async () => {
      await expect(
        p.privacy.exportTelemetry({ schema: 'room-sensor', k: 1 }, 'user:analyst'),
      ).rejects.toMatchObject({
        code: 'validation_failed',
      });
      await expect(
        p.privacy.exportTelemetry({ schema: 'room-sensor', k: 2, limit: 0 }, 'user:analyst'),
      ).rejects.toMatchObject({ code: 'validation_failed' });
      await expect(p.privacy.exportTelemetry({ schema: 'nope', k: 2 }, 'user:analyst')).rejects.toMatchObject(
        {
          code: 'not_found',
        },
      );
      expect(
        await p.privacy.exportTelemetry(
          { schema: 'room-sensor', k: 2, from: p.clock.now + 1 },
          'user:analyst',
        ),
      ).toEqual({ rows: [], k: 2, classes: 0, smallestClass: 0, quasiIdentifiers: ['lat', 'lon'] });
    });
  });
}
