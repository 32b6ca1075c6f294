/**
 * Privacy in the broker's data path (the transform points of broker/stages.ts): a PUBLISH (a device's or an
 * app's) on a
 * topic with a data schema is checked, its subject found and its kept form computed once (publish stage);
 * each subscriber then receives the view its purpose allows, serialized once per distinct view (deliver
 * stage). Topics without a schema, and schemas without transforms or subject, cost a lookup and no copy.
 */
import type { Logger } from 'pino';
import { jsonOfPayload, parseAppClientId } from '@bulwark/protocol';
import {
  CONTINUE,
  type BrokerSession,
  type DeliverPacket,
  type DeliverStage,
  type PublishPacket,
  type PublishStage,
  type PublishVerdict,
} from '../broker/index.ts';
import {
  createEventRateLimit,
  deviceIdOf,
  subjectIdOf,
  subjectOf,
  type SecurityEvent,
} from '../events/index.ts';
import type { DataKey, PrivacyKeys, PseudonymKey } from './keys.ts';
import type { PrivacyLive } from './privacy.live.ts';
import type { ClassifiedMessage, CompiledSchema, Consumer } from './transforms.ts';

/** What the retained store knows of one of its messages (retained delivery has no publish state). */
export interface RetainedClassification {
  /** The data schema its payload was kept for (its kept form), or null when it was retained unclassified. */
  readonly schema: string | null;
  readonly subject: string | null;
  /** The device that published it. */
  readonly deviceId: string;
}

export interface PrivacyStageDeps {
  live: PrivacyLive;
  keys: PrivacyKeys;
  emit: (e: SecurityEvent) => void;
  now: () => number;
  logger: Pick<Logger, 'warn' | 'error'>;
  /**
   * The broker's retained store (`classificationOf`), when there is one: a retained message is delivered with
   * its subject (withholding, consent) and a payload retained before its topic had a schema is viewed as a
   * clear payload, not taken for a kept form.
   */
  retained?: { classificationOf(payload: Buffer): RetainedClassification | undefined } | undefined;
}

export interface PrivacyStageCounters {
  /** Payloads (a device's or an app's) refused for not matching their topic's data schema. */
  refused: number;
  /** Deliveries that received a view (the payload transformed for the consumer's purpose). */
  transformed: number;
  /** Deliveries withheld: the subject restricted (Art. 18) or its consent withdrawn for the purpose. */
  withheld: number;
}

/** One message's classification, shared by its deliveries (keyed by its payload Buffer). */
interface MessageState {
  readonly schema: CompiledSchema;
  readonly subject: string | null;
  /** The clear value of a live message; undefined for a kept form (retained delivery). */
  readonly value: Record<string, unknown> | undefined;
  /** The kept form of a retained message; undefined for a live message. */
  readonly kept: Record<string, unknown> | undefined;
  readonly key: DataKey | null;
  readonly pseudonymKey: PseudonymKey | null;
  /** Each distinct view, serialized once (by the schema's viewKey). */
  readonly views: Map<string, Buffer>;
  /** When it was built: a retained message's state is rebuilt after a while (consents, key periods). */
  readonly at: number;
}

/** A retained message's state older than this is built again (a new pseudonym period, new key). */
const KEPT_STATE_MS = 60_000;

interface Ctx {
  deps: PrivacyStageDeps;
  counters: PrivacyStageCounters;
  states: WeakMap<Buffer, MessageState>;
  refusals: ReturnType<typeof createEventRateLimit>;
}

const asBuffer = (payload: Buffer | string): Buffer =>
  Buffer.isBuffer(payload) ? payload : Buffer.from(payload);

/**
 * Whose data key encrypts a message's fields: its subject's (`person:<id>`), else its publisher's
 * (`device:<id>`, or `app:<name>` for an app's publish).
 */
const keyOwner = (subject: string | null, publisher: string | null): string | null =>
  subject !== null ? subjectOf.person(subject) : publisher;

/** The publisher of a session's PUBLISH: `device:<id>` or `app:<name>` (every instance of the app). */
const publisherOfSession = (session: BrokerSession): string =>
  session.principal.kind === 'device'
    ? subjectOf.device(session.principal.id)
    : subjectOf.app(session.principal.id);

