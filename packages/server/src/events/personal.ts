import { randomBytes } from 'node:crypto';
import type { AuditLogTable, Db, DbOrTx, Tx } from '../store/index.ts';
import { personalFieldsOf, type AuditEntry } from './event-types.ts';
import { canonicalJson } from './jcs.ts';
import type { ChainItem } from './outbox.ts';
import { parseActor, parseSubject, subjectOf } from './subject.ts';

/**
 * Personal data in the audit log, kept erasable without breaking the hash chain (GDPR Art. 17 beside a
 * tamper-evident log). The chain hashes what the row holds, so the row never holds the personal value itself:
 *
 * - an actor or subject of kind `user` or `person` is stored as `<kind>:~<ref>`;
 * - a data field the catalog declares personal (`EventMeta.personal`) is stored as `{"$personal":"<ref>"}`;
 * - `audit_personal` maps each ref to its owner and its value (canonical JSON). Erasing an owner deletes those
 *   rows: the entries still verify (they never changed) and read `user:[erased]`, `"[erased]"`.
 *
 * A ref is random (16 bytes) and reused for the same (owner, value), so a user's entries keep one actor value.
 */

/** What an erased value reads as. */
export const ERASED = '[erased]';
const SEALED_MARK = '~';
const PERSONAL_KEY = '$personal';
/** Pairs per lookup statement (two bound values each; far below every dialect's limit). */
const PAIR_CHUNK = 200;
const REF_CHUNK = 500;

type PersonalKind = 'user' | 'person';

/** A value to seal: whose it is (what erasure names) and the value as canonical JSON. */
interface Seal {
  owner: string;
  value: string;
}

/** A `user:` or `person:` string: clear (to seal), sealed (its ref) or already erased. */
function personalStringOf(value: string | null): { kind: PersonalKind; id: string } | undefined {
  const subject = parseSubject(value);
  if (subject?.kind !== 'user' && subject?.kind !== 'person') return undefined;
  return { kind: subject.kind, id: subject.id };
}

/** What a stored row holds for a sealed or erased value: as written by a client, it means something else. */
const looksSealed = (id: string) => id.startsWith(SEALED_MARK) || id === ERASED;

/**
 * The owner of a personal string: the user for every form of a user actor (an API token acts as
 * `user:<name>/token:<id>`, authz/scope.ts; usernames never hold a `/`), else the string itself.
 */
function ownerOfPersonal(kind: PersonalKind, id: string, value: string): string {
  if (kind === 'person') return value;
  const slash = id.indexOf('/');
  return slash < 0 ? value : subjectOf.user(id.slice(0, slash));
}

/** The owner of a stored actor or subject, if it names a user, a person or a device (clear). */
function ownerOf(value: string | null, role: 'actor' | 'subject'): string | undefined {
  if (value === null) return undefined;
  const personal = personalStringOf(value);
  if (personal) return ownerOfPersonal(personal.kind, personal.id, value);
  if (role === 'actor') {
    const actor = parseActor(value);
    return actor.kind === 'device' ? subjectOf.device(actor.id) : undefined;
  }
  return parseSubject(value)?.kind === 'device' ? value : undefined;
}

/**
 * An actor or subject to seal (every `user:`/`person:` string), with its seal. One that already looks sealed
 * (`user:~<ref>`, `user:[erased]`) is sealed too: items to append are always events as they happened (never
 * re-appended from stored rows), so such a string is a name someone typed (a sign-in as `~<ref>`), and stored
 * as is it would read back as another user.
 */
function stringSeal(value: string | null) {
  const personal = value === null ? undefined : personalStringOf(value);
  if (!value || !personal) return undefined;
  const seal: Seal = {
    owner: ownerOfPersonal(personal.kind, personal.id, value),
    value: JSON.stringify(value),
  };
  return { kind: personal.kind, seal };
}

