import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CONTINUE,
  type BrokerSession,
  type DeliverPacket,
  type PublishPacket,
  type PublishVerdict,
} from '../broker/index.ts';
import type { SecurityEvent } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, type TestStore } from '../test-support/dialects.ts';
import { parseDataSchema } from './data-schema.ts';
import { createPrivacyKeys, decryptValue, type PrivacyKeys } from './keys.ts';
import type { PrivacyLive } from './privacy.live.ts';
import { createPrivacyStages, type RetainedClassification } from './privacy.stage.ts';
import { compileDataSchema, schemaMatcher, type CompiledSchema } from './transforms.ts';
import { roomSensor as roomSensorFixture } from '../test-support/data-schemas.ts';

const HOUR = 3_600_000;
const NOW = 1_800_000_000_000;

/** The acceptance schema: user_id pseudonymised, lat/lon on a 1 km grid, temp clear. */
const roomSensor = roomSensorFixture();

/** No transforms and no subject: classified, nothing copied. */
const plainState = {
  name: 'plain-state',
  topic: 'devices/+/state',
  schema: { type: 'object', additionalProperties: false, properties: { on: { type: 'boolean' } } },
  fields: { on: { category: 'system.operations' } },
};

/** A personal field encrypted under the subject's data key for every consumer but support. */
const healthSchema = {
  name: 'wearable',
  topic: 'devices/+/health',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { user_id: { type: 'string' }, steps: { type: 'integer' } },
  },
  fields: {
    user_id: { category: 'user.unique_id', lawfulBasis: 'contract', retention: '30d', store: 'clear' },
    steps: {
      category: 'user.behavior',
      uses: ['essential.service.operations'],
      lawfulBasis: 'contract',
      retention: '30d',
      transform: 'encrypt',
    },
  },
};

/** No transforms, a subject field: only withholding needs the subject. */
const presence = {
  name: 'presence',
  topic: 'devices/+/presence',
  subject: { field: 'user_id' },
  schema: {
    type: 'object',
    additionalProperties: false,
    properties: { user_id: { type: 'string' }, here: { type: 'boolean' } },
  },
  fields: {
    user_id: {
      category: 'user.unique_id',
      transform: 'none',
      store: 'clear',
      lawfulBasis: 'contract',
      retention: '30d',
    },
    here: { category: 'system.operations' },
  },
};

const READING = { user_id: 'u-17', lat: 48.137154, lon: 11.576124, temp: 21.5 };

function fakeLive(schemas: CompiledSchema[]) {
  const matcher = schemaMatcher(schemas);
  const state = {
    links: new Map<string, string>(),
    consents: new Map<string, 'given' | 'withdrawn'>(),
    restricted: new Set<string>(),
  };
  const live: PrivacyLive = {
    match: (topic) => matcher.match(topic),
    get empty() {
      return matcher.size === 0;
    },
    subjectOfDevice: (deviceId) => state.links.get(deviceId) ?? null,
    consent: (subject, purpose) => state.consents.get(`${subject}|${purpose}`),
    restricted: (subject) => state.restricted.has(subject),
    start: () => Promise.resolve(),
    stop: () => undefined,
  };
  return { live, state };
}

const device = (id: string) =>
  ({
    principal: { kind: 'device', id },
    key: id,
    subject: `device:${id}`,
    actor: `device:${id}`,
  }) as unknown as BrokerSession;
const app = (name: string, purpose: string | null) =>
  ({
    principal: { kind: 'app', id: name, instance: null, clientId: name, tokenId: null },
    key: `app:${name}`,
    subject: `app:${name}`,
    actor: `app:${name}`,
    appFacts: { zone: null, purpose },
  }) as unknown as BrokerSession;
const analytics = app('dashboard', 'analytics.reporting');
const operations = app('operator', 'essential.service.operations');

const publishOf = (topic: string, payload: unknown, retain = false): PublishPacket => ({
  topic,
  payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  qos: 1,
  retain,
});

async function settled(verdict: PublishVerdict): Promise<PublishVerdict> {
  return verdict.kind === 'pending' ? settled(await verdict.verdict) : verdict;
}

const json = (packet: DeliverPacket | null): unknown =>
  packet === null ? null : (JSON.parse(packet.payload.toString()) as unknown);