/**
 * The publisher of a retained message from the key it is charged to (see BrokerSession.key): a device id,
 * or `app:<clientId>` (`NAME` or `NAME/<instance>`) for an app instance.
 */
function publisherOfKey(key: string | undefined): string | null {
  if (key === undefined) return null;
  const clientId = subjectIdOf(key, 'app');
  if (clientId === undefined) return subjectOf.device(key);
  const app = parseAppClientId(clientId)?.app;
  return app === undefined ? null : subjectOf.app(app);
}

function refuse(
  ctx: Ctx,
  session: BrokerSession,
  refusal: { topic: string; schema: string; reason: string },
): PublishVerdict {
  ctx.counters.refused++;
  if (ctx.refusals.admit(session.key).record)
    ctx.deps.emit({
      type: 'privacy.payload_refused',
      actor: session.actor,
      subject: session.subject,
      data: refusal,
    });
  // [MQTT-3.3.5-2]: MQTT 3.1.1 has no negative PUBACK; the connection is closed.
  return { kind: 'deny', reason: `payload on ${refusal.topic} refused: ${refusal.reason}` };
}

/** The keys the schema needs for this owner, when they are not in the cache yet: loads them. */
function missingKeys(ctx: Ctx, schema: CompiledSchema, owner: string | null): Promise<unknown> | undefined {
  const { keys, now } = ctx.deps;
  const loads: Promise<unknown>[] = [];
  if (schema.encrypts && owner !== null && keys.subjectKey(owner) === undefined)
    loads.push(keys.loadSubjectKey(owner));
  if (schema.pseudonymises && keys.pseudonymKey(now()) === undefined)
    loads.push(keys.ensurePseudonymKey(now()));
  return loads.length === 0 ? undefined : Promise.all(loads);
}

interface Classified {
  schema: CompiledSchema;
  value: Record<string, unknown>;
  subject: string | null;
  owner: string | null;
}

/** The state of a live message, its kept form on the packet; keys come from the cache (loaded before). */
function finish(ctx: Ctx, packet: PublishPacket, c: Classified): PublishVerdict {
  const { keys, now } = ctx.deps;
  const { schema, value, subject, owner } = c;
  packet.classified = { schema: schema.name, subject };
  if (!schema.transforms) {
    // Nothing to transform: only withholding needs the subject at delivery.
    if (subject !== null) ctx.states.set(asBuffer(packet.payload), stateOf({ schema, subject, value }));
    return CONTINUE;
  }
  const key = schema.encrypts && owner !== null ? (keys.subjectKey(owner) ?? null) : null;
  const pseudonymKey = schema.pseudonymises ? (keys.pseudonymKey(now()) ?? null) : null;
  if ((schema.encrypts && key === null) || (schema.pseudonymises && pseudonymKey === null))
    return { kind: 'deny', reason: 'privacy keys unavailable' };
  const message: ClassifiedMessage = { value, subject, key, pseudonymKey };
  const kept = schema.kept(message);
  packet.kept = kept === null ? null : Buffer.from(JSON.stringify(kept));
  ctx.states.set(asBuffer(packet.payload), stateOf({ schema, subject, value, key, pseudonymKey }));
  return CONTINUE;
}

function stateOf(s: {
  schema: CompiledSchema;
  subject: string | null;
  value?: Record<string, unknown>;
  kept?: Record<string, unknown>;
  key?: DataKey | null;
  pseudonymKey?: PseudonymKey | null;
  at?: number;
}): MessageState {
  return {
    schema: s.schema,
    subject: s.subject,
    value: s.value,
    kept: s.kept,
    key: s.key ?? null,
    pseudonymKey: s.pseudonymKey ?? null,
    views: new Map(),
    at: s.at ?? 0,
  };
}

/**
 * The subject named in the payload, else the one person linked to the publishing device (an app or the
 * platform has none); an error when malformed.
 */
function subjectFor(
  ctx: Ctx,
  schema: CompiledSchema,
  m: { value: Record<string, unknown>; publisher: string | null },
): string | null | { error: string } {
  const named = schema.subjectOf(m.value);
  if (typeof named === 'string' || typeof named === 'object') return named;
  const deviceId = deviceIdOf(m.publisher);
  return deviceId === undefined ? null : ctx.deps.live.subjectOfDevice(deviceId);
}