type JsonObject = Record<string, unknown>;
const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where a dotted path ends in `root`: the object holding the last key, when every step is an object. */
function slotOf(root: JsonObject, path: string): { parent: JsonObject; key: string } | undefined {
  const keys = path.split('.');
  const key = keys.pop();
  let parent: unknown = root;
  for (const k of keys) parent = isObject(parent) && Object.hasOwn(parent, k) ? parent[k] : undefined;
  if (key === undefined || !isObject(parent) || !Object.hasOwn(parent, key)) return undefined;
  return { parent, key };
}

interface FieldSeal {
  parent: JsonObject;
  key: string;
  seal: Seal;
}

/**
 * The declared personal fields present in the data (null and an empty list carry nothing personal: left as
 * they are). A list (the user names linked to a person) is sealed whole, as one value.
 */
function fieldSeals(item: ChainItem, paths: readonly string[]) {
  const owner = ownerOf(item.subject, 'subject') ?? ownerOf(item.actor, 'actor');
  // Nobody to erase it for (`system`, `anonymous@<address>`): sealing would only hide it from readers.
  if (owner === undefined) return undefined;
  const root: unknown = JSON.parse(item.dataJson);
  if (!isObject(root)) return undefined;
  const fields: FieldSeal[] = [];
  for (const path of paths) {
    const slot = slotOf(root, path);
    const value = slot?.parent[slot.key];
    if (!slot || value === null || value === undefined || (Array.isArray(value) && value.length === 0))
      continue;
    fields.push({ ...slot, seal: { owner, value: canonicalJson(value) ?? 'null' } });
  }
  return fields.length ? { root, fields } : undefined;
}

interface Plan {
  actor: ReturnType<typeof stringSeal>;
  subject: ReturnType<typeof stringSeal>;
  data: ReturnType<typeof fieldSeals>;
}

/** What of an item is sealed; undefined when nothing is (the common case costs two parses of short strings). */
function planOf(item: ChainItem): Plan | undefined {
  const actor = stringSeal(item.actor);
  const subject = stringSeal(item.subject);
  const paths = personalFieldsOf(item.type);
  const data = paths.length ? fieldSeals(item, paths) : undefined;
  return actor || subject || data ? { actor, subject, data } : undefined;
}

function sealsOf(plan: Plan): Seal[] {
  const seals = plan.data?.fields.map((f) => f.seal) ?? [];
  if (plan.actor) seals.push(plan.actor.seal);
  if (plan.subject) seals.push(plan.subject.seal);
  return seals;
}

const keyOf = (s: Seal) => `${s.owner}\u0000${s.value}`;

async function readRefs(tx: Tx, seals: readonly Seal[], into: Map<string, string>): Promise<void> {
  for (let i = 0; i < seals.length; i += PAIR_CHUNK) {
    const chunk = seals.slice(i, i + PAIR_CHUNK);
    const rows = await tx
      .selectFrom('audit_personal')
      .select(['ref', 'owner', 'value'])
      .where((eb) => eb.or(chunk.map((s) => eb.and([eb('owner', '=', s.owner), eb('value', '=', s.value)]))))
      .execute();
    for (const r of rows) into.set(keyOf(r), r.ref);
  }
}

/**
 * The refs of the values, inserting those not stored yet. Another node may insert the same (owner, value)
 * at the same time: the insert skips it (waiting for that transaction) and it is read back. Inserted in one
 * order everywhere, so two appends never wait for each other's rows.
 */
async function refsFor(tx: Tx, seals: readonly Seal[], now: number): Promise<Map<string, string>> {
  const unique = [...new Map(seals.map((s) => [keyOf(s), s])).values()];
  const refs = new Map<string, string>();
  await readRefs(tx, unique, refs);
  for (let attempt = 0; attempt < 3; attempt++) {
    const missing = unique.filter((s) => !refs.has(keyOf(s))).sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1));
    if (missing.length === 0) return refs;
    for (let i = 0; i < missing.length; i += REF_CHUNK)
      await tx
        .insertInto('audit_personal')
        .values(
          missing
            .slice(i, i + REF_CHUNK)
            .map((s) => ({ ref: randomBytes(16).toString('hex'), ...s, created_at: now })),
        )
        .onConflict((oc) => oc.columns(['owner', 'value']).doNothing())
        .execute();
    await readRefs(tx, missing, refs);
  }
  throw new Error('audit log: personal values could not be stored (erased while being written)');
}

