import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { parseActor, subjectOf, type EventBus } from '../events/index.ts';
import type { ComplianceWaiversTable, Db } from '../store/index.ts';
import { MAX_REVOKE_REASON_LENGTH, requiredText } from './attestations.ts';
import { checkIds, type CheckId } from './checks/types.ts';
import type { WaiverView } from './model.ts';

/**
 * A waiver accepts a failing check for a while: a reason, an approver who holds `compliance:approve` (four
 * eyes: not the user asking), an expiry at most a year away. In force while neither revoked nor expired; every
 * report shows it on the check it covers. Granting and revoking are committed with their events.
 */

export const MIN_WAIVER_REASON_LENGTH = 10;
export const MAX_WAIVER_REASON_LENGTH = 2000;
/** A waiver expires within a year: accepted risk is looked at again. */
export const MAX_WAIVER_MS = 365 * 86_400_000;

export interface WaiverInput {
  check: string;
  reason: string;
  /** The user who approves (a username). */
  approver: string;
  expiresAt: number;
}

export type WaiverRecord = WaiverView & { revokedAt: number | null };

export interface WaiversDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  approvers: { canApprove(username: string): Promise<boolean> };
}

export interface Waivers {
  grant(input: WaiverInput, actor: string): Promise<WaiverRecord>;
  /** Newest first; revoked ones only with includeRevoked. */
  list(options?: { includeRevoked?: boolean }): Promise<WaiverRecord[]>;
  /** Not revoked and not expired at `now`. */
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
    expiresAt: Number(row.expires_at),
    createdAt: Number(row.created_at),
    createdBy: row.created_by,
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
  if (input.expiresAt - now > MAX_WAIVER_MS) throw invalid('expiresAt: at most 365 days from now');
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

async function list(deps: WaiversDeps, includeRevoked: boolean): Promise<WaiverRecord[]> {
  let query = deps.db.selectFrom('compliance_waivers').selectAll();
  if (!includeRevoked) query = query.where('revoked_at', 'is', null);
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  return rows.map(toRecord);
}

/** Waivers of failing checks: see the module comment. */
export function createWaivers(deps: WaiversDeps): Waivers {
  return {
    grant: (input, actor) => grant(deps, input, actor),
    list: (options) => list(deps, options?.includeRevoked ?? false),
    async inForce(now) {
      return (await list(deps, false)).filter((w) => w.expiresAt > now);
    },
    revoke: (id, reason, actor) => revoke(deps, id, { reason, actor }),
  };
}
