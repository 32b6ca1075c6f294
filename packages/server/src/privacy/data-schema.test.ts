import { describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { roomSensor } from '../test-support/data-schemas.ts';
import {
  compileJsonSchema,
  fieldPlans,
  parseDataSchema,
  schemaChanges,
  topicFilterProblem,
} from './data-schema.ts';

type Doc = ReturnType<typeof roomSensor>;

/** The validation message of a document, failing the test when it is accepted or fails otherwise. */
function refusal(change: (doc: Doc) => void): string {
  const doc = roomSensor();
  change(doc);
  try {
    parseDataSchema(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(BulwarkError);
    expect((err as BulwarkError).code).toBe('validation_failed');
    return (err as BulwarkError).message;
  }
  throw new Error('the document was accepted');
}

describe('parseDataSchema', () => {
  it('accepts the example and applies the document defaults', () => {
    const schema = parseDataSchema(roomSensor());
    expect(schema.subject).toEqual({ field: 'user_id', kind: 'customer' });
    expect(Object.keys(schema.fields)).toEqual(['user_id', 'lat', 'lon', 'temp']);
  });

  it('names the path of a structural problem', () => {
    expect(
      refusal((d) => {
        d.fields.lat = { ...d.fields.lat, category: 'user.nowhere' };
      }),
    ).toMatch(/^fields\.lat\.category: /);
    expect(
      refusal((d) => {
        d.name = 'Room Sensor';
      }),
    ).toMatch(/^name: /);
    expect(
      refusal((d) => {
        d.fields.temp = { ...d.fields.temp, colour: 'blue' };
      }),
    ).toMatch(/fields\.temp/);
  });

  it('refuses a topic that is not a valid MQTT filter', () => {
    expect(refusal((d) => (d.topic = 'devices/a+/telemetry'))).toMatch(/^topic: "\+" must be a whole level/);
    expect(refusal((d) => (d.topic = 'devices/#/telemetry'))).toMatch(/^topic: "#" must be the last level/);
    expect(refusal((d) => (d.topic = 'devices//telemetry'))).toMatch(/^topic: has an empty level/);
    expect(topicFilterProblem('devices/+/telemetry/#')).toBeUndefined();
    expect(topicFilterProblem('#')).toBeUndefined();
    expect(topicFilterProblem('a/b#')).toMatch(/#/);
  });

  it('refuses a JSON Schema that does not compile or is not a closed object', () => {
    expect(refusal((d) => (d.schema.properties.temp = { type: 'numbr' } as never))).toMatch(
      /^schema: not a valid JSON Schema/,
    );
    // ajv's strict mode: a misspelt keyword is an error, not a rule silently unchecked.
    expect(refusal((d) => (d.schema.properties.temp = { type: 'number', minimun: 3 } as never))).toMatch(
      /^schema: not a valid JSON Schema.*minimun/,
    );
    expect(refusal((d) => (d.schema.type = 'array'))).toMatch(/^schema: the payload must be an object/);
    expect(refusal((d) => delete (d.schema as Partial<Doc['schema']>).properties)).toMatch(
      /needs properties/,
    );
    expect(
      refusal((d) => ((d.schema as { additionalProperties: unknown }).additionalProperties = true)),
    ).toMatch(/^schema: additionalProperties must be false/);
  });

  it('compiles documents with the same $id independently, also after a failed one', () => {
    const withId = (temp: Record<string, unknown>) => {
      const d = roomSensor();
      (d.schema as Record<string, unknown>).$id = 'https://example.com/room';
      d.schema.properties.temp = temp as never;
      return d;
    };
    expect(() => parseDataSchema(withId({ type: 'number' }))).not.toThrow();
    expect(() => parseDataSchema(withId({ type: 'numbr' }))).toThrow(/^schema: not a valid JSON Schema/);
    expect(() => parseDataSchema(withId({ type: 'number', maximum: 60 }))).not.toThrow();
  });

  it('accepts a draft-07 JSON Schema', () => {
    const doc = roomSensor();
    (doc.schema as Record<string, unknown>).$schema = 'http://json-schema.org/draft-07/schema#';
    expect(() => parseDataSchema(doc)).not.toThrow();
  });

  it('needs every property classified, and every classified path under a property', () => {
    expect(refusal((d) => delete d.fields.temp)).toMatch(/^fields\.temp: the property is not classified/);
    expect(
      refusal((d) => {
        d.fields.humidity = { category: 'system.operations' };
      }),
    ).toMatch(/^fields\.humidity: "humidity" is not a property/);
  });

  it('classifies nested objects by dotted paths, only when the object is closed', () => {
    const nested = () => {
      const d = roomSensor();
      (d.schema.properties as Record<string, unknown>).place = {
        type: 'object',
        additionalProperties: false,
        properties: { room: { type: 'string' }, floor: { type: 'integer' } },
      };
      d.fields['place.room'] = { category: 'system.operations' };
      d.fields['place.floor'] = { category: 'system.operations' };
      return d;
    };
    expect(() => parseDataSchema(nested())).not.toThrow();
    const open = nested();
    delete (open.schema.properties as Record<string, { additionalProperties?: boolean }>).place
      ?.additionalProperties;
    expect(() => parseDataSchema(open)).toThrow(/^fields\.place: classified in parts/);
    const partly = nested();
    delete partly.fields['place.floor'];
    expect(() => parseDataSchema(partly)).toThrow(/^fields\.place\.floor: the property is not classified/);
    const unknown = nested();
    unknown.fields['place.wing'] = { category: 'system.operations' };
    expect(() => parseDataSchema(unknown)).toThrow(/^fields\.place\.wing: not a property of place/);
    const both = nested();
    both.fields.place = { category: 'system.operations' };
    expect(() => parseDataSchema(both)).toThrow(/^fields\.place\.room: inside fields\.place/);
  });

  it('needs an object classified in parts to be type: object, so no array or string passes unclassified', () => {
    const located = (loc: Record<string, unknown>) => {
      const d = roomSensor();
      (d.schema.properties as Record<string, unknown>).loc = loc;
      d.fields['loc.lat'] = { ...d.fields.lat, transform: 'drop' };
      d.fields['loc.lon'] = { ...d.fields.lon, transform: 'drop' };
      return d;
    };
    const coordinates = { lat: { type: 'number' }, lon: { type: 'number' } };
    const closed = { type: 'object', properties: coordinates, additionalProperties: false };
    const valid = parseDataSchema(located(closed));
    const validate = compileJsonSchema(valid.schema);
    expect(validate({ user_id: 'u-17', temp: 21, loc: [{ lat: 48.137154 }] })).toBe(false);
    expect(validate({ user_id: 'u-17', temp: 21, loc: '48.13,11.57' })).toBe(false);
    expect(validate({ user_id: 'u-17', temp: 21, loc: { lat: 48.137154 } })).toBe(true);
    const { type: _type, ...untyped } = closed;
    for (const loc of [untyped, { ...closed, type: ['object', 'array'] }, { ...closed, type: 'array' }])
      expect(() => parseDataSchema(located(loc))).toThrow(
        /^fields\.loc: classified in parts, so its schema must be type: object/,
      );
    expect(() => parseDataSchema(located({ ...closed, allOf: [{ required: ['lat'] }] }))).toThrow(
      'schema.properties.loc: allOf is not allowed: every property must be classified in fields',
    );
  });

  it('refuses keywords that admit or state properties outside properties, at the root', () => {
    const root = (extra: Record<string, unknown>) => (d: Doc) => Object.assign(d.schema, extra);
    expect(refusal(root({ patternProperties: { '^x_': {} } }))).toBe(
      'schema: patternProperties is not allowed: every property must be classified in fields',
    );
    for (const keyword of [
      'unevaluatedProperties',
      'dependentSchemas',
      '$ref',
      'anyOf',
      'oneOf',
      'if',
      'not',
    ]) {
      const value = keyword === '$ref' ? '#/$defs/x' : keyword === 'anyOf' || keyword === 'oneOf' ? [{}] : {};
      expect(refusal(root({ [keyword]: value }))).toBe(
        `schema: ${keyword} is not allowed: every property must be classified in fields`,
      );
    }
    const refs = roomSensor();
    Object.assign(refs.schema, {
      $defs: { celsius: { type: 'number', minimum: -50 } },
      propertyNames: { maxLength: 20 },
    });
    refs.schema.properties.temp = { $ref: '#/$defs/celsius' } as never;
    expect(() => parseDataSchema(refs)).not.toThrow();
  });

  it(
    'runs patterns in linear time (RE2): a catastrophic pattern cannot freeze the broker',
    { timeout: 5000 },
    () => {
      const d = roomSensor();
      d.schema.properties.user_id = { type: 'string', pattern: '^(a+)+$' } as never;
      const validate = compileJsonSchema(parseDataSchema(d).schema);
      // 10,000 a's and a '!': exponential backtracking for a JavaScript RegExp, linear for RE2.
      expect(validate({ user_id: `${'a'.repeat(10_000)}!`, temp: 21 })).toBe(false);
      expect(validate({ user_id: 'a'.repeat(10_000), temp: 21 })).toBe(true);
    },
  );

  it('refuses a pattern RE2 cannot run (backreferences, lookarounds) with a clear message', () => {
    expect(
      refusal((d) => (d.schema.properties.user_id = { type: 'string', pattern: '^(a)\\1$' } as never)),
    ).toBe(
      'schema: pattern "^(a)\\\\1$" is not supported (invalid escape sequence: \\1): patterns run in linear time (RE2), without backreferences or lookarounds',
    );
    expect(
      refusal((d) => (d.schema.properties.user_id = { type: 'string', pattern: '^u-(?=\\d)' } as never)),
    ).toMatch(/^schema: pattern "\^u-\(\?=\\\\d\)" is not supported \(invalid perl operator/);
  });

  it('refuses reserved property names', () => {
    const d = roomSensor();
    Object.defineProperty(d.schema.properties, '__proto__', { value: { type: 'string' }, enumerable: true });
    expect(() => parseDataSchema(d)).toThrow(/__proto__/);
  });

  it('needs a lawful basis for a personal field (GDPR Art. 6)', () => {
    expect(refusal((d) => delete d.fields.lat?.lawfulBasis)).toBe(
      'fields.lat: a personal field needs a lawfulBasis (GDPR Art. 6)',
    );
    // personal by choice, not by category
    expect(
      refusal((d) => {
        d.fields.temp = { category: 'system.operations', personal: true, store: 'none' };
      }),
    ).toBe('fields.temp: a personal field needs a lawfulBasis (GDPR Art. 6)');
  });

  it('needs a retention for a kept personal field, none when it is not kept', () => {
    expect(refusal((d) => delete d.fields.user_id?.retention)).toMatch(
      /^fields\.user_id: .*needs a retention/,
    );
    const d = roomSensor();
    delete d.fields.user_id?.retention;
    d.fields.user_id = { ...d.fields.user_id, store: 'none' };
    expect(() => parseDataSchema(d)).not.toThrow();
  });

  it('needs an Art. 9(2) condition for special-category data, explicit consent with consent as basis', () => {
    const health = (extra: Record<string, unknown>) => (d: Doc) => {
      d.fields.temp = {
        category: 'user.health_and_medical',
        lawfulBasis: 'consent',
        retention: '7d',
        ...extra,
      };
    };
    expect(refusal(health({}))).toBe(
      'fields.temp: a special-category field needs a specialCondition (GDPR Art. 9(2))',
    );
    expect(refusal(health({ specialCondition: 'explicit_consent', lawfulBasis: 'contract' }))).toMatch(
      /^fields\.temp: specialCondition explicit_consent needs lawfulBasis consent/,
    );
    expect(refusal(health({ specialCondition: 'health_care', personal: false }))).toMatch(
      /^fields\.temp: special-category data \(GDPR Art\. 9\) is personal data/,
    );
    const ok = roomSensor();
    health({ specialCondition: 'explicit_consent' })(ok);
    expect(() => parseDataSchema(ok)).not.toThrow();
  });

  it('allows transform none on a personal field only when every consumer may have it', () => {
    expect(
      refusal((d) => {
        d.fields.user_id = { ...d.fields.user_id, transform: 'none' };
      }),
    ).toMatch(/^fields\.user_id: transform none on a personal field/);
    const d = roomSensor();
    d.fields.user_id = { ...d.fields.user_id, transform: 'none' };
    delete d.fields.user_id.uses;
    expect(() => parseDataSchema(d)).not.toThrow();
  });

  it('checks generalisations against the field type', () => {
    expect(
      refusal((d) => {
        d.fields.user_id = {
          ...d.fields.user_id,
          transform: { generalise: { grid: 1000, axis: 'latitude' } },
        };
      }),
    ).toBe('fields.user_id: a grid generalisation needs a number field');
    expect(
      refusal((d) => {
        d.fields.user_id = { ...d.fields.user_id, transform: { generalise: { step: 5 } } };
      }),
    ).toBe('fields.user_id: a step generalisation needs a number field');
    expect(
      refusal((d) => {
        (d.schema.properties as Record<string, unknown>).temp = { type: 'boolean' };
        d.fields.temp = { ...d.fields.temp, transform: { generalise: { bucket: '1h' } } };
      }),
    ).toMatch(/^fields\.temp: a bucket generalisation needs a timestamp/);
  });

  it('needs a longitude grid to read a classified latitude grid', () => {
    expect(
      refusal((d) => {
        d.fields.lon = {
          ...d.fields.lon,
          transform: { generalise: { grid: 1000, axis: 'longitude', latitudeField: 'temp' } },
        };
      }),
    ).toBe('fields.lon: latitudeField temp must be a classified field with a latitude grid');
    expect(
      refusal((d) => {
        d.fields.lon = {
          ...d.fields.lon,
          transform: { generalise: { grid: 1000, axis: 'longitude', latitudeField: 'alt' } },
        };
      }),
    ).toMatch(/^fields\.lon: latitudeField alt/);
  });

  it('needs the subject field to be a classified string field', () => {
    expect(refusal((d) => (d.subject.field = 'owner'))).toMatch(
      /^subject\.field: owner must be a classified field/,
    );
    expect(refusal((d) => (d.subject.field = 'temp'))).toBe(
      'subject.field: temp must be a string in the schema',
    );
  });
});

describe('fieldPlans', () => {
  it('applies the defaults', () => {
    const d = roomSensor();
    d.fields.lat = { category: 'user.location.precise', lawfulBasis: 'contract', retention: '1h' };
    d.fields.lon = { category: 'user.location.precise', lawfulBasis: 'contract', retention: '1h' };
    const plans = fieldPlans(parseDataSchema(d));
    expect(plans.map((p) => p.path)).toEqual(['user_id', 'lat', 'lon', 'temp']);
    expect(plans[1]).toEqual({
      path: 'lat',
      category: 'user.location.precise',
      personal: true,
      special: false,
      specialCondition: null,
      uses: null,
      lawfulBasis: 'contract',
      retentionMs: 3_600_000,
      transform: 'drop',
      store: 'transformed',
      quasiIdentifier: true,
      description: null,
    });
    expect(plans[3]).toMatchObject({
      personal: false,
      transform: 'none',
      store: 'clear',
      quasiIdentifier: false,
      retentionMs: null,
    });
    expect(plans[0]).toMatchObject({ uses: ['essential.service.operations'], transform: 'pseudonymise' });
  });

  it('makes health data special by its category', () => {
    const d = roomSensor();
    d.fields.temp = {
      category: 'user.health_and_medical',
      specialCondition: 'health_care',
      lawfulBasis: 'vital_interests',
      retention: '7d',
    };
    expect(fieldPlans(parseDataSchema(d))[3]).toMatchObject({ special: true, personal: true });
  });
});

describe('schemaChanges', () => {
  it('describes a new schema', () => {
    expect(schemaChanges(undefined, parseDataSchema(roomSensor()))).toEqual([
      'created: topic devices/+/telemetry, 4 fields',
    ]);
  });

  it('lists what changed, field by field, with defaults applied', () => {
    const before = parseDataSchema(roomSensor());
    const d = roomSensor();
    d.topic = 'devices/+/env';
    d.fields.lat = { ...d.fields.lat, transform: 'drop', retention: '7d' };
    delete d.fields.lon;
    delete (d.schema.properties as Partial<Doc['schema']['properties']>).lon;
    d.fields.user_id = { ...d.fields.user_id, uses: ['essential.service'] };
    const after = parseDataSchema(d);
    expect(schemaChanges(before, after)).toEqual([
      'topic devices/+/telemetry → devices/+/env',
      'JSON Schema changed',
      'field user_id: uses essential.service.operations → essential.service',
      'field lat: retention 30d → 7d',
      'field lat: transform generalise grid 1000 m latitude → drop',
      'field lon removed',
    ]);
    expect(schemaChanges(after, after)).toEqual([]);
  });

  it('names an explicit setting equal to its default as no change', () => {
    const before = parseDataSchema(roomSensor());
    const d = roomSensor();
    d.fields.temp = { ...d.fields.temp, store: 'clear', transform: 'none' };
    expect(schemaChanges(before, parseDataSchema(d))).toEqual([]);
  });
});