function refOf(refs: ReadonlyMap<string, string>, seal: Seal): string {
  const ref = refs.get(keyOf(seal));
  if (ref === undefined) throw new Error('audit log: a personal value has no ref');
  return ref;
}

function sealedItem(item: ChainItem, plan: Plan, refs: ReadonlyMap<string, string>): ChainItem {
  const sealed = { ...item };
  if (plan.actor) sealed.actor = subjectOf[plan.actor.kind](SEALED_MARK + refOf(refs, plan.actor.seal));
  if (plan.subject)
    sealed.subject = subjectOf[plan.subject.kind](SEALED_MARK + refOf(refs, plan.subject.seal));
  if (plan.data) {
    for (const f of plan.data.fields) f.parent[f.key] = { [PERSONAL_KEY]: refOf(refs, f.seal) };
    sealed.dataJson = canonicalJson(plan.data.root) ?? '{}';
  }
  return sealed;
}

/** An item as the log stores it (`stored`, hashed) and as it happened (`clear`, for subscribers). */
export interface SealedItem {
  stored: ChainItem;
  clear: ChainItem;
}

/**
 * Seals the items' personal values in the append transaction `tx`. Items without any (device traffic) cost
 * no query.
 */
export async function sealItems(tx: Tx, items: readonly ChainItem[], now: number): Promise<SealedItem[]> {
  const plans = items.map(planOf);
  const seals = plans.flatMap((p) => (p ? sealsOf(p) : []));
  if (seals.length === 0) return items.map((item) => ({ stored: item, clear: item }));
  const refs = await refsFor(tx, seals, now);
  return items.map((item, i) => {
    const plan = plans[i];
    return { stored: plan ? sealedItem(item, plan, refs) : item, clear: item };
  });
}

/** The ref of a sealed actor or subject. */
function sealedRefOf(value: string | null): { kind: PersonalKind; ref: string } | undefined {
  const personal = personalStringOf(value);
  if (!personal?.id.startsWith(SEALED_MARK)) return undefined;
  return { kind: personal.kind, ref: personal.id.slice(SEALED_MARK.length) };
}

function fieldRefOf(value: unknown): string | undefined {
  if (!isObject(value)) return undefined;
  const ref = value[PERSONAL_KEY];
  return typeof ref === 'string' && Object.keys(value).length === 1 ? ref : undefined;
}

/** A stored row, its data parsed, and the refs it holds. */
interface ReadRow {
  row: AuditLogTable;
  data: unknown;
  refs: string[];
}

function readRowOf(row: AuditLogTable): ReadRow {
  const data: unknown = JSON.parse(row.data);
  const refs: string[] = [];
  for (const value of [row.actor, row.subject]) {
    const sealed = sealedRefOf(value);
    if (sealed) refs.push(sealed.ref);
  }
  const paths = personalFieldsOf(row.type);
  if (paths.length && isObject(data) && row.data.includes(`"${PERSONAL_KEY}"`))
    for (const path of paths) {
      const slot = slotOf(data, path);
      const ref = slot && fieldRefOf(slot.parent[slot.key]);
      if (ref !== undefined) refs.push(ref);
    }
  return { row, data, refs };
}

