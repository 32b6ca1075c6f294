import { randomBytes } from 'node:crypto';
import { BulwarkError, type DataSchema } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import { isUniqueViolation, type PrivacySchemasTable } from '../store/index.ts';
import { fieldPlans, parseDataSchema, schemaChanges, type FieldPlan } from './data-schema.ts';
import type { DataKey, PseudonymKey } from './keys.ts';
import type { PrivacyContext } from './privacy.context.ts';
import { consentOf } from './privacy.live.ts';
import * as store from './privacy.store.ts';
import { compileDataSchema, schemaMatcher, type CompiledSchema } from './transforms.ts';

/** A field's effective settings as shown (a plain copy of its plan). */
export type FieldPlanView = Omit<FieldPlan, 'uses'> & { uses: string[] | null };

/** A data schema as the API and the CLI show it: the document with its effective per-field settings. */
export interface DataSchemaView {
  name: string;
  topic: string;
  version: number;
  document: DataSchema;
  fields: FieldPlanView[];
  createdAt: number;
  updatedAt: number;
  updatedBy: string;
}

function viewOf(row: PrivacySchemasTable): DataSchemaView {
  const document = store.storedSchema(row);
  return {
    name: row.name,
    topic: row.topic,
    version: Number(row.version),
    document,
    fields: fieldPlans(document).map((f) => ({ ...f, uses: f.uses && [...f.uses] })),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    updatedBy: row.updated_by,
  };
}

const topicTaken = (topic: string, other: string) =>
  new BulwarkError('conflict', `topic ${topic} already has the data schema ${other}: one schema per topic`);

export async function listSchemas(ctx: PrivacyContext): Promise<DataSchemaView[]> {
  return (await store.listSchemaRows(ctx.db)).map(viewOf);
}

export async function getSchema(ctx: PrivacyContext, name: string): Promise<DataSchemaView> {
  const row = await store.getSchemaRow(ctx.db, name);
  if (!row) throw new BulwarkError('not_found', `no data schema ${name}`);
  return viewOf(row);
}

/**
 * Stores a data schema (a new one, or the next version of one by that name), committed with its
 * `privacy.schema_set` event listing what changed. A document equal to the stored one changes nothing.
 */
export async function putSchema(
  ctx: PrivacyContext,
  input: unknown,
  actor: string,
): Promise<{ schema: DataSchemaView; created: boolean; changes: string[] }> {
  const schema = parseDataSchema(input);
  const document = JSON.stringify(schema);
  const result = await ctx.events
    .atomically(async (tx, emit) => {
      const existing = await store.getSchemaRow(tx, schema.name);
      const sameTopic = await store.schemaRowOfTopic(tx, schema.topic);
      if (sameTopic && sameTopic.name !== schema.name) throw topicTaken(schema.topic, sameTopic.name);
      const before = existing ? store.storedSchema(existing) : undefined;
      const changes = schemaChanges(before, schema);
      if (existing && existing.document === document) return { created: false, changes: [] };
      const t = ctx.now();
      const version = existing ? Number(existing.version) + 1 : 1;
      const row: PrivacySchemasTable = {
        name: schema.name,
        topic: schema.topic,
        version,
        document,
        created_at: existing ? Number(existing.created_at) : t,
        updated_at: t,
        updated_by: actor,
      };
      if (!existing) await store.insertSchema(tx, row);
      else if (!(await store.updateSchema(tx, row, Number(existing.version))))
        throw new BulwarkError('conflict', `data schema ${schema.name} changed meanwhile: try again`);
      const plans = fieldPlans(schema);
      emit({
        type: 'privacy.schema_set',
        actor,
        subject: subjectOf.data_schema(schema.name),
        data: {
          name: schema.name,
          topic: schema.topic,
          version,
          fields: plans.length,
          personal: plans.filter((f) => f.personal).length,
          changes,
        },
      });
      return { created: !existing, changes };
    })
    .catch(async (err: unknown) => {
      if (!isUniqueViolation(err)) throw err;
      // Another writer took the name or the topic between the check and the insert.
      const other = await store.schemaRowOfTopic(ctx.db, schema.topic);
      if (other && other.name !== schema.name) throw topicTaken(schema.topic, other.name);
      throw new BulwarkError('conflict', `data schema ${schema.name} changed meanwhile: try again`);
    });
  return { schema: await getSchema(ctx, schema.name), ...result };
}

export async function removeSchema(
  ctx: PrivacyContext,
  name: string,
  actor: string,
): Promise<{ name: string; topic: string }> {
  return ctx.events.atomically(async (tx, emit) => {
    const row = await store.getSchemaRow(tx, name);
    if (!row || !(await store.deleteSchema(tx, name)))
      throw new BulwarkError('not_found', `no data schema ${name}`);
    emit({
      type: 'privacy.schema_removed',
      actor,
      subject: subjectOf.data_schema(name),
      data: { name, topic: row.topic },
    });
    return { name, topic: row.topic };
  });
}

