import { dataSchemaDocumentSchema, type DataSchema } from '@bulwark/protocol';
import type {
  DbOrTx,
  PrivacyConsentsTable,
  PrivacyRequestsTable,
  PrivacySchemasTable,
  PrivacySubjectLinksTable,
  PrivacySubjectsTable,
} from '../store/index.ts';

/**
 * The privacy module's tables (privacy_schemas, privacy_subjects, privacy_subject_links, privacy_consents,
 * privacy_requests; the key tables are keys.ts's): queries only, each taking the database or transaction
 * first. Times are epoch ms; bigint columns read back as strings on PostgreSQL, so callers map rows with
 * Number() at the boundary (see the `*Of` mappers below).
 */

export type LinkKind = PrivacySubjectLinksTable['link_kind'];
export type ConsentStatus = PrivacyConsentsTable['status'];
export type RequestStatus = PrivacyRequestsTable['status'];

const num = (v: number | string | bigint | null): number | null => (v === null ? null : Number(v));

// --- data schemas ---------------------------------------------------------------------------------------

/** A stored document (validated when it was put): its structure and defaults, without recompiling its JSON Schema. */
export function storedSchema(row: PrivacySchemasTable): DataSchema {
  return dataSchemaDocumentSchema.parse(JSON.parse(row.document));
}

export async function listSchemaRows(q: DbOrTx): Promise<PrivacySchemasTable[]> {
  return q.selectFrom('privacy_schemas').selectAll().orderBy('name').execute();
}

