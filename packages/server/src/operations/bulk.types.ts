import type { z } from 'zod';
import { api } from '@bulwark/protocol';

export const { bulkActions, bulkStatuses, bulkOutcomes, bulkActionContracts, MAX_BULK_DEVICES } =
  api.operations;
export const { revocationReasons } = api.devices;

export type BulkAction = (typeof bulkActions)[number];
export type BulkStatus = (typeof bulkStatuses)[number];
export type BulkOutcome = (typeof bulkOutcomes)[number];
export type RevocationReason = (typeof revocationReasons)[number];
export type BulkSelection = z.output<typeof api.operations.selection>;
export type BulkResult = z.output<typeof api.operations.bulkResult>;

/** A bulk device action as the module keeps it (the API answer leaves out what only the module needs). */
export interface BulkOperation {
  id: string;
  action: BulkAction;
  status: BulkStatus;
  selection: BulkSelection;
  deviceIds: string[];
  /** The devices' groups when requested (null: none), for who may see, approve or reject the request. */
  deviceGroups: (string | null)[];
  count: number;
  reason: string | null;
  revocationReason: RevocationReason | null;
  stolen: boolean;
  requestedBy: string;
  requestedAt: number;
  needsApproval: boolean;
  threshold: number;
  expiresAt: number | null;
  decidedBy: string | null;
  decidedAt: number | null;
  decisionNote: string | null;
  executedAt: number | null;
  results: BulkResult[];
}

/** A bulk action as the API answers it: the operation and its per-outcome counts. */
export type BulkOperationView = z.output<typeof api.operations.bulkOperation>;

/** The API's view of an operation: the contract's fields only (what the module keeps for itself is left out). */
export function viewOf(op: BulkOperation): BulkOperationView {
  const summary = { ok: 0, skipped: 0, failed: 0 };
  for (const r of op.results) summary[r.outcome] += 1;
  return api.operations.bulkOperation.parse({ ...op, summary });
}
