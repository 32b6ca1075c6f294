import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseDataSchema } from './data-schema.ts';
import { roomSensor } from '../test-support/data-schemas.ts';
import { decryptValue, type DataKey, type PseudonymKey } from './keys.ts';
import {
  compileDataSchema,
  latitudeCell,
  longitudeCell,
  schemaMatcher,
  type ClassifiedMessage,
  type CompiledSchema,
} from './transforms.ts';

const PAYLOAD = '{"user_id":"u-17","lat":48.137154,"lon":11.576124,"temp":21.5}';
const analytics = { purpose: 'analytics.reporting', consented: true };
const operations = { purpose: 'essential.service.operations', consented: false };
const device = { purpose: null, consented: false };

const pkey = (period: number, key = randomBytes(32)): PseudonymKey => ({ period, key });
const dkey = (): DataKey => ({ id: randomBytes(12).toString('base64url'), key: randomBytes(32) });

function compile(change?: (doc: ReturnType<typeof roomSensor>) => void): CompiledSchema {
  const doc = roomSensor();
  change?.(doc);
  return compileDataSchema(parseDataSchema(doc));
}

function parsed(schema: CompiledSchema, payload: string | Buffer = PAYLOAD): Record<string, unknown> {
  const r = schema.check(payload);
  if (!r.ok) throw new Error(r.reason);
  return r.value;
}

function message(
  schema: CompiledSchema,
  extra: Partial<ClassifiedMessage> & { payload?: string } = {},
): ClassifiedMessage {
  return {
    value: parsed(schema, extra.payload),
    subject: 'u-17',
    key: null,
    pseudonymKey: pkey(7),
    ...extra,
  };
}

/** Great-circle distance in metres (haversine). */
function metres(a: { lat: number; lon: number }, b: { lat: number; lon: number }): number {
  const rad = (d: number) => (d * Math.PI) / 180;
  const h =
    Math.sin(rad(b.lat - a.lat) / 2) ** 2 +
    Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(rad(b.lon - a.lon) / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.sqrt(h));
}

describe('the issue example (room sensor)', () => {
  const schema = compile();

  it('gives analytics a pseudonym, a 1 km location and the clear temperature', () => {
    const m = message(schema);
    const view = schema.view(m, analytics);
    expect(Object.keys(view)).toEqual(['user_id', 'lat', 'lon', 'temp']);
    expect(view.user_id).toMatch(/^ps1\.7\.[A-Za-z0-9_-]{22}$/);
    expect(view.temp).toBe(21.5);
    const lat = view.lat as number;
    const lon = view.lon as number;
    expect(lat).not.toBe(48.137154);
    expect(lon).not.toBe(11.576124);
    // at most half the diagonal of a 1 km cell from the original point
    expect(metres({ lat, lon }, { lat: 48.137154, lon: 11.576124 })).toBeLessThanOrEqual(710);
    // the clear value is untouched
    expect(m.value).toEqual(JSON.parse(PAYLOAD));
  });

  it('gives the same pseudonym for the same value in a period, another in the next period or under another key', () => {
    const k = pkey(7);
    const a = schema.view(message(schema, { pseudonymKey: k }), analytics).user_id;
    const b = schema.view(message(schema, { pseudonymKey: k }), analytics).user_id;
    expect(a).toBe(b);
    const other = schema.view(
      message(schema, { pseudonymKey: k, payload: PAYLOAD.replace('u-17', 'u-18') }),
      analytics,
    ).user_id;
    expect(other).not.toBe(a);
    // each period has its own key
    const nextPeriod = schema.view(message(schema, { pseudonymKey: pkey(8) }), analytics).user_id;
    expect(nextPeriod).toMatch(/^ps1\.8\./);
    expect(String(nextPeriod).slice(6)).not.toBe(String(a).slice(6));
    const otherKey = schema.view(message(schema, { pseudonymKey: pkey(7) }), analytics).user_id;
    expect(otherKey).not.toBe(a);
  });

  it('gives essential.service.operations the clear values', () => {
    const m = message(schema);
    expect(schema.view(m, operations)).toEqual(JSON.parse(PAYLOAD));
    // a purpose below an allowed use is allowed
    expect(schema.view(m, { purpose: 'essential.service.operations.support', consented: false })).toEqual(
      JSON.parse(PAYLOAD),
    );
  });

  it('gives a device (no purpose) the transforms', () => {
    const view = schema.view(message(schema), device);
    expect(view.user_id).toMatch(/^ps1\./);
    expect(view.lat).not.toBe(48.137154);
    expect(view.temp).toBe(21.5);
  });

  it('maps two points 100 m apart in one cell to the same output', () => {
    // the centre of the example's cell, and points 50 m north and south of it
    const pseudonymKey = pkey(7);
    const m0 = schema.view(message(schema, { pseudonymKey }), analytics);
    const centre = { lat: m0.lat as number, lon: m0.lon as number };
    const dLat = 50 / 111_320;
    const at = (lat: number, lon: number) =>
      schema.view(
        message(schema, { pseudonymKey, payload: JSON.stringify({ user_id: 'u-17', lat, lon, temp: 21.5 }) }),
        analytics,
      );
    const north = at(centre.lat + dLat, centre.lon + 0.0003);
    const south = at(centre.lat - dLat, centre.lon - 0.0003);
    expect(
      metres({ lat: centre.lat + dLat, lon: centre.lon }, { lat: centre.lat - dLat, lon: centre.lon }),
    ).toBeCloseTo(100, 0);
    expect(north).toEqual(south);
    expect(north.lat).toBe(centre.lat);
    expect(north.lon).toBe(centre.lon);
  });

  it('keeps every point within half a cell diagonal, anywhere on earth', () => {
    for (let i = 0; i < 2000; i++) {
      const lat = Math.random() * 170 - 85;
      const lon = Math.random() * 360 - 180;
      const glat = latitudeCell(lat, 1000);
      const glon = longitudeCell(lon, 1000, latitudeCell(lat, 1000));
      expect(metres({ lat, lon }, { lat: glat, lon: glon })).toBeLessThanOrEqual(710);
    }
  });

  it('keeps the transformed form in the stores', () => {
    const kept = schema.kept(message(schema));
    expect(kept?.user_id).toMatch(/^ps1\.7\./);
    expect(kept?.lat).toBe(latitudeCell(48.137154, 1000));
    expect(kept?.temp).toBe(21.5);
  });
});