function classifyPublish(ctx: Ctx, session: BrokerSession, packet: PublishPacket): PublishVerdict {
  const { live, logger } = ctx.deps;
  const schema = live.match(packet.topic);
  if (schema === undefined) return CONTINUE;
  const { topic } = packet;
  // A string payload (never from the parser) becomes the Buffer the delivery state is keyed by.
  if (!Buffer.isBuffer(packet.payload)) packet.payload = Buffer.from(packet.payload);
  const checked = schema.check(packet.payload);
  if (!checked.ok) return refuse(ctx, session, { topic, schema: schema.name, reason: checked.reason });
  const publisher = publisherOfSession(session);
  const subject = subjectFor(ctx, schema, { value: checked.value, publisher });
  if (subject !== null && typeof subject === 'object')
    return refuse(ctx, session, { topic, schema: schema.name, reason: subject.error });
  if (!schema.transforms && subject === null) {
    packet.classified = { schema: schema.name, subject: null };
    return CONTINUE;
  }
  const c: Classified = { schema, value: checked.value, subject, owner: keyOwner(subject, publisher) };
  const loading = schema.transforms ? missingKeys(ctx, schema, c.owner) : undefined;
  if (loading === undefined) return finish(ctx, packet, c);
  return {
    kind: 'pending',
    verdict: loading.then(
      () => finish(ctx, packet, c),
      (err: unknown): PublishVerdict => {
        logger.error({ err, topic }, 'cannot load privacy keys');
        return { kind: 'deny', reason: 'privacy keys unavailable' };
      },
    ),
  };
}

