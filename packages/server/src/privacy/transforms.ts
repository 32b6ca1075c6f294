import type { ErrorObject, ValidateFunction } from 'ajv';
import {
  durationMs,
  purposeAllowed,
  subjectIdPattern,
  type DataSchema,
  type FieldTransform,
  utf8Text,
} from '@bulwark/protocol';
import { levelsMatch } from '../policy/index.ts';
import { compileJsonSchema, fieldPlans, type FieldPlan } from './data-schema.ts';
import { encryptValue, pseudonymise, type DataKey, type PseudonymKey } from './keys.ts';

/**
 * The per-message half of data schemas (runs in the broker for every classified message): the payload checked
 * against its JSON Schema, the view each consumer gets by its purpose, and the form the stores keep. Everything
 * that does not depend on the message is compiled once: field plans, path segments, transform functions, the
 * ajv validator, and per consumer purpose the outcome of every field.
 */

export interface ClassifiedMessage {
  /** The parsed clear payload. */
  readonly value: Record<string, unknown>;
  readonly subject: string | null;
  /** The key owner's data key when the schema encrypts, else null. */
  readonly key: DataKey | null;
  /** The current pseudonymisation key when the schema pseudonymises, else null. */
  readonly pseudonymKey: PseudonymKey | null;
}
export interface Consumer {
  readonly purpose: string | null;
  readonly consented: boolean;
}
export interface CompiledSchema {
  readonly name: string;
  readonly topic: string;
  readonly schema: DataSchema;
  readonly fields: readonly FieldPlan[];
  /** false: every consumer gets the payload as is and the stores keep it as is (no copy, no state). */
  readonly transforms: boolean;
  readonly encrypts: boolean;
  readonly pseudonymises: boolean;
  check(
    payload: Buffer | string,
  ): { ok: true; value: Record<string, unknown> } | { ok: false; reason: string };
  /** The subject named by subject.field: id; undefined when the schema has no subject field (or the payload
   * leaves it out: the device's linked person then); {error} when it is not a subject id. */
  subjectOf(value: Record<string, unknown>): string | undefined | { error: string };
  view(message: ClassifiedMessage, consumer: Consumer): Record<string, unknown>;
  /** Consumers with equal keys get equal views (cache key). */
  viewKey(consumer: Consumer): string;
  kept(message: ClassifiedMessage): Record<string, unknown> | null;
  /** Retained delivery: a kept form seen by a consumer (store-clear fields transformed as for it; others as kept). */
  viewOfKept(
    kept: Record<string, unknown>,
    message: Omit<ClassifiedMessage, 'value'>,
    consumer: Consumer,
  ): Record<string, unknown>;
}

type Obj = Record<string, unknown>;
const DROP: unique symbol = Symbol('drop');
type Outcome = unknown;
interface TransformContext {
  readonly message: Omit<ClassifiedMessage, 'value'>;
  /** The object the field's value comes from (the clear payload, or a kept form). */
  readonly source: Obj;
}
type ApplyTransform = (value: unknown, ctx: TransformContext) => Outcome;

/** What happens to one field in one output: kept as in the source, transformed, or left out. */
const KEEP = 0;
const TRANSFORM = 1;
const OMIT = 2;
type Action = typeof KEEP | typeof TRANSFORM | typeof OMIT;