describe('consent', () => {
  const schema = compile((d) => {
    d.fields.temp = {
      category: 'system.operations',
      lawfulBasis: 'consent',
      uses: ['analytics'],
      transform: 'drop',
    };
  });

  it('gives a consent-based field to an allowed purpose only with the subject consent', () => {
    const m = message(schema);
    expect(schema.view(m, { purpose: 'analytics.reporting', consented: true }).temp).toBe(21.5);
    expect(schema.view(m, { purpose: 'analytics.reporting', consented: false })).not.toHaveProperty('temp');
    // consent does not widen the uses
    expect(schema.view(m, { purpose: 'marketing.advertising', consented: true })).not.toHaveProperty('temp');
  });

  it('gives different view keys to consumers whose views differ, one key where they agree', () => {
    const k = (purpose: string | null, consented: boolean) => schema.viewKey({ purpose, consented });
    expect(k('analytics.reporting', true)).not.toBe(k('analytics.reporting', false));
    expect(k('analytics.reporting', true)).toBe(k('analytics.reporting.system', true));
    expect(k('analytics.reporting', false)).toBe(k(null, false));
    expect(k('essential.service.operations', false)).not.toBe(k(null, false));
  });
});

describe('transforms', () => {
  it('encrypts under the message key, or leaves the value out without one', () => {
    const schema = compile((d) => {
      d.fields.user_id = { ...d.fields.user_id, transform: 'encrypt' };
    });
    expect(schema.encrypts).toBe(true);
    expect(schema.pseudonymises).toBe(false);
    const key = dkey();
    const view = schema.view(message(schema, { key }), analytics);
    expect(view.user_id).toMatch(new RegExp(`^bwenc1\\.${key.id}\\.`));
    const keyOf = (id: string) => (id === key.id ? key : undefined);
    const token = String(view.user_id);
    expect(decryptValue(token, keyOf, { schema: 'room-sensor', path: 'user_id' })).toEqual({
      ok: true,
      value: 'u-17',
    });
    // bound to its schema and field (AAD): as another field, or the same field of another schema, it fails
    expect(decryptValue(token, keyOf, { schema: 'room-sensor', path: 'temp' }).ok).toBe(false);
    expect(decryptValue(token, keyOf, { schema: 'other', path: 'user_id' }).ok).toBe(false);
    expect(schema.view(message(schema, { key: null }), analytics)).not.toHaveProperty('user_id');
  });

  it('transforms a value once per message, for every view and the kept form', () => {
    const schema = compile((d) => {
      d.fields.user_id = { ...d.fields.user_id, transform: 'encrypt' };
    });
    const key = dkey();
    const m = message(schema, { key });
    const token = schema.view(m, analytics).user_id;
    expect(schema.view(m, device).user_id).toBe(token);
    expect(schema.kept(m)?.user_id).toBe(token);
    // another message (even with the same value) is encrypted anew
    expect(schema.view(message(schema, { key }), analytics).user_id).not.toBe(token);
    // another key for the same value object: computed again
    expect(schema.view({ ...m, key: dkey() }, analytics).user_id).not.toBe(token);
  });

  it('leaves a pseudonymised value out without a pseudonymisation key', () => {
    const schema = compile();
    expect(schema.view(message(schema, { pseudonymKey: null }), analytics)).not.toHaveProperty('user_id');
  });

  it('drops a personal field by default, for every consumer when uses are omitted', () => {
    const schema = compile((d) => {
      d.fields.user_id = { category: 'user.unique_id', lawfulBasis: 'contract', retention: '1d' };
    });
    // uses omitted: every consumer with a purpose gets the clear value; a device (no purpose) does not
    expect(schema.view(message(schema), analytics).user_id).toBe('u-17');
    expect(schema.view(message(schema), { purpose: 'marketing', consented: false }).user_id).toBe('u-17');
    expect(schema.view(message(schema), device)).not.toHaveProperty('user_id');
  });

  it('generalises timestamps to buckets and numbers to steps', () => {
    const doc = {
      name: 'wearable',
      topic: 'wearables/+/data',
      schema: {
        type: 'object',
        additionalProperties: false,
        properties: {
          at: { type: 'string', format: 'date-time' },
          atMs: { type: 'integer' },
          atS: { type: 'integer' },
          pulse: { type: 'number' },
          dose: { type: 'number' },
        },
      },
      fields: {
        at: {
          category: 'system.operations',
          uses: ['essential'],
          transform: { generalise: { bucket: '1h' } },
        },
        atMs: {
          category: 'system.operations',
          uses: ['essential'],
          transform: { generalise: { bucket: '15m' } },
        },
        atS: {
          category: 'system.operations',
          uses: ['essential'],
          transform: { generalise: { bucket: '1d', unit: 's' } },
        },
        pulse: {
          category: 'user.health_and_medical',
          specialCondition: 'explicit_consent',
          lawfulBasis: 'consent',
          retention: '7d',
          uses: ['essential'],
          transform: { generalise: { step: 10 } },
        },
        dose: {
          category: 'system.operations',
          uses: ['essential'],
          transform: { generalise: { step: 0.1 } },
        },
      },
    };
    const schema = compileDataSchema(parseDataSchema(doc));
    const value = {
      at: '2026-12-03T21:47:13.123Z',
      atMs: Date.parse('2026-12-03T21:47:13.123Z'),
      atS: Math.floor(Date.parse('2026-12-03T21:47:13.123Z') / 1000),
      pulse: 73.5,
      dose: 0.35,
    };
    const view = schema.view(
      message(schema, { payload: JSON.stringify(value), pseudonymKey: null }),
      analytics,
    );
    expect(view).toEqual({
      at: '2026-12-03T21:00:00.000Z',
      atMs: Date.parse('2026-12-03T21:45:00.000Z'),
      atS: Date.parse('2026-12-03T00:00:00.000Z') / 1000,
      pulse: { gte: 70, lt: 80 },
      dose: { gte: 0.3, lt: 0.4 },
    });
    expect(schema.check(JSON.stringify({ ...value, at: 'yesterday' }))).toEqual({
      ok: false,
      reason: '/at: must match format "date-time"',
    });
  });

  it('leaves a missing optional field missing, and a longitude out when its latitude is missing', () => {
    const schema = compile();
    const noLat = schema.view(
      message(schema, { payload: '{"user_id":"u-17","lon":11.5,"temp":20}' }),
      analytics,
    );
    expect(noLat).not.toHaveProperty('lat');
    expect(noLat).not.toHaveProperty('lon');
    const noLocation = schema.view(message(schema, { payload: '{"user_id":"u-17","temp":20}' }), analytics);
    expect(Object.keys(noLocation)).toEqual(['user_id', 'temp']);
  });

  it('copies only the objects on a nested path, never changing the clear value', () => {
    const schema = compileDataSchema(
      parseDataSchema({
        name: 'tracker',
        topic: 'trackers/+',
        schema: {
          type: 'object',
          additionalProperties: false,
          properties: {
            position: {
              type: 'object',
              additionalProperties: false,
              properties: { lat: { type: 'number' }, lon: { type: 'number' }, accuracy: { type: 'number' } },
            },
            battery: { type: 'object', properties: { level: { type: 'number' } } },
          },
        },
        fields: {
          'position.lat': {
            category: 'user.location.precise',
            lawfulBasis: 'contract',
            retention: '1d',
            transform: { generalise: { grid: 500, axis: 'latitude' } },
          },
          'position.lon': {
            category: 'user.location.precise',
            lawfulBasis: 'contract',
            retention: '1d',
            transform: { generalise: { grid: 500, axis: 'longitude', latitudeField: 'position.lat' } },
          },
          'position.accuracy': { category: 'system.operations' },
          battery: { category: 'system.operations' },
        },
      }),
    );
    const payload = { position: { lat: 52.52, lon: 13.405, accuracy: 8 }, battery: { level: 0.9 } };
    const m = message(schema, { payload: JSON.stringify(payload), pseudonymKey: null });
    const view = schema.view(m, device);
    expect(view).toEqual({
      position: {
        lat: latitudeCell(52.52, 500),
        lon: longitudeCell(13.405, 500, latitudeCell(52.52, 500)),
        accuracy: 8,
      },
      battery: { level: 0.9 },
    });
    expect(view.battery).toBe(m.value.battery);
    expect(view.position).not.toBe(m.value.position);
    expect(m.value).toEqual(payload);
    // the stores keep the generalised location (default store: transformed for personal fields)
    expect(schema.kept(m)).toEqual(view);
  });

  it('passes the payload as is when nothing is transformed or kept differently', () => {
    const schema = compileDataSchema(
      parseDataSchema({
        name: 'env',
        topic: 'env/#',
        schema: { type: 'object', additionalProperties: false, properties: { temp: { type: 'number' } } },
        fields: { temp: { category: 'system.operations' } },
      }),
    );
    expect(schema.transforms).toBe(false);
    const m = message(schema, { payload: '{"temp":3}' });
    expect(schema.view(m, device)).toBe(m.value);
    expect(schema.kept(m)).toBe(m.value);
    expect(schema.viewKey(device)).toBe(schema.viewKey(analytics));
  });

  it('returns the clear value itself to a consumer that gets every field in clear', () => {
    const schema = compile();
    const m = message(schema);
    expect(schema.transforms).toBe(true);
    expect(schema.view(m, operations)).toBe(m.value);
  });
});

