import { randomBytes } from 'node:crypto';
import {
  BulwarkError,
  privacyRequestKinds,
  subjectIdPattern,
  type PrivacyRequestKind,
} from '@bulwark/protocol';
import { subjectOf, type TxEmit } from '../events/index.ts';
import type { PrivacyRequestsTable, Tx } from '../store/index.ts';
import type { PrivacyContext } from './privacy.context.ts';
import { eraseSubject } from './privacy.erasure.ts';
import { exportCounts, exportSubject, type SubjectExport } from './privacy.export.ts';
import {
  getRequestRow,
  getSubjectRow,
  insertRequest,
  insertSubject,
  listRequestRows,
  markOverdue,
  overdueRequestRows,
  requestOfRow,
  touchSubject,
  type RequestRecord,
  type RequestStatus,
} from './privacy.store.ts';

/**
 * Data-subject requests (GDPR Art. 15-18) and their deadline (Art. 12(3): one month, `requestDeadlineDays`).
 * A request is recorded (`privacy.request_received`) and, unless held, run at once: an access request
 * returns the export; an erasure erases (privacy.erasure.ts); a restriction marks the subject restricted
 * (Art. 18: kept, delivered to no one); a rectification stays open until the operator, having corrected the
 * data, completes it. Completion is `privacy.request_completed`, with counts per module (never the data,
 * never the person's id: events name the request, `request:<id>`).
 */

/** A request as the service returns it (privacy.store's record: counts, never the data). */
export type PrivacyRequestView = RequestRecord;

export interface CreateRequestInput {
  subject: string;
  kind: PrivacyRequestKind;
  /** Record the request without running it (run later with runRequest). */
  hold?: boolean | undefined;
  note?: string | undefined;
}

export interface RequestOutcome {
  request: PrivacyRequestView;
  /** An access request that ran: what Bulwark holds about the subject. */
  export?: SubjectExport;
}

const DAY_MS = 86_400_000;
type Row = PrivacyRequestsTable;

const requestSubject = (id: string) => subjectOf.request(id);

async function rowOf(ctx: PrivacyContext, id: string): Promise<Row> {
  const row = await getRequestRow(ctx.db, id);
  if (!row) throw new BulwarkError('not_found', `no privacy request ${id}`);
  return row;
}

export async function getRequest(ctx: PrivacyContext, id: string): Promise<PrivacyRequestView> {
  return requestOfRow(await rowOf(ctx, id));
}

/** Requests, newest first; by status when given. */
export async function listRequests(
  ctx: PrivacyContext,
  filter: { status?: RequestStatus | undefined } = {},
): Promise<PrivacyRequestView[]> {
  return (await listRequestRows(ctx.db, { status: filter.status })).map(requestOfRow);
}

/**
 * Closes an open request with its receipt, in the transaction of `tx` (with whatever else it changes).
 * Another node that closed it first wins: conflict.
 */
async function closeRequest(
  tx: Tx,
  emit: TxEmit,
  c: {
    row: Row;
    status: 'completed' | 'rejected';
    counts: Record<string, number>;
    note?: string | undefined;
    actor: string;
    at: number;
  },
): Promise<void> {
  const { row } = c;
  // The note as stored now, not as read before the request ran (an erasure has cleared it).
  const res = await tx
    .updateTable('privacy_requests')
    .set({
      status: c.status,
      completed_at: c.at,
      result: JSON.stringify(c.counts),
      ...(c.note !== undefined && { note: c.note }),
    })
    .where('id', '=', row.id)
    .where('status', '=', 'open')
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0)
    throw new BulwarkError('conflict', `privacy request ${row.id} is no longer open`);
  // No note in the event: free text may name people, and the audit log keeps it for good (the request row
  // keeps the note, and an erasure clears it).
  emit({
    type: 'privacy.request_completed',
    actor: c.actor,
    subject: requestSubject(row.id),
    data: { requestId: row.id, kind: row.kind, status: c.status, counts: c.counts },
  });
}