interface CompiledField {
  readonly plan: FieldPlan;
  readonly segments: readonly string[];
  readonly apply: ApplyTransform;
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function getPath(source: Obj, segments: readonly string[]): unknown {
  let cur: unknown = source;
  for (const s of segments) {
    if (!isObj(cur) || !Object.hasOwn(cur, s)) return undefined;
    cur = cur[s];
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------------------
// Generalisation

const METRES_PER_DEGREE = 111_320;
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** Float noise off (0.30000000000000004 → 0.3) without changing a meaningful digit. */
const tidy = (x: number) => Number(x.toPrecision(12));

/** The centre of the latitude cell `grid` metres high that holds `lat`. */
export function latitudeCell(lat: number, grid: number): number {
  const step = grid / METRES_PER_DEGREE;
  return round6(clamp(Math.floor(lat / step) * step + step / 2, -90, 90));
}

/**
 * The centre of the longitude cell `grid` metres wide at the latitude `cellLat` (a latitude cell's centre, so
 * that the width, hence the output, does not vary with the precise latitude inside one cell).
 */
export function longitudeCell(lon: number, grid: number, cellLat: number): number {
  const cos = Math.cos((cellLat * Math.PI) / 180);
  const step = cos > 1e-9 ? Math.min(360, grid / (METRES_PER_DEGREE * cos)) : 360;
  return round6(clamp(Math.floor(lon / step) * step + step / 2, -180, 180));
}

function bucketTransform(bucket: string, unit: 'ms' | 's' | undefined): ApplyTransform {
  const size = durationMs(bucket) ?? 1;
  const scale = unit === 's' ? 1000 : 1;
  return (v) => {
    if (isNumber(v)) return (Math.floor((v * scale) / size) * size) / scale;
    if (typeof v !== 'string') return DROP;
    const t = Date.parse(v);
    return Number.isNaN(t) ? DROP : new Date(Math.floor(t / size) * size).toISOString();
  };
}

function gridTransform(
  g: { grid: number; axis: 'latitude' | 'longitude'; latitudeField?: string | undefined },
  schema: DataSchema,
): ApplyTransform {
  if (g.axis === 'latitude') return (v) => (isNumber(v) ? latitudeCell(v, g.grid) : DROP);
  const latPath = g.latitudeField ?? '';
  const latSegments = latPath.split('.');
  const latTransform = schema.fields[latPath]?.transform;
  // parseDataSchema makes latitudeField a latitude grid; its cell size decides the latitude used here.
  const latGrid =
    typeof latTransform === 'object' && 'grid' in latTransform.generalise
      ? latTransform.generalise.grid
      : g.grid;
  return (v, ctx) => {
    const lat = getPath(ctx.source, latSegments);
    if (!isNumber(v) || !isNumber(lat)) return DROP;
    return longitudeCell(v, g.grid, latitudeCell(lat, latGrid));
  };
}

function compileTransform(t: FieldTransform, schema: DataSchema, path: string): ApplyTransform {
  if (t === 'none') return (v) => v;
  if (t === 'drop') return () => DROP;
  // Without the key the value is left out: never the clear value by mistake.
  if (t === 'pseudonymise')
    return (v, ctx) => (ctx.message.pseudonymKey ? pseudonymise(ctx.message.pseudonymKey, v) : DROP);
  if (t === 'encrypt') {
    // The token is bound to this schema and field: it decrypts only as what it is.
    const context = { schema: schema.name, path };
    return (v, ctx) => (ctx.message.key ? encryptValue(ctx.message.key, v, context) : DROP);
  }
  const g = t.generalise;
  if ('grid' in g) return gridTransform(g, schema);
  if ('bucket' in g) return bucketTransform(g.bucket, g.unit);
  const step = g.step;
  return (v) => {
    if (!isNumber(v)) return DROP;
    const gte = tidy(Math.floor(v / step) * step);
    return { gte, lt: tidy(gte + step) };
  };
}

// ---------------------------------------------------------------------------------------------------------
// Building an output

interface Layout {
  readonly fields: readonly CompiledField[];
  /** Top-level property → index of its field (fields classified as a whole at the top level). */
  readonly top: ReadonlyMap<string, number>;
  /** Indexes of the fields below the top level. */
  readonly nested: readonly number[];
  /** The transformed values of the last source (see transformed). */
  readonly memo: { last: TransformMemo | undefined };
}
interface TransformMemo {
  readonly source: Obj;
  readonly key: DataKey | null;
  readonly pseudonymKey: PseudonymKey | null;
  readonly values: Outcome[];
}

/** Sets (or removes) a nested value in `out`, copying only the objects on the path (once per output). */
function setNested(
  target: { out: Obj; copied: Set<object> },
  segments: readonly string[],
  value: Outcome,
): void {
  const copied = target.copied;
  let parent = target.out;
  const last = segments.length - 1;
  for (let i = 0; i < last; i++) {
    const seg = segments[i] ?? '';
    const child = parent[seg];
    if (!isObj(child)) return;
    if (copied.has(child)) {
      parent = child;
      continue;
    }
    const copy = { ...child };
    copied.add(copy);
    parent[seg] = copy;
    parent = copy;
  }
  const key = segments[last] ?? '';
  if (value === DROP) delete parent[key];
  else parent[key] = value;
}

/**
 * A field's transformed value, computed once per source object (a message's clear value or a kept form) and
 * shared by the outputs built from it in a row (the kept form, then each distinct consumer view): one HMAC or
 * encryption per message rather than per output. Only the last source is remembered (a WeakMap of every
 * message costs more than the HMAC it saves).
 */
function transformed(layout: Layout, i: number, ctx: TransformContext): Outcome {
  let memo = layout.memo.last;
  if (
    !memo ||
    memo.source !== ctx.source ||
    memo.key !== ctx.message.key ||
    memo.pseudonymKey !== ctx.message.pseudonymKey
  ) {
    memo = { source: ctx.source, key: ctx.message.key, pseudonymKey: ctx.message.pseudonymKey, values: [] };
    layout.memo.last = memo;
  }
  if (i in memo.values) return memo.values[i];
  const field = layout.fields[i];
  const r = field ? field.apply(getPath(ctx.source, field.segments), ctx) : DROP;
  memo.values[i] = r;
  return r;
}

/** A new object: the source's members, each classified one as its action says; a missing field stays missing. */
function build(layout: Layout, actions: readonly Action[], ctx: TransformContext): Obj {
  const src = ctx.source;
  const out: Obj = {};
  for (const key of Object.keys(src)) {
    const i = layout.top.get(key);
    const action = i === undefined ? KEEP : (actions[i] ?? KEEP);
    const r =
      i === undefined || action === KEEP ? src[key] : action === OMIT ? DROP : transformed(layout, i, ctx);
    if (r !== DROP) out[key] = r;
  }
  let copied: Set<object> | undefined;
  for (const i of layout.nested) {
    const action = actions[i] ?? KEEP;
    const field = layout.fields[i];
    if (action === KEEP || !field) continue;
    const value = getPath(src, field.segments);
    if (value === undefined) continue;
    copied ??= new Set();
    setNested({ out, copied }, field.segments, action === OMIT ? DROP : transformed(layout, i, ctx));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Consumers

interface ConsumerPlan {
  readonly key: string;
  /** For a message's clear value. */
  readonly view: readonly Action[];
  /** For a kept form: store-clear fields as for this consumer, the others as kept. */
  readonly ofKept: readonly Action[];
  /** Every field as in the source: the output is the source object itself (no copy). */
  readonly viewAsIs: boolean;
  readonly keptAsIs: boolean;
}

/** Whether a consumer gets a field's clear value: its purpose allowed by the uses, consent where the basis. */
function clearFor(plan: FieldPlan, consumer: Consumer): boolean {
  const purpose = consumer.purpose;
  if (purpose === null) return false;
  if (plan.uses !== null && !purposeAllowed(purpose, plan.uses)) return false;
  return plan.lawfulBasis !== 'consent' || consumer.consented;
}

const MAX_CONSUMER_PLANS = 4096;

function consumerPlans(fields: readonly CompiledField[]) {
  const plans = new Map<string, ConsumerPlan>();
  return (consumer: Consumer): ConsumerPlan => {
    const memo = `${consumer.purpose ?? '\u0000'}|${consumer.consented ? 1 : 0}`;
    let p = plans.get(memo);
    if (p) return p;
    const view = fields.map((f): Action =>
      clearFor(f.plan, consumer) || f.plan.transform === 'none' ? KEEP : TRANSFORM,
    );
    const ofKept = fields.map((f, i): Action => (f.plan.store === 'clear' ? (view[i] ?? TRANSFORM) : KEEP));
    // Consumers whose purposes give every field the same outcome share one key (and one encoded view).
    p = {
      key: view.join(''),
      view,
      ofKept,
      viewAsIs: view.every((a) => a === KEEP),
      keptAsIs: ofKept.every((a) => a === KEEP),
    };
    if (plans.size >= MAX_CONSUMER_PLANS) plans.clear();
    plans.set(memo, p);
    return p;
  };
}

// ---------------------------------------------------------------------------------------------------------
// Payload checks

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  const e = errors?.[0];
  if (!e) return 'does not match the schema';
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string')
    return `${e.instancePath}/${params.additionalProperty}: not a field of the schema`;
  if (e.keyword === 'required' && typeof params.missingProperty === 'string')
    return `${e.instancePath}/${params.missingProperty}: is required`;
  return `${e.instancePath || '/'}: ${e.message ?? `fails ${e.keyword}`}`;
}

function payloadChecker(validate: ValidateFunction) {
  return (payload: Buffer | string): { ok: true; value: Obj } | { ok: false; reason: string } => {
    const text = utf8Text(payload);
    if (text === undefined) return { ok: false, reason: 'not UTF-8' };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { ok: false, reason: 'not JSON' };
    }
    if (!isObj(value)) return { ok: false, reason: 'not a JSON object' };
    if (!validate(value)) return { ok: false, reason: describeErrors(validate.errors) };
    return { ok: true, value };
  };
}

function subjectReader(field: string | undefined) {
  if (field === undefined) return () => undefined;
  const segments = field.split('.');
  return (value: Obj): string | undefined | { error: string } => {
    const v = getPath(value, segments);
    if (v === undefined) return undefined;
    if (typeof v === 'string' && subjectIdPattern.test(v)) return v;
    return { error: `${field} does not hold a data subject id` };
  };
}

// ---------------------------------------------------------------------------------------------------------

function layoutOf(schema: DataSchema, plans: readonly FieldPlan[]): Layout {
  const fields = plans.map((plan): CompiledField => ({
    plan,
    segments: plan.path.split('.'),
    apply: compileTransform(plan.transform, schema, plan.path),
  }));
  const top = new Map<string, number>();
  const nested: number[] = [];
  fields.forEach((f, i) => (f.segments.length === 1 ? top.set(f.plan.path, i) : nested.push(i)));
  return { fields, top, nested, memo: { last: undefined } };
}

/** Compiles a parsed data schema (parseDataSchema's output) for the hot path. */
export function compileDataSchema(schema: DataSchema): CompiledSchema {
  const plans = fieldPlans(schema);
  const layout = layoutOf(schema, plans);
  const transforms = plans.some((p) => p.transform !== 'none' || p.store !== 'clear');
  const planFor = consumerPlans(layout.fields);
  const keptActions = plans.map((p): Action =>
    p.store === 'clear' ? KEEP : p.store === 'none' ? OMIT : TRANSFORM,
  );
  const keepsNothing = plans.length > 0 && plans.every((p) => p.store === 'none');
  return {
    name: schema.name,
    topic: schema.topic,
    schema,
    fields: plans,
    transforms,
    encrypts: plans.some((p) => p.transform === 'encrypt'),
    pseudonymises: plans.some((p) => p.transform === 'pseudonymise'),
    check: payloadChecker(compileJsonSchema(schema.schema)),
    subjectOf: subjectReader(schema.subject.field),
    view(message, consumer) {
      if (!transforms) return message.value;
      const plan = planFor(consumer);
      if (plan.viewAsIs) return message.value;
      return build(layout, plan.view, { message, source: message.value });
    },
    viewKey: (consumer) => (transforms ? planFor(consumer).key : ''),
    kept(message) {
      if (keepsNothing) return null;
      if (!transforms) return message.value;
      return build(layout, keptActions, { message, source: message.value });
    },
    viewOfKept(kept, message, consumer) {
      if (!transforms) return kept;
      const plan = planFor(consumer);
      if (plan.keptAsIs) return kept;
      return build(layout, plan.ofKept, { message, source: kept });
    },
  };
}

// ---------------------------------------------------------------------------------------------------------
// Matching topics

interface Candidate {
  readonly schema: CompiledSchema;
  readonly levels: readonly string[];
  /** Per level: 0 a literal, 1 `+`, 2 `#`. */
  readonly kinds: readonly number[];
}

const levelKind = (level: string) => (level === '#' ? 2 : level === '+' ? 1 : 0);

/**
 * Specificity order: level by level from the left, a literal before `+`, `+` before `#` (as a routing table
 * prefers the longest literal prefix): `devices/d-1/+` before `devices/+/telemetry`, `devices/+/telemetry/#`
 * before `devices/#`; then fewer wildcards, then by name (deterministic).
 */
function bySpecificity(a: Candidate, b: Candidate): number {
  const n = Math.min(a.kinds.length, b.kinds.length);
  for (let i = 0; i < n; i++) {
    const d = (a.kinds[i] ?? 0) - (b.kinds[i] ?? 0);
    if (d !== 0) return d;
  }
  const wild = (c: Candidate) => c.kinds.filter((k) => k > 0).length;
  return wild(a) - wild(b) || a.schema.name.localeCompare(b.schema.name);
}

/**
 * An MQTT filter matcher over compiled schemas: the most specific match wins (a literal level before `+`,
 * `+` before `#`, compared from the left; see bySpecificity).
 */
export function schemaMatcher(schemas: readonly CompiledSchema[]): {
  match(topic: string): CompiledSchema | undefined;
  readonly size: number;
} {
  const exact = new Map<string, CompiledSchema>();
  const wild: Candidate[] = [];
  for (const schema of schemas) {
    const levels = schema.topic.split('/');
    const kinds = levels.map(levelKind);
    if (kinds.every((k) => k === 0)) {
      if (!exact.has(schema.topic)) exact.set(schema.topic, schema);
    } else wild.push({ schema, levels, kinds });
  }
  wild.sort(bySpecificity);
  const matchWild = (topic: string): CompiledSchema | null => {
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match a topic starting with `$`.
    const dollar = topic.startsWith('$');
    const levels = topic.split('/');
    for (const c of wild) {
      const first = c.levels[0];
      if (dollar && (first === '+' || first === '#')) continue;
      if (levelsMatch(c.levels, levels)) return c.schema;
    }
    return null;
  };
  // Every publish and every delivery asks (topics without a schema included): the answer per topic is
  // remembered, up to MATCH_CACHE_SIZE topics, so a message fanned out to many subscribers splits its topic once.
  const cache = new Map<string, CompiledSchema | null>();
  return {
    size: schemas.length,
    match(topic) {
      const hit = exact.get(topic);
      if (hit || wild.length === 0) return hit;
      let found = cache.get(topic);
      if (found === undefined) {
        if (cache.size >= MATCH_CACHE_SIZE) cache.clear();
        found = matchWild(topic);
        cache.set(topic, found);
      }
      return found ?? undefined;
    },
  };
}

/** Topics whose schema (or none) a matcher remembers before it starts afresh. */
const MATCH_CACHE_SIZE = 10_000;