/** Parses a JSON object, or undefined. */
function jsonObject(payload: Buffer | string): Record<string, unknown> | undefined {
  const v = jsonOfPayload(payload);
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** Keys from the cache only (delivery never waits): null when not loaded, the transform then has none. */
function cachedKeys(ctx: Ctx, schema: CompiledSchema, owner: string | null) {
  const { keys, now } = ctx.deps;
  return {
    key: schema.encrypts && owner !== null ? (keys.subjectKey(owner) ?? null) : null,
    pseudonymKey: schema.pseudonymises ? (keys.pseudonymKey(now()) ?? null) : null,
  };
}

/**
 * A message with no publish state on a topic whose schema transforms: a retained message (its kept form), or
 * one that was never classified (retained before the schema existed, published by an app or the platform),
 * checked and viewed as a clear payload. Null: it cannot be shown to anyone (withheld).
 */
function stateWithoutPublish(ctx: Ctx, schema: CompiledSchema, payload: Buffer): MessageState | null {
  const { retained, now } = ctx.deps;
  const retainedAs = retained?.classificationOf(payload);
  const publisher = publisherOfKey(retainedAs?.deviceId);
  const at = now();
  if (retained === undefined || retainedAs?.schema === schema.name) {
    const kept = jsonObject(payload);
    if (kept === undefined) return null;
    const subject = retainedAs?.subject ?? null;
    const keys = cachedKeys(ctx, schema, keyOwner(subject, publisher));
    return stateOf({ schema, subject, kept, ...keys, at });
  }
  const checked = schema.check(payload);
  if (!checked.ok) return null;
  const subject = subjectFor(ctx, schema, { value: checked.value, publisher });
  if (subject !== null && typeof subject === 'object') return null;
  const keys = cachedKeys(ctx, schema, keyOwner(subject, publisher));
  return stateOf({ schema, subject, value: checked.value, ...keys, at });
}

/**
 * A message with no publish state on a topic whose schema does not transform: only withholding needs its
 * subject. A retained message's is the store's; one never classified (a platform publish, or retained before
 * the schema existed) is checked and its subject read from the payload. Undefined: it goes as it is (no
 * subject can be named: the schema has no subject field and the message is not a classified retained one).
 */
function subjectState(ctx: Ctx, schema: CompiledSchema, payload: Buffer): MessageState | null | undefined {
  const retainedAs = ctx.deps.retained?.classificationOf(payload);
  if (retainedAs?.schema === schema.name)
    return retainedAs.subject === null ? undefined : stateOf({ schema, subject: retainedAs.subject });
  if (schema.schema.subject.field === undefined) return undefined;
  const checked = schema.check(payload);
  if (!checked.ok) return null;
  const publisher = publisherOfKey(retainedAs?.deviceId);
  const subject = subjectFor(ctx, schema, { value: checked.value, publisher });
  if (subject !== null && typeof subject === 'object') return null;
  return subject === null ? undefined : stateOf({ schema, subject, value: checked.value });
}

/** The message's state for delivery: undefined when it goes as it is, null when it is withheld. */
function deliveryState(ctx: Ctx, packet: DeliverPacket): MessageState | null | undefined {
  const { payload } = packet;
  if (!Buffer.isBuffer(payload)) return undefined;
  const state = ctx.states.get(payload);
  if (state !== undefined && (state.at === 0 || ctx.deps.now() - state.at < KEPT_STATE_MS)) return state;
  const schema = ctx.deps.live.match(packet.topic);
  if (schema === undefined) return undefined;
  const built = schema.transforms
    ? stateWithoutPublish(ctx, schema, payload)
    : subjectState(ctx, schema, payload);
  if (built) ctx.states.set(payload, built);
  return built;
}

/** The consumer's purpose: an app's declared one; a device has none. */
const purposeOf = (session: BrokerSession): string | null => session.appFacts?.purpose ?? null;

/** Art. 18 restriction, or consent withdrawn for this purpose: the subject's messages do not go there. */
function withheld(ctx: Ctx, subject: string | null, purpose: string | null): boolean {
  if (subject === null) return false;
  const { live } = ctx.deps;
  return live.restricted(subject) || (purpose !== null && live.consent(subject, purpose) === 'withdrawn');
}

function viewOf(state: MessageState, consumer: Consumer): Buffer {
  const cacheKey = state.schema.viewKey(consumer);
  let view = state.views.get(cacheKey);
  if (view === undefined) {
    const message = { subject: state.subject, key: state.key, pseudonymKey: state.pseudonymKey };
    const shown =
      state.value !== undefined
        ? state.schema.view({ ...message, value: state.value }, consumer)
        : state.schema.viewOfKept(state.kept ?? {}, message, consumer);
    view = Buffer.from(JSON.stringify(shown));
    state.views.set(cacheKey, view);
  }
  return view;
}

function deliver<P extends DeliverPacket>(ctx: Ctx, session: BrokerSession, packet: P): P | null {
  const state = deliveryState(ctx, packet);
  if (state === undefined) return packet;
  const purpose = purposeOf(session);
  if (state === null || withheld(ctx, state.subject, purpose)) {
    ctx.counters.withheld++;
    return null;
  }
  if (!state.schema.transforms) return packet;
  const { subject } = state;
  const consented =
    purpose !== null && subject !== null && ctx.deps.live.consent(subject, purpose) === 'given';
  ctx.counters.transformed++;
  return { ...packet, payload: viewOf(state, { purpose, consented }) };
}

/**
 * The publish stage (every principal: match → check → subject → keys → kept form and state) and the
 * deliver stage (withholding, then the consumer's view), with their counters (Prometheus).
 */
export function createPrivacyStages(deps: PrivacyStageDeps): {
  publish: PublishStage;
  deliver: DeliverStage;
  counters: PrivacyStageCounters;
} {
  const ctx: Ctx = {
    deps,
    counters: { refused: 0, transformed: 0, withheld: 0 },
    states: new WeakMap(),
    refusals: createEventRateLimit({ max: 5, windowMs: 60_000 }),
  };
  return {
    publish: {
      name: 'privacy',
      run(session, packet) {
        // Every principal's publish (a device's or an app's): an app with a publish grant on a schema topic
        // is checked, classified and transformed like a device.
        if (deps.live.empty) return CONTINUE;
        return classifyPublish(ctx, session, packet);
      },
    },
    deliver: {
      name: 'privacy',
      run: (session, packet) => (deps.live.empty ? packet : deliver(ctx, session, packet)),
    },
    counters: ctx.counters,
  };
}
