import { BulwarkError, dataSubjectProblem, dataUseProblem, subjectIdPattern } from '@bulwark/protocol';
import { subjectOf, type Subject, type SubjectData } from '../events/index.ts';
import type { Tx } from '../store/index.ts';
import type { PrivacyContext } from './privacy.context.ts';
import * as store from './privacy.store.ts';
import type { ConsentRecord, LinkKind, RequestRecord, SubjectRecord } from './privacy.store.ts';

/**
 * Data subjects (people the fleet's data is about, by the id that data names them with), their devices and
 * user accounts, and their consent per purpose. Every change commits with its event, whose subject is
 * `person:<id>` (sealed in the audit log, so erasing the person erases it there too).
 */

export interface SubjectSummary extends SubjectRecord {
  devices: string[];
  users: string[];
}

export interface SubjectDetail extends SubjectSummary {
  consents: ConsentRecord[];
  requests: RequestRecord[];
}

export interface NewSubject {
  id: string;
  /** fideslang data subject (`customer`, `employee`, …); default `customer`. */
  kind?: string | undefined;
  devices?: readonly string[] | undefined;
  users?: readonly string[] | undefined;
}

export interface SubjectChange {
  addDevices?: readonly string[] | undefined;
  removeDevices?: readonly string[] | undefined;
  addUsers?: readonly string[] | undefined;
  removeUsers?: readonly string[] | undefined;
}

export interface ConsentInput {
  purpose: string;
  /** The version of the notice the person was shown (required when consent is given). */
  noticeVersion?: string | undefined;
  status: 'given' | 'withdrawn';
}

const invalid = (message: string) => new BulwarkError('validation_failed', message);

export function checkSubjectId(id: string): string {
  if (!subjectIdPattern.test(id))
    throw invalid(
      `subject id ${JSON.stringify(id)}: 1-128 characters of A-Z a-z 0-9 _ . @ + -, no : ~ / or spaces`,
    );
  return id;
}

const unique = (values: readonly string[] | undefined) => [...new Set(values ?? [])].sort();

/** Devices and users linked must exist (through their modules' doors, when the platform gives the check). */
async function checkLinks(ctx: PrivacyContext, links: { devices: string[]; users: string[] }): Promise<void> {
  const exists = ctx.exists;
  if (!exists) return;
  for (const device of links.devices)
    if (!(await exists.device(device))) throw new BulwarkError('not_found', `no device ${device}`);
  for (const user of links.users)
    if (!(await exists.user(user))) throw new BulwarkError('not_found', `no user ${user}`);
}

async function requireSubject(ctx: PrivacyContext, q: Tx | PrivacyContext['db'], id: string) {
  const row = await store.getSubjectRow(q, checkSubjectId(id));
  if (!row) throw new BulwarkError('not_found', `no data subject ${id}`);
  return row;
}

async function summaryOf(ctx: PrivacyContext, record: SubjectRecord): Promise<SubjectSummary> {
  const links = await store.linksOf(ctx.db, record.id);
  return {
    ...record,
    devices: links.filter((l) => l.link_kind === 'device').map((l) => l.ref),
    users: links.filter((l) => l.link_kind === 'user').map((l) => l.ref),
  };
}

export async function getSubject(ctx: PrivacyContext, id: string): Promise<SubjectDetail> {
  const row = await requireSubject(ctx, ctx.db, id);
  const [summary, consents, requests] = await Promise.all([
    summaryOf(ctx, store.subjectOfRow(row)),
    store.consentsOf(ctx.db, row.id),
    store.listRequestRows(ctx.db, { subjectId: row.id }),
  ]);
  return {
    ...summary,
    consents: consents.map(store.consentOfRow),
    requests: requests.map(store.requestOfRow),
  };
}

/** Subjects in id order, `limit` at most (1000), after the id `after` (keyset: pass the last id seen). */
export async function listSubjects(
  ctx: PrivacyContext,
  page: { after?: string | undefined; limit: number },
): Promise<SubjectSummary[]> {
  const limit = Math.max(1, Math.min(page.limit, 1000));
  const rows = await store.listSubjectRows(ctx.db, { after: page.after, limit });
  return Promise.all(rows.map((r) => summaryOf(ctx, store.subjectOfRow(r))));
}

export async function addSubject(
  ctx: PrivacyContext,
  input: NewSubject,
  actor: string,
): Promise<SubjectDetail> {
  const id = checkSubjectId(input.id);
  const kind = input.kind ?? 'customer';
  const kindProblem = dataSubjectProblem(kind);
  if (kindProblem) throw invalid(`kind: ${kindProblem}`);
  const links = { devices: unique(input.devices), users: unique(input.users) };
  await checkLinks(ctx, links);
  const t = ctx.now();
  await ctx.events.atomically(async (tx, emit) => {
    if (await store.getSubjectRow(tx, id))
      throw new BulwarkError('conflict', `data subject ${id} exists already`);
    await store.insertSubject(tx, { id, kind, created_at: t, updated_at: t, restricted_at: null });
    for (const ref of links.devices)
      await store.insertLink(tx, { subject_id: id, link_kind: 'device', ref, created_at: t });
    for (const ref of links.users)
      await store.insertLink(tx, { subject_id: id, link_kind: 'user', ref, created_at: t });
    emit({ type: 'privacy.subject_added', actor, subject: subjectOf.person(id), data: { kind, ...links } });
  });
  return getSubject(ctx, id);
}