function complete(
  ctx: PrivacyContext,
  c: {
    row: Row;
    status: 'completed' | 'rejected';
    counts: Record<string, number>;
    note?: string | undefined;
    actor: string;
  },
): Promise<void> {
  return ctx.events.atomically((tx, emit) => closeRequest(tx, emit, { ...c, at: ctx.now() }));
}

/** Art. 18: the subject's data is kept but delivered to no one (privacy.live withholds it). */
async function restrict(ctx: PrivacyContext, row: Row, actor: string): Promise<void> {
  const subjectId = row.subject_id;
  if (subjectId === null) throw new BulwarkError('conflict', `privacy request ${row.id} has no subject`);
  const at = ctx.now();
  await ctx.events.atomically(async (tx, emit) => {
    const existing = await getSubjectRow(tx, subjectId);
    if (!existing) {
      // A subject known only from its data (a payload's subject field) is registered to be restricted.
      await insertSubject(tx, {
        id: subjectId,
        kind: 'customer',
        created_at: at,
        updated_at: at,
        restricted_at: at,
      });
      emit({
        type: 'privacy.subject_added',
        actor,
        subject: subjectOf.person(subjectId),
        data: { kind: 'customer', devices: [], users: [] },
      });
    } else if (existing.restricted_at === null) {
      await touchSubject(tx, subjectId, { updatedAt: at, restrictedAt: at });
    }
    if (!existing || existing.restricted_at === null)
      emit({
        type: 'privacy.subject_updated',
        actor,
        subject: subjectOf.person(subjectId),
        data: { changes: { restricted: true } },
      });
    await closeRequest(tx, emit, { row, status: 'completed', counts: { restricted: 1 }, actor, at });
  });
}

/**
 * The erasure is done (and recorded); what it deleted must not stay readable on disk either (the SQLite
 * WAL). A failure here is reported, not the request's: the data is gone from the database.
 */
async function compactAfterErasure(ctx: PrivacyContext): Promise<void> {
  if (!ctx.compactAfterErasure) return;
  try {
    if (!(await ctx.compactAfterErasure()))
      ctx.onError(
        new Error(
          'the write-ahead log is in use by a reader: erased pages stay in it until its next checkpoint',
        ),
        'privacy erasure compaction',
      );
  } catch (err) {
    ctx.onError(err, 'privacy erasure compaction');
  }
}

/** Runs an open request: access, erasure and restriction complete; a rectification stays open. */
async function runOpen(ctx: PrivacyContext, row: Row, actor: string): Promise<RequestOutcome> {
  const subjectId = row.subject_id;
  if (subjectId === null) throw new BulwarkError('conflict', `privacy request ${row.id} has no subject`);
  switch (row.kind) {
    case 'access': {
      const exported = await exportSubject(ctx, subjectId);
      await complete(ctx, { row, status: 'completed', counts: exportCounts(exported), actor });
      return { request: await getRequest(ctx, row.id), export: exported };
    }
    case 'erasure': {
      const counts = await eraseSubject(ctx, subjectId, actor);
      // The receipt: counts only; the request row has lost the subject's id and note in the erasure.
      await complete(ctx, { row, status: 'completed', counts, actor });
      await compactAfterErasure(ctx);
      return { request: await getRequest(ctx, row.id) };
    }
    case 'restriction':
      await restrict(ctx, row, actor);
      return { request: await getRequest(ctx, row.id) };
    case 'rectification':
      return { request: requestOfRow(row) };
  }
}

