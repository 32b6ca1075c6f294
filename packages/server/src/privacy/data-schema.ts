import { Ajv, type CodeOptions, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { RE2 } from 're2-wasm';
import {
  BulwarkError,
  dataSchemaDocumentSchema,
  durationMs,
  isPersonalCategory,
  isSpecialCategory,
  type DataField,
  type DataSchema,
  type FieldTransform,
  type LawfulBasis,
  type SpecialCondition,
} from '@bulwark/protocol';

/**
 * Data schemas (privacy): validation of a document beyond its structure (MQTT filter, JSON Schema, the GDPR
 * classification rules), the effective per-field settings, and what changed between two versions. Pure.
 */

/** Effective per-field settings with defaults applied. */
export interface FieldPlan {
  path: string;
  category: string;
  personal: boolean;
  special: boolean;
  specialCondition: SpecialCondition | null;
  uses: readonly string[] | null;
  lawfulBasis: LawfulBasis | null;
  retentionMs: number | null;
  transform: FieldTransform;
  store: 'clear' | 'transformed' | 'none';
  quasiIdentifier: boolean;
  description: string | null;
}

type JsonSchemaNode = Record<string, unknown>;

const under = (key: string, root: string) => key === root || key.startsWith(`${root}.`);
const isObject = (v: unknown): v is JsonSchemaNode =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** One field's plan: the document's settings, defaults where it says nothing. */
export function fieldPlan(path: string, field: DataField): FieldPlan {
  const personal = field.personal ?? isPersonalCategory(field.category);
  const retention = field.retention === undefined ? undefined : durationMs(field.retention);
  return {
    path,
    category: field.category,
    personal,
    special: field.special ?? isSpecialCategory(field.category),
    specialCondition: field.specialCondition ?? null,
    uses: field.uses ?? null,
    lawfulBasis: field.lawfulBasis ?? null,
    retentionMs: retention ?? null,
    transform: field.transform ?? (personal ? 'drop' : 'none'),
    store: field.store ?? (personal ? 'transformed' : 'clear'),
    quasiIdentifier:
      field.quasiIdentifier ??
      (under(field.category, 'user.location') || under(field.category, 'user.demographic')),
    description: field.description ?? null,
  };
}

/** Effective per-field settings with defaults applied, in the document's order. */
export function fieldPlans(schema: DataSchema): FieldPlan[] {
  return Object.entries(schema.fields).map(([path, field]) => fieldPlan(path, field));
}

// ---------------------------------------------------------------------------------------------------------
// JSON Schema compilation

/**
 * The compiled validator of a parsed document's JSON Schema, by the schema object: compiled once by
 * parseDataSchema and reused by compileDataSchema; a WeakMap, so a replaced schema's validator goes with it.
 */
const validators = new WeakMap<object, ValidateFunction>();

/** A `pattern` RE2 cannot run (a backreference, a lookaround): refused when the schema is put. */
class UnsupportedPatternError extends Error {}

/**
 * RE2 instances by flags and pattern. ajv asks for a pattern's RegExp on every compilation (and keeps the first
 * per pattern in its scope); RE2's WebAssembly objects are not garbage collected, so each pattern is built once.
 */
type RegExpEngine = NonNullable<CodeOptions['regExp']>;
type RegExpLike = ReturnType<RegExpEngine>;
const linearPatterns = new Map<string, RegExpLike>();

/**
 * ajv's RegExp engine for data schemas: `pattern` and `patternProperties` run in linear time (RE2), so a
 * pattern such as `^(a+)+$` cannot freeze the broker on a device's payload. RE2 needs the `u` flag.
 */
export const linearRegExp: RegExpEngine = Object.assign(
  (pattern: string, flags: string): RegExpLike => {
    const u = flags.includes('u') ? flags : `${flags}u`;
    const key = `${u}/${pattern}`;
    const known = linearPatterns.get(key);
    if (known) return known;
    let rx: RE2;
    try {
      rx = new RE2(pattern, u);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const prefix = `Invalid regular expression: /${pattern}/${u}: `;
      const why = message.startsWith(prefix) ? message.slice(prefix.length) : message;
      throw new UnsupportedPatternError(
        `pattern ${JSON.stringify(pattern)} is not supported (${why}): patterns run in linear time (RE2), without backreferences or lookarounds`,
      );
    }
    linearPatterns.set(key, rx);
    return rx;
  },
  { code: 'linearRegExp' },
);

const ajvOptions = {
  code: { regExp: linearRegExp },
  allErrors: false,
  strict: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allowUnionTypes: true,
  logger: false,
  validateFormats: true,
} as const;
let ajvs: { draft7: Ajv; draft2020: Ajv2020 } | undefined;
function ajvFor(schema: JsonSchemaNode): Ajv {
  if (!ajvs) {
    const draft7 = new Ajv(ajvOptions);
    const draft2020 = new Ajv2020(ajvOptions);
    addFormats.default(draft7);
    addFormats.default(draft2020);
    ajvs = { draft7, draft2020 };
  }
  const draft = typeof schema.$schema === 'string' ? schema.$schema : '';
  return /draft-0[67]/.test(draft) ? ajvs.draft7 : ajvs.draft2020;
}

/**
 * Compiles a payload JSON Schema. Draft 2020-12 unless `$schema` names draft-07 (or 06). ajv's strict schema
 * mode stays on (an unknown keyword such as a misspelt `minimun` is an error rather than a rule silently not
 * checked); the type and tuple hints are off and nothing is logged. One ajv instance per draft (creating one
 * costs twenty compilations), each schema removed from it once compiled: ajv keeps nothing of a replaced schema,
 * and two documents may use the same `$id`.
 */
export function compileJsonSchema(schema: JsonSchemaNode): ValidateFunction {
  const known = validators.get(schema);
  if (known) return known;
  const ajv = ajvFor(schema);
  try {
    const validate = ajv.compile(schema);
    validators.set(schema, validate);
    return validate;
  } finally {
    ajv.removeSchema(schema);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Validation

const invalid = (message: string) => new BulwarkError('validation_failed', message);

/** Problems of an MQTT topic filter as a data schema's topic: `+` a whole level, `#` only last, no empty level. */
export function topicFilterProblem(topic: string): string | undefined {
  if (topic.length === 0 || topic.length > 256) return 'must be 1-256 characters';
  const levels = topic.split('/');
  for (const [i, level] of levels.entries()) {
    if (level === '') return 'has an empty level';
    if (level.includes('+') && level !== '+') return '"+" must be a whole level [MQTT-4.7.1-2]';
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1))
      return '"#" must be the last level, alone [MQTT-4.7.1-1]';
  }
  return undefined;
}

function zodMessage(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  const lines = issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : 'document'}: ${i.message}`);
  if (issues.length > 3) lines.push(`and ${issues.length - 3} more`);
  return lines.join('; ');
}

/** The JSON Schema node of a dotted path (through `properties`), or undefined where the schema does not say. */
export function schemaNodeAt(root: JsonSchemaNode, path: string): JsonSchemaNode | undefined {
  let node: JsonSchemaNode | undefined = root;
  for (const segment of path.split('.')) {
    const props: unknown = node?.properties;
    if (!isObject(props)) return undefined;
    const next: unknown = Object.hasOwn(props, segment) ? props[segment] : undefined;
    node = isObject(next) ? next : undefined;
  }
  return node;
}

/** The types a schema node states (`type`), or undefined when it states none. */
function statedTypes(node: JsonSchemaNode | undefined): string[] | undefined {
  const type = node?.type;
  if (typeof type === 'string') return [type];
  if (Array.isArray(type)) return type.filter((t): t is string => typeof t === 'string');
  return undefined;
}

const RESERVED = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Keywords that admit properties outside `properties` (patternProperties, unevaluatedProperties,
 * dependentSchemas, dependencies) or state more of the object elsewhere (references, combinations,
 * conditions): refused at the root and at every object classified in parts, so each property of the payload is
 * exactly one classified field. propertyNames and dependentRequired stay allowed: they only narrow the object.
 */
const UNCLASSIFIABLE = [
  'patternProperties',
  'unevaluatedProperties',
  'dependentSchemas',
  'dependencies',
  '$ref',
  '$dynamicRef',
  '$recursiveRef',
  'allOf',
  'anyOf',
  'oneOf',
  'not',
  'if',
  'then',
  'else',
] as const;

/** A node whose properties are classified one by one: no keyword may admit or state properties elsewhere. */
function checkClassifiable(node: JsonSchemaNode, at: string): void {
  const keyword = UNCLASSIFIABLE.find((k) => Object.hasOwn(node, k));
  if (keyword !== undefined)
    throw invalid(`${at}: ${keyword} is not allowed: every property must be classified in fields`);
}

function checkRoot(schema: JsonSchemaNode): void {
  if (schema.type !== 'object') throw invalid('schema: the payload must be an object (type: object)');
  if (!isObject(schema.properties)) throw invalid('schema: the payload object needs properties');
  if (schema.additionalProperties !== false)
    throw invalid('schema: additionalProperties must be false (every field of the payload is classified)');
  checkClassifiable(schema, 'schema');
  try {
    compileJsonSchema(schema);
  } catch (err) {
    if (err instanceof UnsupportedPatternError) throw invalid(`schema: ${err.message}`);
    throw invalid(`schema: not a valid JSON Schema: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Every property is classified: by a field of its own, or (an object closed by additionalProperties: false)
 * property by property through dotted paths.
 */
function checkCoverage(node: JsonSchemaNode, prefix: string, fields: Record<string, DataField>): void {
  const props = isObject(node.properties) ? node.properties : {};
  for (const [name, child] of Object.entries(props)) {
    const path = prefix ? `${prefix}.${name}` : name;
    if (RESERVED.has(name)) throw invalid(`schema.properties.${path}: "${name}" is a reserved name`);
    if (Object.hasOwn(fields, path)) continue;
    const nested = Object.keys(fields).some((f) => f.startsWith(`${path}.`));
    if (!nested)
      throw invalid(`fields.${path}: the property is not classified (every field needs a category)`);
    if (
      !isObject(child) ||
      child.type !== 'object' ||
      !isObject(child.properties) ||
      child.additionalProperties !== false
    )
      throw invalid(
        `fields.${path}: classified in parts, so its schema must be type: object with properties and additionalProperties: false`,
      );
    checkClassifiable(child, `schema.properties.${path.split('.').join('.properties.')}`);
    checkCoverage(child, path, fields);
  }
}

function checkPaths(doc: DataSchema): void {
  const root = doc.schema;
  const props = isObject(root.properties) ? root.properties : {};
  for (const path of Object.keys(doc.fields)) {
    const segments = path.split('.');
    const reserved = segments.find((s) => RESERVED.has(s));
    if (reserved !== undefined) throw invalid(`fields.${path}: "${reserved}" is a reserved name`);
    const first = segments[0] ?? path;
    if (!Object.hasOwn(props, first))
      throw invalid(`fields.${path}: "${first}" is not a property of the schema`);
    for (let i = 1; i < segments.length; i++) {
      const parent = segments.slice(0, i).join('.');
      if (Object.hasOwn(doc.fields, parent))
        throw invalid(`fields.${path}: inside fields.${parent}, which is classified as a whole`);
      const node = schemaNodeAt(root, parent);
      if (node && isObject(node.properties) && !Object.hasOwn(node.properties, segments[i] ?? ''))
        throw invalid(`fields.${path}: not a property of ${parent} in the schema`);
    }
  }
}

function checkLawfulness(path: string, plan: FieldPlan): void {
  const at = `fields.${path}`;
  if (plan.special && !plan.personal)
    throw invalid(
      `${at}: special-category data (GDPR Art. 9) is personal data: it cannot be personal: false`,
    );
  if (plan.personal && plan.lawfulBasis === null)
    throw invalid(`${at}: a personal field needs a lawfulBasis (GDPR Art. 6)`);
  if (plan.personal && plan.store !== 'none' && plan.retentionMs === null)
    throw invalid(
      `${at}: a personal field that is kept needs a retention (GDPR Art. 5(1)(e)), or store: none`,
    );
  if (plan.special && plan.specialCondition === null)
    throw invalid(`${at}: a special-category field needs a specialCondition (GDPR Art. 9(2))`);
  if (plan.specialCondition === 'explicit_consent' && plan.lawfulBasis !== 'consent')
    throw invalid(`${at}: specialCondition explicit_consent needs lawfulBasis consent (GDPR Art. 9(2)(a))`);
  if (plan.personal && plan.transform === 'none' && plan.uses !== null)
    throw invalid(
      `${at}: transform none on a personal field would give the clear value to every consumer: omit uses or choose a transform`,
    );
}

function checkTransform(doc: DataSchema, path: string, plan: FieldPlan): void {
  const at = `fields.${path}`;
  const t = plan.transform;
  if (typeof t === 'string') return;
  const types = statedTypes(schemaNodeAt(doc.schema, path));
  const g = t.generalise;
  const numeric = (ts: string[] | undefined) => !ts || ts.some((x) => x === 'number' || x === 'integer');
  if ('grid' in g || 'step' in g) {
    if (!numeric(types))
      throw invalid(`${at}: a ${'grid' in g ? 'grid' : 'step'} generalisation needs a number field`);
  } else if (types && !types.some((x) => x === 'number' || x === 'integer' || x === 'string')) {
    throw invalid(`${at}: a bucket generalisation needs a timestamp (a number or an ISO 8601 string)`);
  }
  if ('grid' in g && g.axis === 'longitude') {
    const lat = g.latitudeField ?? '';
    const latField = doc.fields[lat];
    const latTransform = latField?.transform;
    const isLatGrid =
      typeof latTransform === 'object' &&
      'grid' in latTransform.generalise &&
      latTransform.generalise.axis === 'latitude';
    if (!Object.hasOwn(doc.fields, lat) || !isLatGrid)
      throw invalid(`${at}: latitudeField ${lat} must be a classified field with a latitude grid`);
  }
}

function checkSubject(doc: DataSchema): void {
  const field = doc.subject.field;
  if (field === undefined) return;
  if (!Object.hasOwn(doc.fields, field))
    throw invalid(`subject.field: ${field} must be a classified field (e.g. category user.unique_id)`);
  const types = statedTypes(schemaNodeAt(doc.schema, field));
  if (types && !types.includes('string'))
    throw invalid(`subject.field: ${field} must be a string in the schema`);
}

/**
 * Validates a document (already parsed from YAML/JSON): zod structure, MQTT filter, ajv compiles the JSON
 * Schema, classification rules. Throws BulwarkError('validation', message naming the field and rule).
 */
export function parseDataSchema(input: unknown): DataSchema {
  const parsed = dataSchemaDocumentSchema.safeParse(input);
  if (!parsed.success) throw invalid(zodMessage(parsed.error.issues));
  const doc = parsed.data;
  const topicProblem = topicFilterProblem(doc.topic);
  if (topicProblem) throw invalid(`topic: ${topicProblem}`);
  checkRoot(doc.schema);
  checkPaths(doc);
  checkCoverage(doc.schema, '', doc.fields);
  for (const [path, field] of Object.entries(doc.fields)) {
    const plan = fieldPlan(path, field);
    checkLawfulness(path, plan);
    checkTransform(doc, path, plan);
  }
  checkSubject(doc);
  return doc;
}

// ---------------------------------------------------------------------------------------------------------
// Changes

/** A transform in words: `drop`, `generalise grid 1000 m latitude`, `generalise bucket 1h`, `generalise step 5`. */
export function describeTransform(t: FieldTransform): string {
  if (typeof t === 'string') return t;
  const g = t.generalise;
  if ('grid' in g)
    return `generalise grid ${g.grid} m ${g.axis}${g.latitudeField ? ` at ${g.latitudeField}` : ''}`;
  if ('bucket' in g) return `generalise bucket ${g.bucket}${g.unit ? ` (${g.unit})` : ''}`;
  return `generalise step ${g.step}`;
}

const planText: Record<Exclude<keyof FieldPlan, 'path'>, (p: FieldPlan) => string> = {
  category: (p) => p.category,
  personal: (p) => String(p.personal),
  special: (p) => String(p.special),
  specialCondition: (p) => p.specialCondition ?? '-',
  uses: (p) => (p.uses ? p.uses.join(', ') || '(none)' : 'every consumer'),
  lawfulBasis: (p) => p.lawfulBasis ?? '-',
  retentionMs: (p) => (p.retentionMs === null ? '-' : `${p.retentionMs} ms`),
  transform: (p) => describeTransform(p.transform),
  store: (p) => p.store,
  quasiIdentifier: (p) => String(p.quasiIdentifier),
  description: (p) => (p.description === null ? '-' : 'text'),
};

function fieldChanges(path: string, old: DataField, now: DataField): string[] {
  const a = fieldPlan(path, old);
  const b = fieldPlan(path, now);
  const fields = [old, now] as const;
  const lines: string[] = [];
  for (const [key, text] of Object.entries(planText)) {
    const before = key === 'retentionMs' ? (fields[0].retention ?? '-') : text(a);
    const after = key === 'retentionMs' ? (fields[1].retention ?? '-') : text(b);
    const changed = key === 'retentionMs' ? a.retentionMs !== b.retentionMs : before !== after;
    const name = key === 'retentionMs' ? 'retention' : key;
    if (key === 'description' && a.description !== b.description)
      lines.push(`field ${path}: description changed`);
    else if (changed && key !== 'description') lines.push(`field ${path}: ${name} ${before} → ${after}`);
  }
  return lines;
}

/** What differs between two versions, as short lines ("field lat: transform drop → generalise …"). */
export function schemaChanges(before: DataSchema | undefined, after: DataSchema): string[] {
  const fieldCount = Object.keys(after.fields).length;
  if (!before) return [`created: topic ${after.topic}, ${fieldCount} field${fieldCount === 1 ? '' : 's'}`];
  const lines: string[] = [];
  if (before.topic !== after.topic) lines.push(`topic ${before.topic} → ${after.topic}`);
  if ((before.description ?? null) !== (after.description ?? null)) lines.push('description changed');
  if (before.subject.field !== after.subject.field)
    lines.push(`subject field ${before.subject.field ?? '-'} → ${after.subject.field ?? '-'}`);
  if (before.subject.kind !== after.subject.kind)
    lines.push(`subject kind ${before.subject.kind} → ${after.subject.kind}`);
  if (JSON.stringify(before.schema) !== JSON.stringify(after.schema)) lines.push('JSON Schema changed');
  for (const [path, field] of Object.entries(after.fields)) {
    const old = before.fields[path];
    if (!old) lines.push(`field ${path} added (${field.category})`);
    else lines.push(...fieldChanges(path, old, field));
  }
  for (const path of Object.keys(before.fields)) {
    if (!Object.hasOwn(after.fields, path)) lines.push(`field ${path} removed`);
  }
  return lines;
}