describe('kept forms', () => {
  const schema = compile((d) => {
    d.fields.user_id = { ...d.fields.user_id, store: 'none' };
    d.fields.lat = { ...d.fields.lat, store: 'clear' };
    d.fields.lon = { ...d.fields.lon, store: 'clear' };
  });

  it('keeps clear, transformed or nothing, per field', () => {
    const kept = schema.kept(message(schema));
    expect(kept).toEqual({ lat: 48.137154, lon: 11.576124, temp: 21.5 });
  });

  it('keeps nothing when every field is store none', () => {
    const none = compile((d) => {
      for (const f of Object.values(d.fields)) f.store = 'none';
    });
    expect(none.kept(message(none))).toBeNull();
  });

  it('shows a kept form as the consumer would see it: store-clear fields transformed for it', () => {
    const kept = schema.kept(message(schema));
    if (!kept) throw new Error('nothing kept');
    const m = { subject: 'u-17', key: null, pseudonymKey: pkey(7) };
    const forAnalytics = schema.viewOfKept(kept, m, analytics);
    expect(forAnalytics).toEqual({
      lat: latitudeCell(48.137154, 1000),
      lon: longitudeCell(11.576124, 1000, latitudeCell(48.137154, 1000)),
      temp: 21.5,
    });
    expect(schema.viewOfKept(kept, m, operations)).toBe(kept);
  });

  it('passes transformed kept values as they are', () => {
    const transformed = compile();
    const kept = transformed.kept(message(transformed));
    if (!kept) throw new Error('nothing kept');
    const m = { subject: 'u-17', key: null, pseudonymKey: pkey(9) };
    // the pseudonym stays the kept one (period 7), the generalised location stays generalised
    expect(transformed.viewOfKept(kept, m, analytics)).toEqual(kept);
    expect(transformed.viewOfKept(kept, m, operations)).toEqual(kept);
  });
});