async function valuesOf(q: DbOrTx, refs: readonly string[]): Promise<Map<string, unknown>> {
  const values = new Map<string, unknown>();
  const unique = [...new Set(refs)];
  for (let i = 0; i < unique.length; i += REF_CHUNK) {
    const rows = await q
      .selectFrom('audit_personal')
      .select(['ref', 'value'])
      .where('ref', 'in', unique.slice(i, i + REF_CHUNK))
      .execute();
    for (const r of rows) values.set(r.ref, JSON.parse(r.value) as unknown);
  }
  return values;
}

function unsealString(value: string | null, values: ReadonlyMap<string, unknown>): string | null {
  const sealed = sealedRefOf(value);
  if (!sealed) return value;
  const clear = values.get(sealed.ref);
  return typeof clear === 'string' ? clear : subjectOf[sealed.kind](ERASED);
}

function unsealData(read: ReadRow, values: ReadonlyMap<string, unknown>): unknown {
  if (!isObject(read.data)) return read.data;
  for (const path of personalFieldsOf(read.row.type)) {
    const slot = slotOf(read.data, path);
    const ref = slot && fieldRefOf(slot.parent[slot.key]);
    if (slot && ref !== undefined) slot.parent[slot.key] = values.has(ref) ? values.get(ref) : ERASED;
  }
  return read.data;
}

/** The storage edge: a row's type and data were written from a typed event by `append`. */
function entryOf(read: ReadRow, values: ReadonlyMap<string, unknown>): AuditEntry {
  const { row } = read;
  const sealed = read.refs.length > 0;
  return {
    seq: row.seq,
    ts: row.ts,
    type: row.type,
    actor: sealed ? (unsealString(row.actor, values) ?? row.actor) : row.actor,
    subject: sealed ? unsealString(row.subject, values) : row.subject,
    data: sealed ? unsealData(read, values) : read.data,
    prevHash: row.prev_hash,
    hash: row.hash,
  } as AuditEntry;
}

/** Stored rows as entries with their personal values in the clear (or erased): one lookup per page. */
export async function readEntries(q: DbOrTx, rows: readonly AuditLogTable[]): Promise<AuditEntry[]> {
  const reads = rows.map(readRowOf);
  const refs = reads.flatMap((r) => r.refs);
  const values = refs.length ? await valuesOf(q, refs) : new Map<string, unknown>();
  return reads.map((r) => entryOf(r, values));
}

/**
 * What an actor or subject filter matches in stored rows: a clear `user:`/`person:` string also matches its
 * sealed form (entries written before sealing hold the clear one).
 */
export async function storedFormsOf(q: DbOrTx, value: string): Promise<string[]> {
  const seal = stringSeal(value);
  if (!seal) return [value];
  const row = await q
    .selectFrom('audit_personal')
    .select('ref')
    .where('owner', '=', seal.seal.owner)
    .where('value', '=', seal.seal.value)
    .executeTakeFirst();
  const sealed = row ? subjectOf[seal.kind](SEALED_MARK + row.ref) : undefined;
  // `user:~<ref>` as stored is someone else's sealed value: only its own sealed form matches it (when it has
  // none, a form no append stores: every `~` string is sealed).
  if (looksSealed(personalStringOf(value)?.id ?? '')) return [sealed ?? subjectOf[seal.kind](SEALED_MARK)];
  return sealed ? [value, sealed] : [value];
}

/**
 * Erases the personal values of these owners (`person:<id>`, `user:<name>`, `device:<id>`) from the audit
 * log: their entries stay and still verify, and read `[erased]`. Resolves with how many values were erased.
 */
export async function erasePersonal(db: Db, owners: readonly string[]): Promise<number> {
  const normalized = [...new Set(owners.map((o) => ownerOf(o, 'subject') ?? o))];
  let erased = 0;
  for (let i = 0; i < normalized.length; i += REF_CHUNK) {
    const result = await db
      .deleteFrom('audit_personal')
      .where('owner', 'in', normalized.slice(i, i + REF_CHUNK))
      .executeTakeFirst();
    erased += Number(result.numDeletedRows);
  }
  return erased;
}
