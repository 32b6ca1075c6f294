import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { parseActor, subjectOf, type EventBus } from '../events/index.ts';
import type { ComplianceWaiversTable, Db } from '../store/index.ts';
import { MAX_REVOKE_REASON_LENGTH, requiredText } from './attestations.ts';
import { checkIds, type CheckId } from './checks/types.ts';
import type { WaiverView } from './model.ts';

/**
 * A waiver accepts a failing check for a while: a reason, an approver who holds `compliance:approve`, an expiry
 * at most 365 days away. Four eyes (IEC 62443-2-1, ISO/IEC 27001 A.5.3 segregation of duties): asking creates a
 * pending waiver naming its approver; only that user, signed in as themselves and not the one who asked,
 * approves it. In force while approved, neither revoked nor expired, and its approver may still approve (one
 * who lost the right lets it lapse); every report shows it on the check it covers. Asking, approving and
 * revoking are committed with their events.
 */

export const MIN_WAIVER_REASON_LENGTH = 10;
export const MAX_WAIVER_REASON_LENGTH = 2000;
const DAY_MS = 86_400_000;
/** A waiver expires within a year (365 whole UTC days from today): accepted risk is looked at again. */
export const MAX_WAIVER_DAYS = 365;
export const MAX_WAIVER_MS = MAX_WAIVER_DAYS * DAY_MS;

export interface WaiverInput {
  check: string;
  reason: string;
  /** The user who approves (a username). */
  approver: string;
  expiresAt: number;
}

/** A waiver as stored: its view, who approved it (the actor, null while pending) and when it was revoked. */
export type WaiverRecord = WaiverView & { approvedBy: string | null; revokedAt: number | null };

export interface WaiverListOptions {
  includeRevoked?: boolean;
  /** At most this many, newest first (default: all). */
  limit?: number;
}

export interface WaiversDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  approvers: { canApprove(username: string): Promise<boolean> };
}

export interface Waivers {
  /** A pending waiver naming its approver (not in force until approved). */
  grant(input: WaiverInput, actor: string): Promise<WaiverRecord>;
  /** The named approver approves a pending waiver (see the module comment). */
  approve(id: string, actor: string): Promise<WaiverRecord>;
  /** Newest first; revoked ones only with includeRevoked. */
  list(options?: WaiverListOptions): Promise<WaiverRecord[]>;
  /** Approved, not revoked, not expired at `now`, and their approver may still approve. */
  inForce(now: number): Promise<WaiverRecord[]>;
  revoke(id: string, reason: string, actor: string): Promise<WaiverRecord>;
}

const invalid = (message: string) => new BulwarkError('validation_failed', message);

function isCheckId(value: string): value is CheckId {
  return (checkIds as readonly string[]).includes(value);
}

