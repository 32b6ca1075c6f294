import { z } from 'zod';
import { contract } from './contract.ts';
import { quarantine, release } from './access.ts';
import { decommission, markLost, revocationReasons, revoke } from './devices.ts';

/**
 * Bulk device actions with dual control: one action over a selection of devices (ids, a group or a zone),
 * resolved to device ids when requested. A selection of at least the baseline's `approvals.bulkDevices` devices
 * waits, `pending`, for a second person holding the same permission to approve it (then it runs) or for either
 * person to reject it; below that it runs at once. Each device's action goes through the device's own operation
 * (its own event); a device that fails (already revoked, …) is reported in `results`, the others still run.
 *
 * @example
 * ```ts
 * const op = api.operations.bulkOperation.parse(
 *   await post('/api/v1/operations/bulk', { action: 'quarantine', zone: 'plant-floor', reason: 'incident 42' }),
 * );
 * if (op.status === 'pending') console.log(`${op.count} devices wait for a second person`);
 * ```
 */

/** What a bulk action does to each device: the device's own operation of that name. */
export const bulkActions = ['revoke', 'quarantine', 'release', 'lost', 'decommission'] as const;
export type BulkAction = (typeof bulkActions)[number];

/**
 * `pending`: waits for a second person; `running`: approved (or below the threshold), its devices being changed;
 * `executed`: ran (see `results`); `rejected`: refused by a second person; `cancelled`: withdrawn by its
 * requester; `expired`: not approved in time.
 */
export const bulkStatuses = ['pending', 'running', 'executed', 'rejected', 'cancelled', 'expired'] as const;
export type BulkStatus = (typeof bulkStatuses)[number];

/** How one device fared: `ok`, `skipped` (nothing to do, e.g. already quarantined) or `failed` (why). */
export const bulkOutcomes = ['ok', 'skipped', 'failed'] as const;

/**
 * The single-device operation each bulk action runs per device: its access is the permission the bulk action
 * needs (to request, approve or reject it), so the console shows a control exactly when the server allows it.
 */
export const bulkActionContracts = {
  revoke,
  quarantine,
  release,
  lost: markLost,
  decommission,
} as const satisfies Record<BulkAction, unknown>;

/** The most devices one bulk action may select. */
export const MAX_BULK_DEVICES = 10_000;

const name = z.string().min(1).max(64);
const tags = ['operations'] as const;
const params = z.object({ id: z.string().max(64) });

export const selection = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('ids') }),
  z.object({ kind: z.literal('group'), group: z.string() }),
  z.object({ kind: z.literal('zone'), zone: z.string() }),
]);

export const bulkResult = z.object({
  deviceId: z.string(),
  outcome: z.enum(bulkOutcomes),
  message: z.string().optional(),
});

export const bulkOperation = z.object({
  id: z.string(),
  action: z.enum(bulkActions),
  status: z.enum(bulkStatuses),
  /** How the devices were chosen; `deviceIds` is what it resolved to when requested (what runs). */
  selection,
  deviceIds: z.array(z.string()),
  count: z.number().int(),
  reason: z.string().nullable(),
  revocationReason: z.enum(revocationReasons).nullable().describe('for revoke: the RFC 5280 reason'),
  requestedBy: z.string().describe('the actor who asked (user:<name>, user:<name>/token:<id>, cli)'),
  requestedAt: z.number().int(),
  /** Whether a second person must approve it (the baseline threshold when it was requested). */
  needsApproval: z.boolean(),
  threshold: z.number().int().describe("the baseline's approvals.bulkDevices when requested (0: off)"),
  expiresAt: z.number().int().nullable(),
  decidedBy: z.string().nullable().describe('who approved, rejected or cancelled it'),
  decidedAt: z.number().int().nullable(),
  decisionNote: z.string().nullable(),
  executedAt: z.number().int().nullable(),
  /** Per device, once executed. */
  results: z.array(bulkResult),
  summary: z.object({ ok: z.number().int(), skipped: z.number().int(), failed: z.number().int() }),
});

export const createBulk = contract({
  method: 'POST',
  path: '/api/v1/operations/bulk',
  summary:
    'Run one action (revoke, quarantine, release, lost, decommission) over devices chosen by ids, group or zone; ' +
    "at or above the baseline's approvals.bulkDevices it waits for a second person's approval (202, pending)",
  tags,
  // The action's own permission (devices:revoke, devices:quarantine) is checked by the route.
  access: 'devices:read',
  body: z
    .object({
      action: z.enum(bulkActions),
      ids: z.array(name).min(1).max(MAX_BULK_DEVICES).optional().describe('these devices'),
      group: name.optional().describe('every device of this group'),
      zone: name.optional().describe('every device of this zone'),
      reason: z.string().max(256).optional().describe('why (recorded with every device event)'),
      revocationReason: z
        .enum(revocationReasons)
        .optional()
        .describe('for revoke (default cessationOfOperation)'),
      stolen: z.boolean().optional().describe('for lost: reported stolen'),
    })
    .strict()
    .superRefine((b, ctx) => {
      const given = (['ids', 'group', 'zone'] as const).filter((k) => b[k] !== undefined);
      if (given.length !== 1)
        ctx.addIssue({
          code: 'custom',
          path: given.length === 0 ? ['ids'] : [given[1] ?? 'ids'],
          message: 'give exactly one of ids, group or zone',
        });
      if (b.revocationReason !== undefined && b.action !== 'revoke')
        ctx.addIssue({ code: 'custom', path: ['revocationReason'], message: 'only for action revoke' });
      if (b.stolen !== undefined && b.action !== 'lost')
        ctx.addIssue({ code: 'custom', path: ['stolen'], message: 'only for action lost' });
    }),
  response: { 200: bulkOperation, 202: bulkOperation },
});

export const listBulk = contract({
  method: 'GET',
  path: '/api/v1/operations/bulk',
  summary: 'Bulk device actions, newest first (status=pending: what waits for approval)',
  tags,
  access: 'devices:read',
  query: z.object({
    status: z.enum(bulkStatuses).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(100),
  }),
  response: { 200: z.object({ operations: z.array(bulkOperation) }) },
});

export const showBulk = contract({
  method: 'GET',
  path: '/api/v1/operations/bulk/:id',
  summary: 'One bulk device action: its devices, state and per-device results',
  tags,
  access: 'devices:read',
  params,
  response: { 200: bulkOperation },
});

const decisionBody = z
  .object({ note: z.string().max(256).optional().describe('recorded in the audit log') })
  .strict()
  .default({});

export const approveBulk = contract({
  method: 'POST',
  path: '/api/v1/operations/bulk/:id/approve',
  summary:
    "Approve a pending bulk action as the second person (not its requester; the action's permission and every " +
    'device in scope): it runs at once',
  tags,
  access: 'devices:read',
  params,
  body: decisionBody,
  response: { 200: bulkOperation },
});

export const rejectBulk = contract({
  method: 'POST',
  path: '/api/v1/operations/bulk/:id/reject',
  summary: 'Reject a pending bulk action (a second person), or cancel it (its requester): nothing runs',
  tags,
  access: 'devices:read',
  params,
  body: decisionBody,
  response: { 200: bulkOperation },
});