describe('payload checks and subjects', () => {
  const schema = compile();

  it('refuses what is not a JSON object of the schema, saying where', () => {
    expect(schema.check('not json')).toEqual({ ok: false, reason: 'not JSON' });
    // Invalid UTF-8 is refused, never validated as text with replacement characters.
    const latin1 = Buffer.concat([
      Buffer.from('{"user_id":"u-1'),
      Buffer.from([0xff]),
      Buffer.from('","temp":1}'),
    ]);
    expect(schema.check(latin1)).toEqual({ ok: false, reason: 'not UTF-8' });
    expect(schema.check('[1,2]')).toEqual({ ok: false, reason: 'not a JSON object' });
    expect(schema.check('null')).toEqual({ ok: false, reason: 'not a JSON object' });
    expect(schema.check('{"user_id":"u-17"}')).toEqual({ ok: false, reason: '/temp: is required' });
    expect(schema.check('{"user_id":"u-17","temp":1,"pin":"1234"}')).toEqual({
      ok: false,
      reason: '/pin: not a field of the schema',
    });
    expect(schema.check(Buffer.from('{"user_id":"u-17","temp":"hot"}'))).toEqual({
      ok: false,
      reason: '/temp: must be number',
    });
    expect(schema.check(Buffer.from(PAYLOAD))).toEqual({ ok: true, value: JSON.parse(PAYLOAD) as unknown });
  });

  it('reads the subject from the subject field', () => {
    expect(schema.subjectOf({ user_id: 'u-17' })).toBe('u-17');
    expect(schema.subjectOf({ temp: 1 })).toBeUndefined();
    expect(schema.subjectOf({ user_id: 'person:u-17' })).toEqual({
      error: 'user_id does not hold a data subject id',
    });
    expect(schema.subjectOf({ user_id: 17 })).toEqual({ error: 'user_id does not hold a data subject id' });
    const noSubject = compile((d) => {
      d.subject = {} as never;
    });
    expect(noSubject.subjectOf({ user_id: 'u-17' })).toBeUndefined();
  });
});

