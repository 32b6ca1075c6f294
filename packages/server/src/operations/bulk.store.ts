import type { BulkOperationsTable, DbOrTx } from '../store/index.ts';
import {
  bulkActions,
  bulkOutcomes,
  bulkStatuses,
  revocationReasons,
  type BulkAction,
  type BulkOperation,
  type BulkResult,
  type BulkSelection,
  type BulkStatus,
  type RevocationReason,
} from './bulk.types.ts';

/** Reads a stored JSON column the module itself wrote. */
function json<T>(text: string): T {
  return JSON.parse(text) as T;
}

function oneOf<T extends string>(values: readonly T[], value: string, column: string): T {
  if (!(values as readonly string[]).includes(value))
    throw new Error(`bulk_operations.${column} holds an unknown value "${value}"`);
  return value as T;
}

export function toOperation(row: BulkOperationsTable): BulkOperation {
  const results = json<BulkResult[]>(row.results).map((r) => ({
    ...r,
    outcome: oneOf(bulkOutcomes, r.outcome, 'results'),
  }));
  return {
    id: row.id,
    action: oneOf<BulkAction>(bulkActions, row.action, 'action'),
    status: oneOf<BulkStatus>(bulkStatuses, row.status, 'status'),
    selection: json<BulkSelection>(row.selection),
    deviceIds: json<string[]>(row.device_ids),
    deviceGroups: json<string[]>(row.device_groups).map((g) => (g === '' ? null : g)),
    count: Number(row.count),
    reason: row.reason,
    revocationReason:
      row.revocation_reason === null
        ? null
        : oneOf<RevocationReason>(revocationReasons, row.revocation_reason, 'revocation_reason'),
    stolen: Number(row.stolen) === 1,
    requestedBy: row.requested_by,
    requestedAt: Number(row.requested_at),
    needsApproval: Number(row.needs_approval) === 1,
    threshold: Number(row.threshold),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    decidedBy: row.decided_by,
    decidedAt: row.decided_at === null ? null : Number(row.decided_at),
    decisionNote: row.decision_note,
    executedAt: row.executed_at === null ? null : Number(row.executed_at),
    results,
  };
}

export function toRow(op: BulkOperation): BulkOperationsTable {
  return {
    id: op.id,
    action: op.action,
    status: op.status,
    selection: JSON.stringify(op.selection),
    device_ids: JSON.stringify(op.deviceIds),
    device_groups: JSON.stringify(op.deviceGroups.map((g) => g ?? '')),
    count: op.count,
    reason: op.reason,
    revocation_reason: op.revocationReason,
    stolen: op.stolen ? 1 : 0,
    requested_by: op.requestedBy,
    requested_at: op.requestedAt,
    needs_approval: op.needsApproval ? 1 : 0,
    threshold: op.threshold,
    expires_at: op.expiresAt,
    decided_by: op.decidedBy,
    decided_at: op.decidedAt,
    decision_note: op.decisionNote,
    executed_at: op.executedAt,
    results: JSON.stringify(op.results),
  };
}

export async function insertOperation(q: DbOrTx, op: BulkOperation): Promise<void> {
  await q.insertInto('bulk_operations').values(toRow(op)).execute();
}

export async function getOperation(q: DbOrTx, id: string): Promise<BulkOperation | undefined> {
  const row = await q.selectFrom('bulk_operations').selectAll().where('id', '=', id).executeTakeFirst();
  return row && toOperation(row);
}

export async function listOperations(
  q: DbOrTx,
  filter: { status?: BulkStatus | undefined; limit: number },
): Promise<BulkOperation[]> {
  let query = q
    .selectFrom('bulk_operations')
    .selectAll()
    .orderBy('requested_at', 'desc')
    .orderBy('id', 'desc')
    .limit(filter.limit);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  return (await query.execute()).map(toOperation);
}

/** Pending requests whose approval window has passed. */
export async function duePending(q: DbOrTx, now: number): Promise<BulkOperation[]> {
  const rows = await q
    .selectFrom('bulk_operations')
    .selectAll()
    .where('status', '=', 'pending')
    .where('expires_at', '<=', now)
    .execute();
  return rows.map(toOperation);
}

/**
 * Moves an operation from one status to the next, only if it is still in `from` (two approvers at once: one
 * wins, the other finds it no longer pending). Resolves with whether it moved.
 */
export async function transition(
  q: DbOrTx,
  change: {
    id: string;
    from: BulkStatus;
    to: BulkStatus;
    set?: Partial<
      Pick<BulkOperationsTable, 'decided_by' | 'decided_at' | 'decision_note' | 'executed_at' | 'results'>
    >;
  },
): Promise<boolean> {
  const result = await q
    .updateTable('bulk_operations')
    .set({ status: change.to, ...change.set })
    .where('id', '=', change.id)
    .where('status', '=', change.from)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}