export async function createRequest(
  ctx: PrivacyContext,
  input: CreateRequestInput,
  actor: string,
): Promise<RequestOutcome> {
  if (!subjectIdPattern.test(input.subject))
    throw new BulwarkError(
      'validation_failed',
      'subject: a data subject id (1-128 characters of A-Z a-z 0-9 _ . @ + -, starting with a letter or digit)',
    );
  if (!privacyRequestKinds.includes(input.kind))
    throw new BulwarkError('validation_failed', `kind: one of ${privacyRequestKinds.join(', ')}`);
  const receivedAt = ctx.now();
  const row: Row = {
    id: `pr_${randomBytes(10).toString('hex')}`,
    subject_id: input.subject,
    kind: input.kind,
    status: 'open',
    received_at: receivedAt,
    due_at: receivedAt + ctx.settings.requestDeadlineDays * DAY_MS,
    completed_at: null,
    overdue_at: null,
    result: null,
    note: input.note ?? null,
    created_by: actor,
  };
  await ctx.events.atomically(async (tx, emit) => {
    await insertRequest(tx, row);
    emit({
      type: 'privacy.request_received',
      actor,
      subject: requestSubject(row.id),
      data: { requestId: row.id, kind: row.kind, receivedAt, dueAt: row.due_at },
    });
  });
  if (input.hold) return { request: requestOfRow(row) };
  return runOpen(ctx, row, actor);
}

/** Runs a held request now. A rectification is completed by the operator (completeRequest), not run. */
export async function runRequest(ctx: PrivacyContext, id: string, actor: string): Promise<RequestOutcome> {
  const row = await rowOf(ctx, id);
  if (row.status !== 'open') throw new BulwarkError('conflict', `privacy request ${id} is ${row.status}`);
  if (row.kind === 'rectification')
    throw new BulwarkError(
      'conflict',
      `privacy request ${id} is a rectification: correct the data, then complete it with a note of what changed`,
    );
  return runOpen(ctx, row, actor);
}

/** The operator closes an open request: a rectification done, or any request rejected (with the reason). */
export async function completeRequest(
  ctx: PrivacyContext,
  input: { id: string; status: 'completed' | 'rejected'; note: string },
  actor: string,
): Promise<PrivacyRequestView> {
  const { id } = input;
  const row = await rowOf(ctx, id);
  if (row.status !== 'open') throw new BulwarkError('conflict', `privacy request ${id} is ${row.status}`);
  if (input.note.trim() === '')
    throw new BulwarkError('validation_failed', 'note: what was done (or why the request is rejected)');
  await complete(ctx, { row, status: input.status, counts: {}, note: input.note, actor });
  return getRequest(ctx, id);
}

/**
 * Marks open requests past their deadline (once each, across nodes) with `privacy.request_overdue`; the
 * monitor raises an alert for each until the request is completed. Resolves with how many were marked.
 */
export async function checkOverdue(ctx: PrivacyContext, now: number): Promise<number> {
  const rows = await overdueRequestRows(ctx.db, now);
  let marked = 0;
  for (const row of rows) {
    const done = await ctx.events.atomically(async (tx, emit) => {
      if (!(await markOverdue(tx, row.id, now))) return false;
      emit({
        type: 'privacy.request_overdue',
        actor: 'system',
        subject: requestSubject(row.id),
        data: {
          requestId: row.id,
          kind: row.kind,
          receivedAt: Number(row.received_at),
          dueAt: Number(row.due_at),
        },
      });
      return true;
    });
    if (done) marked++;
  }
  return marked;
}

/** The request use cases over one context (composed into the privacy service). */
export function requestOperations(ctx: PrivacyContext) {
  return {
    createRequest: (input: CreateRequestInput, actor: string) => createRequest(ctx, input, actor),
    runRequest: (id: string, actor: string) => runRequest(ctx, id, actor),
    completeRequest: (id: string, input: { status: 'completed' | 'rejected'; note: string }, actor: string) =>
      completeRequest(ctx, { ...input, id }, actor),
    listRequests: (filter?: { status?: RequestStatus | undefined }) => listRequests(ctx, filter),
    getRequest: (id: string) => getRequest(ctx, id),
    checkOverdue: (now: number) => checkOverdue(ctx, now),
    exportSubject: (subjectId: string) => exportSubject(ctx, subjectId),
  };
}
export type RequestOperations = ReturnType<typeof requestOperations>;