/** Applies link changes; what actually changed, per list (a link added twice or removed absent is no change). */
async function applyLinks(
  tx: Tx,
  id: string,
  change: { add: Record<LinkKind, string[]>; remove: Record<LinkKind, string[]>; at: number },
): Promise<Record<string, string[]>> {
  const changes: Record<string, string[]> = {};
  const note = (key: string, ref: string) => (changes[key] ??= []).push(ref);
  for (const kind of ['device', 'user'] as const) {
    const plural = kind === 'device' ? 'Devices' : 'Users';
    for (const ref of change.add[kind])
      if (await store.insertLink(tx, { subject_id: id, link_kind: kind, ref, created_at: change.at }))
        note(`add${plural}`, ref);
    for (const ref of change.remove[kind])
      if (await store.deleteLink(tx, { subjectId: id, kind, ref })) note(`remove${plural}`, ref);
  }
  return changes;
}

export async function updateSubject(
  ctx: PrivacyContext,
  { id, change }: { id: string; change: SubjectChange },
  actor: string,
): Promise<SubjectDetail> {
  const add = { device: unique(change.addDevices), user: unique(change.addUsers) };
  const remove = { device: unique(change.removeDevices), user: unique(change.removeUsers) };
  await checkLinks(ctx, { devices: add.device, users: add.user });
  const t = ctx.now();
  await ctx.events.atomically(async (tx, emit) => {
    await requireSubject(ctx, tx, id);
    const changes = await applyLinks(tx, id, { add, remove, at: t });
    if (Object.keys(changes).length === 0) return;
    await store.touchSubject(tx, id, { updatedAt: t });
    emit({ type: 'privacy.subject_updated', actor, subject: subjectOf.person(id), data: { changes } });
  });
  return getSubject(ctx, id);
}

/**
 * Lifts a subject's restriction (GDPR Art. 18(3): the person is told before it is lifted): their data is
 * delivered again as the schemas and consents say. A subject not restricted is no change (no event).
 */
export async function liftRestriction(
  ctx: PrivacyContext,
  id: string,
  actor: string,
): Promise<SubjectDetail> {
  const t = ctx.now();
  await ctx.events.atomically(async (tx, emit) => {
    const row = await requireSubject(ctx, tx, id);
    if (row.restricted_at === null) return;
    await store.touchSubject(tx, id, { updatedAt: t, restrictedAt: null });
    emit({
      type: 'privacy.subject_updated',
      actor,
      subject: subjectOf.person(id),
      data: { changes: { restricted: false } },
    });
  });
  return getSubject(ctx, id);
}

/**
 * Records a subject's consent for a purpose (given with the notice version shown, or withdrawn): the
 * current record per purpose is kept here, its history in the audit log. Withdrawal stops delivery of the
 * subject's data to consumers of that purpose (and the purposes below it).
 */
export async function setConsent(
  ctx: PrivacyContext,
  { id, ...input }: ConsentInput & { id: string },
  actor: string,
): Promise<ConsentRecord> {
  const purposeProblem = dataUseProblem(input.purpose);
  if (purposeProblem) throw invalid(`purpose: ${purposeProblem}`);
  const notice = input.noticeVersion?.trim();
  if (notice !== undefined && (notice.length === 0 || notice.length > 64))
    throw invalid('noticeVersion: 1-64 characters');
  if (input.status === 'given' && !notice) throw invalid('noticeVersion is required when consent is given');
  const t = ctx.now();
  await ctx.events.atomically(async (tx, emit) => {
    await requireSubject(ctx, tx, id);
    const previous = await store.getConsentRow(tx, { subjectId: id, purpose: input.purpose });
    const noticeVersion = notice ?? previous?.notice_version ?? 'unspecified';
    await store.upsertConsent(tx, {
      subject_id: id,
      purpose: input.purpose,
      notice_version: noticeVersion,
      status: input.status,
      created_at: previous ? Number(previous.created_at) : t,
      updated_at: t,
    });
    await store.touchSubject(tx, id, { updatedAt: t });
    emit({
      type: input.status === 'given' ? 'privacy.consent_given' : 'privacy.consent_withdrawn',
      actor,
      subject: subjectOf.person(id),
      data: { purpose: input.purpose, noticeVersion },
    });
  });
  const row = await store.getConsentRow(ctx.db, { subjectId: id, purpose: input.purpose });
  if (!row) throw new BulwarkError('conflict', `data subject ${id} was erased meanwhile`);
  return store.consentOfRow(row);
}

/**
 * The privacy module's part of a data-subject request (module `privacy`): the subject, its links, consents
 * and the requests naming it. Erasure deletes the subject with its links and consents; its requests stay,
 * without its id (the record of what was done).
 */
export function privacySubjectData(ctx: PrivacyContext): SubjectData {
  async function exportSubject(subject: Subject): Promise<Record<string, unknown>[]> {
    if (subject.kind !== 'person') return [];
    const row = await store.getSubjectRow(ctx.db, subject.id);
    if (!row) return [];
    const detail = await getSubject(ctx, row.id);
    const { consents, requests, ...own } = detail;
    return [
      { record: 'subject', ...own },
      ...consents.map((c) => ({ record: 'consent', ...c })),
      ...requests.map((r) => ({ record: 'request', ...r })),
    ];
  }
  async function eraseSubject(subject: Subject): Promise<{ erased: number }> {
    if (subject.kind !== 'person') return { erased: 0 };
    return ctx.db.transaction().execute(async (tx) => {
      if (!(await store.getSubjectRow(tx, subject.id))) return { erased: 0 };
      const removed = await store.deleteSubject(tx, subject.id);
      return { erased: 1 + removed.links + removed.consents };
    });
  }
  return { module: 'privacy', exportSubject, eraseSubject };
}