export async function getSchemaRow(q: DbOrTx, name: string): Promise<PrivacySchemasTable | undefined> {
  return q.selectFrom('privacy_schemas').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function schemaRowOfTopic(q: DbOrTx, topic: string): Promise<PrivacySchemasTable | undefined> {
  return q.selectFrom('privacy_schemas').selectAll().where('topic', '=', topic).executeTakeFirst();
}

export async function insertSchema(q: DbOrTx, row: PrivacySchemasTable): Promise<void> {
  await q.insertInto('privacy_schemas').values(row).execute();
}

/** Updates a schema at its expected version (optimistic: false when another writer got there first). */
export async function updateSchema(
  q: DbOrTx,
  row: PrivacySchemasTable,
  expectedVersion: number,
): Promise<boolean> {
  const res = await q
    .updateTable('privacy_schemas')
    .set({
      topic: row.topic,
      version: row.version,
      document: row.document,
      updated_at: row.updated_at,
      updated_by: row.updated_by,
    })
    .where('name', '=', row.name)
    .where('version', '=', expectedVersion)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

export async function deleteSchema(q: DbOrTx, name: string): Promise<boolean> {
  const res = await q.deleteFrom('privacy_schemas').where('name', '=', name).executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

// --- data subjects --------------------------------------------------------------------------------------

export interface SubjectRecord {
  id: string;
  kind: string;
  createdAt: number;
  updatedAt: number;
  restrictedAt: number | null;
}

export function subjectOfRow(row: PrivacySubjectsTable): SubjectRecord {
  return {
    id: row.id,
    kind: row.kind,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    restrictedAt: num(row.restricted_at),
  };
}

export async function getSubjectRow(q: DbOrTx, id: string): Promise<PrivacySubjectsTable | undefined> {
  return q.selectFrom('privacy_subjects').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Subjects in id order, after `after` (exclusive). */
export async function listSubjectRows(
  q: DbOrTx,
  page: { after?: string | undefined; limit: number },
): Promise<PrivacySubjectsTable[]> {
  let query = q.selectFrom('privacy_subjects').selectAll().orderBy('id').limit(page.limit);
  if (page.after !== undefined) query = query.where('id', '>', page.after);
  return query.execute();
}

export async function insertSubject(q: DbOrTx, row: PrivacySubjectsTable): Promise<void> {
  await q.insertInto('privacy_subjects').values(row).execute();
}

export async function touchSubject(
  q: DbOrTx,
  id: string,
  change: { updatedAt: number; restrictedAt?: number | null },
): Promise<void> {
  await q
    .updateTable('privacy_subjects')
    .set({
      updated_at: change.updatedAt,
      ...(change.restrictedAt !== undefined ? { restricted_at: change.restrictedAt } : {}),
    })
    .where('id', '=', id)
    .execute();
}

/** Ids of the subjects under restriction (GDPR Art. 18). */
export async function restrictedSubjectIds(q: DbOrTx): Promise<string[]> {
  const rows = await q
    .selectFrom('privacy_subjects')
    .select('id')
    .where('restricted_at', 'is not', null)
    .execute();
  return rows.map((r) => r.id);
}

/** Deletes a subject with its links and consents; its requests stay, without the subject's id. */
export async function deleteSubject(q: DbOrTx, id: string): Promise<{ links: number; consents: number }> {
  const links = await q.deleteFrom('privacy_subject_links').where('subject_id', '=', id).executeTakeFirst();
  const consents = await q.deleteFrom('privacy_consents').where('subject_id', '=', id).executeTakeFirst();
  await q.updateTable('privacy_requests').set({ subject_id: null }).where('subject_id', '=', id).execute();
  await q.deleteFrom('privacy_subjects').where('id', '=', id).execute();
  return { links: Number(links.numDeletedRows), consents: Number(consents.numDeletedRows) };
}

// --- links ----------------------------------------------------------------------------------------------

export async function linksOf(q: DbOrTx, subjectId: string): Promise<PrivacySubjectLinksTable[]> {
  return q
    .selectFrom('privacy_subject_links')
    .selectAll()
    .where('subject_id', '=', subjectId)
    .orderBy('link_kind')
    .orderBy('ref')
    .execute();
}

export async function allLinks(q: DbOrTx, kind?: LinkKind): Promise<PrivacySubjectLinksTable[]> {
  let query = q.selectFrom('privacy_subject_links').selectAll();
  if (kind !== undefined) query = query.where('link_kind', '=', kind);
  return query.execute();
}

/** The subjects linked to one device or user. */
export async function subjectsLinkedTo(q: DbOrTx, link: { kind: LinkKind; ref: string }): Promise<string[]> {
  const rows = await q
    .selectFrom('privacy_subject_links')
    .select('subject_id')
    .where('link_kind', '=', link.kind)
    .where('ref', '=', link.ref)
    .orderBy('subject_id')
    .execute();
  return rows.map((r) => r.subject_id);
}

/** Adds a link; false when it exists already. */
export async function insertLink(q: DbOrTx, row: PrivacySubjectLinksTable): Promise<boolean> {
  const res = await q
    .insertInto('privacy_subject_links')
    .values(row)
    .onConflict((oc) => oc.columns(['subject_id', 'link_kind', 'ref']).doNothing())
    .executeTakeFirst();
  return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Removes a link; false when there was none. */
export async function deleteLink(
  q: DbOrTx,
  link: { subjectId: string; kind: LinkKind; ref: string },
): Promise<boolean> {
  const res = await q
    .deleteFrom('privacy_subject_links')
    .where('subject_id', '=', link.subjectId)
    .where('link_kind', '=', link.kind)
    .where('ref', '=', link.ref)
    .executeTakeFirst();
  return Number(res.numDeletedRows) > 0;
}

// --- consents -------------------------------------------------------------------------------------------

export interface ConsentRecord {
  purpose: string;
  noticeVersion: string;
  status: ConsentStatus;
  createdAt: number;
  updatedAt: number;
}

export function consentOfRow(row: PrivacyConsentsTable): ConsentRecord {
  return {
    purpose: row.purpose,
    noticeVersion: row.notice_version,
    status: row.status === 'given' ? 'given' : 'withdrawn',
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export async function consentsOf(q: DbOrTx, subjectId: string): Promise<PrivacyConsentsTable[]> {
  return q
    .selectFrom('privacy_consents')
    .selectAll()
    .where('subject_id', '=', subjectId)
    .orderBy('purpose')
    .execute();
}

export async function allConsents(q: DbOrTx): Promise<PrivacyConsentsTable[]> {
  return q.selectFrom('privacy_consents').selectAll().execute();
}

export async function getConsentRow(
  q: DbOrTx,
  key: { subjectId: string; purpose: string },
): Promise<PrivacyConsentsTable | undefined> {
  return q
    .selectFrom('privacy_consents')
    .selectAll()
    .where('subject_id', '=', key.subjectId)
    .where('purpose', '=', key.purpose)
    .executeTakeFirst();
}

export async function upsertConsent(q: DbOrTx, row: PrivacyConsentsTable): Promise<void> {
  await q
    .insertInto('privacy_consents')
    .values(row)
    .onConflict((oc) =>
      oc.columns(['subject_id', 'purpose']).doUpdateSet({
        notice_version: row.notice_version,
        status: row.status,
        updated_at: row.updated_at,
      }),
    )
    .execute();
}

// --- requests -------------------------------------------------------------------------------------------

export interface RequestRecord {
  id: string;
  subject: string | null;
  kind: PrivacyRequestsTable['kind'];
  status: RequestStatus;
  receivedAt: number;
  dueAt: number;
  completedAt: number | null;
  overdueAt: number | null;
  /** Counts per module (never the data). */
  result: Record<string, number> | null;
  note: string | null;
  createdBy: string;
}

export function requestOfRow(row: PrivacyRequestsTable): RequestRecord {
  return {
    id: row.id,
    subject: row.subject_id,
    kind: row.kind,
    status: row.status,
    receivedAt: Number(row.received_at),
    dueAt: Number(row.due_at),
    completedAt: num(row.completed_at),
    overdueAt: num(row.overdue_at),
    result: row.result === null ? null : (JSON.parse(row.result) as Record<string, number>),
    note: row.note,
    createdBy: row.created_by,
  };
}

export async function insertRequest(q: DbOrTx, row: PrivacyRequestsTable): Promise<void> {
  await q.insertInto('privacy_requests').values(row).execute();
}

export async function getRequestRow(q: DbOrTx, id: string): Promise<PrivacyRequestsTable | undefined> {
  return q.selectFrom('privacy_requests').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Requests, newest first. */
export async function listRequestRows(
  q: DbOrTx,
  filter: { status?: RequestStatus | undefined; subjectId?: string | undefined; limit?: number | undefined },
): Promise<PrivacyRequestsTable[]> {
  let query = q.selectFrom('privacy_requests').selectAll().orderBy('received_at', 'desc').orderBy('id');
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.subjectId !== undefined) query = query.where('subject_id', '=', filter.subjectId);
  if (filter.limit !== undefined) query = query.limit(filter.limit);
  return query.execute();
}

/** Open requests past their deadline not yet marked overdue. */
export async function overdueRequestRows(q: DbOrTx, now: number): Promise<PrivacyRequestsTable[]> {
  return q
    .selectFrom('privacy_requests')
    .selectAll()
    .where('status', '=', 'open')
    .where('due_at', '<', now)
    .where('overdue_at', 'is', null)
    .orderBy('due_at')
    .execute();
}

export async function updateRequest(
  q: DbOrTx,
  id: string,
  change: Partial<Pick<PrivacyRequestsTable, 'status' | 'completed_at' | 'overdue_at' | 'result' | 'note'>>,
): Promise<boolean> {
  const res = await q.updateTable('privacy_requests').set(change).where('id', '=', id).executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}

/** Marks a request overdue once (false when another process marked it first). */
export async function markOverdue(q: DbOrTx, id: string, at: number): Promise<boolean> {
  const res = await q
    .updateTable('privacy_requests')
    .set({ overdue_at: at })
    .where('id', '=', id)
    .where('overdue_at', 'is', null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows) > 0;
}