describe('schemaMatcher', () => {
  const named = (name: string, topic: string) =>
    compileDataSchema(
      parseDataSchema({
        name,
        topic,
        schema: { type: 'object', additionalProperties: false, properties: { v: { type: 'number' } } },
        fields: { v: { category: 'system.operations' } },
      }),
    );
  const all = [
    named('any', '#'),
    named('devices', 'devices/#'),
    named('telemetry', 'devices/+/telemetry'),
    named('one', 'devices/d-1/telemetry'),
    named('two-levels', 'devices/+/+'),
    named('sub', 'devices/+/telemetry/#'),
  ];
  const m = schemaMatcher(all);

  it('picks the most specific filter', () => {
    expect(m.size).toBe(6);
    expect(m.match('devices/d-1/telemetry')?.name).toBe('one');
    expect(m.match('devices/d-2/telemetry')?.name).toBe('telemetry');
    expect(m.match('devices/d-2/status')?.name).toBe('two-levels');
    // a literal level decides before the wildcards after it
    const pair = [named('by-type', 'devices/+/telemetry'), named('by-device', 'devices/d-1/+')];
    expect(schemaMatcher(pair).match('devices/d-1/telemetry')?.name).toBe('by-device');
    expect(schemaMatcher(pair.reverse()).match('devices/d-1/telemetry')?.name).toBe('by-device');
    expect(m.match('devices/d-2/telemetry/extra')?.name).toBe('sub');
    expect(m.match('devices/d-2/telemetry/extra/more')?.name).toBe('sub');
    expect(m.match('devices/d-2')?.name).toBe('devices');
    expect(m.match('devices')?.name).toBe('devices');
    expect(m.match('apps/x')?.name).toBe('any');
  });

  it('does not match $ topics with a leading wildcard [MQTT-4.7.2-1]', () => {
    expect(m.match('$SYS/broker')).toBeUndefined();
  });

  it('matches nothing without schemas', () => {
    const empty = schemaMatcher([]);
    expect(empty.size).toBe(0);
    expect(empty.match('devices/d-1/telemetry')).toBeUndefined();
    expect(schemaMatcher(all.slice(2, 3)).match('devices/d-1/status')).toBeUndefined();
  });
});