export interface SchemaTest {
  topic: string;
  /** The payload as the device would send it. */
  payload: string;
  /** The consumer's purpose (an app's fideslang data use); null or omitted: a device, no purpose. */
  purpose?: string | null | undefined;
  /** The publishing device (its linked subject when the payload names none). */
  device?: string | undefined;
}

export interface SchemaTestResult {
  /** The schema the topic matches, null when none. */
  schema: string | null;
  valid: boolean;
  /** Why the payload is refused, or why the consumer would receive nothing. */
  reason?: string;
  subject: string | null;
  /** What the telemetry store and retained messages would keep (null: nothing). */
  kept: unknown;
  /** What the consumer would receive (null: nothing). */
  view: unknown;
  /** Set when the schema pseudonymises or encrypts: the test's tokens come from throwaway keys. */
  note?: string;
}

const THROWAWAY_KEYS_NOTE =
  'pseudonyms and encrypted values are made with throwaway keys: they differ from what the broker keeps and delivers';

const parsedOrText = (payload: string): unknown => {
  try {
    return JSON.parse(payload) as unknown;
  } catch {
    return payload;
  }
};

/** The stored schemas compiled (not the live set: a test shows what is stored, in any process). */
async function matchStored(ctx: PrivacyContext, topic: string): Promise<CompiledSchema | undefined> {
  const rows = await store.listSchemaRows(ctx.db);
  return schemaMatcher(rows.map((r) => compileDataSchema(store.storedSchema(r)))).match(topic);
}

/** Whom a valid payload is about: its subject field, else the device's one linked person. */
async function subjectFor(
  ctx: PrivacyContext,
  named: string | undefined | { error: string },
  device: string | undefined,
): Promise<string | null | { error: string }> {
  if (named !== undefined) return named;
  if (device === undefined) return null;
  const linked = await store.subjectsLinkedTo(ctx.db, { kind: 'device', ref: device });
  return linked.length === 1 ? (linked[0] ?? null) : null;
}

/** Why a subject's message is withheld from a purpose (restriction, withdrawn consent), if it is. */
async function withheldFor(
  ctx: PrivacyContext,
  subject: string,
  purpose: string | null,
): Promise<{ reason?: string; consented: boolean }> {
  const row = await store.getSubjectRow(ctx.db, subject);
  if (row?.restricted_at !== null && row?.restricted_at !== undefined)
    return { reason: 'withheld: the subject is restricted (GDPR Art. 18)', consented: false };
  if (purpose === null) return { consented: false };
  const consents = new Map((await store.consentsOf(ctx.db, subject)).map((c) => [c.purpose, c.status]));
  const status = consentOf(consents, purpose);
  if (status === 'withdrawn')
    return { reason: `withheld: the subject withdrew consent for ${purpose}`, consented: false };
  return { consented: status === 'given' };
}

/**
 * What the broker would do with a payload on a topic: refused (and why), or what is kept and what a
 * consumer of the given purpose receives. Encrypted and pseudonymised fields use throwaway keys (no subject
 * key is made; the current pseudonym key is never used): with privacy:read alone, the test must not compute
 * the pseudonym of a candidate id and so map stored or exported pseudonyms back to people.
 */
export async function testSchema(ctx: PrivacyContext, input: SchemaTest): Promise<SchemaTestResult> {
  const compiled = await matchStored(ctx, input.topic);
  if (!compiled) {
    const value = parsedOrText(input.payload);
    return { schema: null, valid: true, subject: null, kept: value, view: value };
  }
  const refused = (reason: string): SchemaTestResult => ({
    schema: compiled.name,
    valid: false,
    reason,
    subject: null,
    kept: null,
    view: null,
  });
  const checked = compiled.check(input.payload);
  if (!checked.ok) return refused(checked.reason);
  const subject = await subjectFor(ctx, compiled.subjectOf(checked.value), input.device);
  if (subject !== null && typeof subject === 'object') return refused(subject.error);
  const purpose = input.purpose ?? null;
  const withheld = subject === null ? { consented: false } : await withheldFor(ctx, subject, purpose);
  const key: DataKey | null = compiled.encrypts ? { id: 'test', key: randomBytes(32) } : null;
  const pseudonymKey: PseudonymKey | null = compiled.pseudonymises
    ? { period: Math.floor(ctx.now() / ctx.settings.pseudonymKeyPeriodMs), key: randomBytes(32) }
    : null;
  const message = { value: checked.value, subject, key, pseudonymKey };
  const view = withheld.reason ? null : compiled.view(message, { purpose, consented: withheld.consented });
  return {
    schema: compiled.name,
    valid: true,
    ...(withheld.reason ? { reason: withheld.reason } : {}),
    subject,
    kept: compiled.kept(message),
    view,
    ...(key !== null || pseudonymKey !== null ? { note: THROWAWAY_KEYS_NOTE } : {}),
  };
}