function toRecord(row: ComplianceWaiversTable): WaiverRecord {
  if (!isCheckId(row.check_id)) throw new BulwarkError('internal', `waiver ${row.id} names no known check`);
  return {
    id: row.id,
    check: row.check_id,
    reason: row.reason,
    approver: row.approver,
    status: row.approved_at === null ? 'pending' : 'approved',
    approvedAt: row.approved_at === null ? null : Number(row.approved_at),
    expiresAt: Number(row.expires_at),
    createdAt: Number(row.created_at),
    createdBy: row.created_by,
    approvedBy: row.approved_by,
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

/**
 * The user an actor string names: `user:<name>`, or `user:<name>/token:<id>` for an API token (authz/scope.ts;
 * usernames never hold a `/`). Undefined for the CLI, the system and others.
 */
function actingUser(actor: string): string | undefined {
  const by = parseActor(actor);
  return by.kind === 'user' ? by.id.split('/')[0] : undefined;
}

/** Every rule of a waiver, before anything is written; each refusal names the field. */
async function validate(deps: WaiversDeps, input: WaiverInput, actor: string) {
  if (!isCheckId(input.check)) throw invalid(`check: no automated check "${input.check}"`);
  const reason = input.reason.trim();
  if (reason.length < MIN_WAIVER_REASON_LENGTH)
    throw invalid(`reason: at least ${MIN_WAIVER_REASON_LENGTH} characters saying why the risk is accepted`);
  if (reason.length > MAX_WAIVER_REASON_LENGTH)
    throw invalid(`reason: at most ${MAX_WAIVER_REASON_LENGTH} characters`);
  const now = deps.now();
  if (!Number.isSafeInteger(input.expiresAt) || input.expiresAt <= now)
    throw invalid('expiresAt: must be in the future');
  // Whole UTC days, so a date-only expiry (the end of its day) a year ahead counts the same at any hour.
  if (Math.floor(input.expiresAt / DAY_MS) - Math.floor(now / DAY_MS) > MAX_WAIVER_DAYS)
    throw invalid(`expiresAt: at most ${MAX_WAIVER_DAYS} days from now`);
  const approver = input.approver.trim();
  if (approver === '') throw invalid('approver: required');
  if (actingUser(actor) === approver)
    throw invalid('approver: another user must approve a waiver you ask for');
  if (!(await deps.approvers.canApprove(approver)))
    throw invalid(
      `approver: ${approver} is not an enabled user allowed to approve waivers (compliance:approve)`,
    );
  return { check: input.check, reason, approver, expiresAt: input.expiresAt, now };
}

async function grant(deps: WaiversDeps, input: WaiverInput, actor: string): Promise<WaiverRecord> {
  const w = await validate(deps, input, actor);
  const row: ComplianceWaiversTable = {
    id: randomUUID(),
    check_id: w.check,
    reason: w.reason,
    approver: w.approver,
    expires_at: w.expiresAt,
    created_at: w.now,
    created_by: actor,
    approved_at: null,
    approved_by: null,
    revoked_at: null,
  };
  await deps.events.atomically(async (tx, emit) => {
    await tx.insertInto('compliance_waivers').values(row).execute();
    emit({
      type: 'compliance.waiver_granted',
      actor,
      subject: subjectOf.waiver(row.id),
      data: {
        waiverId: row.id,
        check: w.check,
        reason: w.reason,
        approver: w.approver,
        expiresAt: w.expiresAt,
      },
    });
  });
  return toRecord(row);
}

/** Why `actor` may not approve this waiver now, or null when it may (every rule of the module comment). */
function approvalRefusal(row: ComplianceWaiversTable, actor: string, now: number): BulwarkError | null {
  if (row.revoked_at !== null) return new BulwarkError('conflict', `waiver ${row.id} is revoked`);
  if (row.approved_at !== null) return new BulwarkError('conflict', `waiver ${row.id} is already approved`);
  if (Number(row.expires_at) <= now) return new BulwarkError('conflict', `waiver ${row.id} has expired`);
  const by = actingUser(actor);
  if (by === undefined)
    return new BulwarkError('forbidden', `only ${row.approver}, signed in, approves waiver ${row.id}`);
  if (by !== row.approver)
    return new BulwarkError('forbidden', `waiver ${row.id} names ${row.approver} to approve it, not ${by}`);
  if (actingUser(row.created_by) === by)
    return new BulwarkError('forbidden', 'another user must approve a waiver you asked for');
  return null;
}

async function approve(deps: WaiversDeps, id: string, actor: string): Promise<WaiverRecord> {
  return deps.events.atomically(async (tx, emit) => {
    const row = await tx.selectFrom('compliance_waivers').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new BulwarkError('not_found', `no waiver ${id}`);
    const now = deps.now();
    const refusal = approvalRefusal(row, actor, now);
    if (refusal) throw refusal;
    if (!(await deps.approvers.canApprove(row.approver)))
      throw new BulwarkError(
        'forbidden',
        `${row.approver} is not an enabled user allowed to approve waivers (compliance:approve)`,
      );
    const updated = await tx
      .updateTable('compliance_waivers')
      .set({ approved_at: now, approved_by: actor })
      .where('id', '=', id)
      .where('approved_at', 'is', null)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1)
      throw new BulwarkError('conflict', `waiver ${id} changed while being approved`);
    emit({
      type: 'compliance.waiver_approved',
      actor,
      subject: subjectOf.waiver(id),
      data: { waiverId: id, check: row.check_id, approver: row.approver },
    });
    return toRecord({ ...row, approved_at: now, approved_by: actor });
  });
}

async function revoke(deps: WaiversDeps, id: string, change: { reason: string; actor: string }) {
  const { reason, actor } = change;
  const why = requiredText(reason, 'reason', MAX_REVOKE_REASON_LENGTH);
  return deps.events.atomically(async (tx, emit) => {
    const row = await tx.selectFrom('compliance_waivers').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new BulwarkError('not_found', `no waiver ${id}`);
    if (row.revoked_at !== null) throw new BulwarkError('conflict', `waiver ${id} is already revoked`);
    const revokedAt = deps.now();
    await tx.updateTable('compliance_waivers').set({ revoked_at: revokedAt }).where('id', '=', id).execute();
    emit({
      type: 'compliance.waiver_revoked',
      actor,
      subject: subjectOf.waiver(id),
      data: { waiverId: id, check: row.check_id, reason: why },
    });
    return toRecord({ ...row, revoked_at: revokedAt });
  });
}

async function list(deps: WaiversDeps, options: WaiverListOptions = {}): Promise<WaiverRecord[]> {
  let query = deps.db.selectFrom('compliance_waivers').selectAll();
  if (options.includeRevoked !== true) query = query.where('revoked_at', 'is', null);
  query = query.orderBy('created_at', 'desc').orderBy('id', 'desc');
  if (options.limit !== undefined) query = query.limit(options.limit);
  return (await query.execute()).map(toRecord);
}

/** See `Waivers.inForce`: an approver who lost the right to approve lets their waivers lapse. */
async function inForce(deps: WaiversDeps, now: number): Promise<WaiverRecord[]> {
  const approved = (await list(deps)).filter((w) => w.status === 'approved' && w.expiresAt > now);
  const approvers = [...new Set(approved.map((w) => w.approver))];
  const allowed = new Set<string>();
  for (const name of approvers) if (await deps.approvers.canApprove(name)) allowed.add(name);
  return approved.filter((w) => allowed.has(w.approver));
}

/** Waivers of failing checks: see the module comment. */
export function createWaivers(deps: WaiversDeps): Waivers {
  return {
    grant: (input, actor) => grant(deps, input, actor),
    approve: (id, actor) => approve(deps, id, actor),
    list: (options) => list(deps, options),
    inForce: (now) => inForce(deps, now),
    revoke: (id, reason, actor) => revoke(deps, id, { reason, actor }),
  };
}