describe('privacy broker stages', () => {
  let t: TestStore;
  let keys: PrivacyKeys;
  let events: SecurityEvent[];
  let fake: ReturnType<typeof fakeLive>;
  let retained: Map<Buffer, RetainedClassification> | undefined;
  const stages = () =>
    createPrivacyStages({
      live: fake.live,
      keys,
      emit: (e) => events.push(e),
      now: () => NOW,
      logger: { warn: () => undefined, error: () => undefined },
      ...(retained ? { retained: { classificationOf: (p: Buffer) => retained?.get(p) } } : {}),
    });
  /** Publishes through the stage as a device and returns the packet (as it goes on) and the verdict. */
  async function publish(
    s: ReturnType<typeof stages>,
    packet: PublishPacket,
    from = device('sensor-1'),
  ): Promise<PublishVerdict> {
    return settled(s.publish.run(from, packet));
  }

  beforeEach(async () => {
    t = await createTestStore('sqlite');
    keys = createPrivacyKeys({
      db: t.store.db,
      box: createSecretBox(randomBytes(32)),
      now: () => NOW,
      periodMs: 24 * HOUR,
      keptPeriods: 2,
    });
    events = [];
    retained = undefined;
    fake = fakeLive(
      [roomSensor, plainState, healthSchema, presence].map((doc) => compileDataSchema(parseDataSchema(doc))),
    );
  });
  afterEach(async () => t.cleanup());

  it('lets topics without a schema, and everything when no schema exists, through untouched', () => {
    const s = stages();
    const other = publishOf('devices/sensor-1/other', 'x');
    expect(s.publish.run(device('sensor-1'), other)).toBe(CONTINUE);
    expect(other).toEqual(publishOf('devices/sensor-1/other', 'x'));
    expect(s.deliver.run(analytics, other)).toBe(other);
    expect(s.publish.run(app('writer', null), other)).toBe(CONTINUE);
    expect(other.classified).toBeUndefined();
    fake = fakeLive([]);
    const none = stages();
    const p = publishOf('devices/sensor-1/telemetry', 'not json');
    expect(none.publish.run(device('sensor-1'), p)).toBe(CONTINUE);
    expect(none.deliver.run(analytics, p)).toBe(p);
  });

  it('gives each consumer the view its purpose allows, and the stores the kept form', async () => {
    const s = stages();
    const packet = publishOf('devices/sensor-1/telemetry', READING);
    // The pseudonymisation key is loaded (created) first: the verdict is pending, then continues.
    expect(s.publish.run(device('sensor-1'), packet).kind).toBe('pending');
    expect(await publish(s, packet)).toBe(CONTINUE);
    expect(packet.classified).toEqual({ schema: 'room-sensor', subject: 'u-17' });
    const kept = JSON.parse(String(packet.kept)) as Record<string, unknown>;
    expect(kept.user_id).toMatch(/^ps1\.\d+\.[A-Za-z0-9_-]{22}$/);
    expect(kept.temp).toBe(21.5);
    expect(kept.lat).not.toBe(READING.lat);
    expect(Math.abs(Number(kept.lat) - READING.lat)).toBeLessThan(0.01);
    // The payload itself is unchanged (ingress and the publisher's own view).
    expect(JSON.parse(packet.payload.toString())).toEqual(READING);

    const forAnalytics = s.deliver.run(analytics, packet);
    expect(json(forAnalytics)).toEqual(kept);
    expect(forAnalytics).not.toBe(packet);
    expect(forAnalytics?.topic).toBe(packet.topic);
    // Each distinct view is serialized once per message.
    expect(s.deliver.run(app('other-dashboard', 'analytics.reporting'), packet)?.payload).toBe(
      forAnalytics?.payload,
    );
    expect(json(s.deliver.run(operations, packet))).toEqual(READING);
    // A device subscriber has no purpose: it gets the transforms.
    expect(json(s.deliver.run(device('display-1'), packet))).toEqual(kept);
    expect(s.counters).toMatchObject({ refused: 0, withheld: 0, transformed: 4 });
  });

  it("checks, classifies and transforms an app's publish on a schema topic like a device's", async () => {
    const s = stages();
    const writer = app('writer', 'essential.service.operations');
    // Not matching the schema: refused, the event about the app.
    expect(await publish(s, publishOf('devices/d-2/telemetry', 'not json'), writer)).toMatchObject({
      kind: 'deny',
    });
    expect(events).toMatchObject([
      {
        type: 'privacy.payload_refused',
        actor: 'app:writer',
        subject: 'app:writer',
        data: { topic: 'devices/d-2/telemetry', schema: 'room-sensor' },
      },
    ]);
    expect(s.counters.refused).toBe(1);
    // Matching: classified with its subject, the stores keep the kept form, consumers get their views.
    const packet = publishOf('devices/d-2/telemetry', READING, true);
    expect(await publish(s, packet, writer)).toBe(CONTINUE);
    expect(packet.classified).toEqual({ schema: 'room-sensor', subject: 'u-17' });
    const kept = JSON.parse(String(packet.kept)) as Record<string, unknown>;
    expect(JSON.stringify(kept)).not.toContain('u-17');
    expect(kept.lat).not.toBe(READING.lat);
    expect(json(s.deliver.run(analytics, packet))).toEqual(kept);
    expect(json(s.deliver.run(operations, packet))).toEqual(READING);
    // Withholding applies to an app's message as to a device's.
    fake.state.restricted.add('u-17');
    expect(s.deliver.run(operations, packet)).toBeNull();
  });

  it("encrypts an app's message without a subject under the app's data key (app:<name>)", async () => {
    const s = stages();
    const packet = publishOf('devices/d-2/health', { steps: 4200 });
    expect(await publish(s, packet, app('writer', null))).toBe(CONTINUE);
    expect(packet.classified).toEqual({ schema: 'wearable', subject: null });
    const key = keys.subjectKey('app:writer');
    expect(key).toBeDefined();
    const kept = JSON.parse(String(packet.kept)) as { steps: string };
    const keyOf = (id: string) => (id === key?.id ? key : undefined);
    expect(decryptValue(kept.steps, keyOf, { schema: 'wearable', path: 'steps' })).toEqual({
      ok: true,
      value: 4200,
    });
    expect(keys.subjectKey('device:writer')).toBeUndefined();
  });

  it('withholds by subject on a schema without transforms: platform and retained messages too', () => {
    retained = new Map();
    const s = stages();
    // A platform publish (no publish stage ran): its subject is read from the payload at delivery.
    const platform = {
      topic: 'devices/d-3/presence',
      payload: Buffer.from('{"user_id":"u-21","here":true}'),
    };
    expect(s.deliver.run(analytics, platform)).toBe(platform);
    fake.state.restricted.add('u-21');
    expect(s.deliver.run(analytics, platform)).toBeNull();
    fake.state.consents.set('u-22|analytics.reporting', 'withdrawn');
    const other = { topic: 'devices/d-3/presence', payload: Buffer.from('{"user_id":"u-22"}') };
    expect(s.deliver.run(analytics, other)).toBeNull();
    expect(s.deliver.run(operations, other)).toBe(other);
    // Without a subject (none named, none linked): delivered as is.
    const nobody = { topic: 'devices/d-3/presence', payload: Buffer.from('{"here":false}') };
    expect(s.deliver.run(analytics, nobody)).toBe(nobody);
    // A retained message (after a restart: no publish state) is withheld by the subject the store kept.
    const stored = Buffer.from('{"on":true}');
    retained.set(stored, { schema: 'plain-state', subject: 'u-20', deviceId: 'sensor-3' });
    const asRetained = { topic: 'devices/sensor-3/state', payload: stored };
    expect(s.deliver.run(analytics, asRetained)).toBe(asRetained);
    fake.state.restricted.add('u-20');
    expect(s.deliver.run(analytics, asRetained)).toBeNull();
  });

  it('pseudonymises the same subject to the same token within a period', async () => {
    const s = stages();
    const a = publishOf('devices/sensor-1/telemetry', READING);
    const b = publishOf('devices/sensor-2/telemetry', { ...READING, temp: 19 });
    await publish(s, a);
    await publish(s, b, device('sensor-2'));
    const tokenOf = (p: PublishPacket) => (json(s.deliver.run(analytics, p)) as { user_id: string }).user_id;
    expect(tokenOf(a)).toBe(tokenOf(b));
  });

  it('refuses a payload that breaks the schema, with a rate-limited event', async () => {
    const s = stages();
    const bad = [
      'not json',
      '[1,2]',
      JSON.stringify({ user_id: 'u-17', temp: 'hot' }),
      JSON.stringify({ ...READING, extra: 1 }),
      JSON.stringify({ ...READING, user_id: 'has space' }),
    ];
    for (const payload of bad) {
      const verdict = await publish(s, publishOf('devices/sensor-1/telemetry', payload));
      expect(verdict).toMatchObject({ kind: 'deny' });
    }
    expect(s.counters.refused).toBe(5);
    expect(events).toHaveLength(5);
    expect(events[2]).toMatchObject({
      type: 'privacy.payload_refused',
      actor: 'device:sensor-1',
      subject: 'device:sensor-1',
      data: {
        topic: 'devices/sensor-1/telemetry',
        schema: 'room-sensor',
        reason: expect.stringMatching(/temp/) as unknown,
      },
    });
    // Beyond 5 a minute per device, counted but not recorded.
    await publish(s, publishOf('devices/sensor-1/telemetry', 'again'));
    expect(s.counters.refused).toBe(6);
    expect(events).toHaveLength(5);
    await publish(s, publishOf('devices/sensor-2/telemetry', 'again'), device('sensor-2'));
    expect(events).toHaveLength(6);
  });

  it('withholds a subject restricted, or whose consent for the purpose is withdrawn', async () => {
    const s = stages();
    const packet = publishOf('devices/sensor-1/telemetry', READING);
    await publish(s, packet);
    fake.state.consents.set('u-17|analytics.reporting', 'withdrawn');
    expect(s.deliver.run(analytics, packet)).toBeNull();
    expect(json(s.deliver.run(operations, packet))).toEqual(READING);
    fake.state.restricted.add('u-17');
    expect(s.deliver.run(operations, packet)).toBeNull();
    expect(s.deliver.run(device('display-1'), packet)).toBeNull();
    expect(s.counters.withheld).toBe(3);
  });

  it("takes the subject of a device's linked person when the payload names none", async () => {
    const s = stages();
    fake.state.links.set('sensor-3', 'u-20');
    const packet = publishOf('devices/sensor-3/state', { on: true });
    expect(await publish(s, packet, device('sensor-3'))).toBe(CONTINUE);
    expect(packet.classified).toEqual({ schema: 'plain-state', subject: 'u-20' });
    // No transforms: the stores keep the payload as it is, every consumer gets the same packet.
    expect(packet.kept).toBeUndefined();
    expect(s.deliver.run(analytics, packet)).toBe(packet);
    fake.state.restricted.add('u-20');
    expect(s.deliver.run(analytics, packet)).toBeNull();
  });

  it('classifies a schema without transforms or subject with no copy and no state', () => {
    const s = stages();
    const packet = publishOf('devices/sensor-1/state', { on: false });
    expect(s.publish.run(device('sensor-1'), packet)).toBe(CONTINUE);
    expect(packet.classified).toEqual({ schema: 'plain-state', subject: null });
    expect(packet.kept).toBeUndefined();
    expect(s.deliver.run(analytics, packet)).toBe(packet);
    expect(s.counters.transformed).toBe(0);
  });

  it("encrypts under the subject's data key, loaded before the message goes on", async () => {
    const s = stages();
    const packet = publishOf('devices/sensor-1/health', { user_id: 'u-17', steps: 4200 });
    expect(await publish(s, packet)).toBe(CONTINUE);
    const key = keys.subjectKey('person:u-17');
    expect(key).toBeDefined();
    const kept = JSON.parse(String(packet.kept)) as { user_id: string; steps: string };
    expect(kept.user_id).toBe('u-17');
    expect(kept.steps).toMatch(/^bwenc1\./);
    const keyOf = (id: string) => (id === key?.id ? key : undefined);
    expect(decryptValue(kept.steps, keyOf, { schema: 'wearable', path: 'steps' })).toEqual({
      ok: true,
      value: 4200,
    });
    expect(json(s.deliver.run(operations, packet))).toEqual({ user_id: 'u-17', steps: 4200 });
  });

  it('delivers a retained kept form as kept, with its subject from the retained store', async () => {
    retained = new Map();
    const s = stages();
    const live = publishOf('devices/sensor-1/telemetry', READING, true);
    await publish(s, live);
    // What the retained store holds: a copy of the kept form, classified.
    const stored = Buffer.from(live.kept ?? '');
    retained.set(stored, { schema: 'room-sensor', subject: 'u-17', deviceId: 'sensor-1' });
    const kept = JSON.parse(stored.toString()) as unknown;
    const asRetained = { topic: live.topic, payload: stored, qos: 1, retain: true };
    expect(json(s.deliver.run(analytics, asRetained))).toEqual(kept);
    // The clear values are not in the kept form: an allowed purpose sees what is kept.
    expect(json(s.deliver.run(operations, asRetained))).toEqual(kept);
    fake.state.restricted.add('u-17');
    expect(s.deliver.run(operations, asRetained)).toBeNull();
  });

  it('views an unclassified payload (retained before its schema) as clear, never as a kept form', async () => {
    retained = new Map();
    const s = stages();
    const before = Buffer.from(JSON.stringify(READING));
    retained.set(before, { schema: null, subject: null, deviceId: 'sensor-1' });
    await keys.ensurePseudonymKey(NOW);
    const packet = { topic: 'devices/sensor-1/telemetry', payload: before, qos: 1 };
    const view = json(s.deliver.run(analytics, packet)) as Record<string, unknown>;
    expect(view.user_id).toMatch(/^ps1\./);
    expect(view.lat).not.toBe(READING.lat);
    // One that no longer matches its schema goes to no one.
    const broken = Buffer.from('{"temp":"hot"}');
    expect(s.deliver.run(analytics, { topic: packet.topic, payload: broken, qos: 1 })).toBeNull();
  });
});
