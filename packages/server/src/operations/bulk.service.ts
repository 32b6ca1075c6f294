import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import { requirePermission, seesGroup, type Permission, type Scope } from '../authz/index.ts';
import type { AccessService } from '../access/index.ts';
import type { Device, DeviceService } from '../devices/index.ts';
import { subjectOf, type EventBus } from '../events/index.ts';
import { zoneOf } from '../policy/index.ts';
import type { Db } from '../store/index.ts';
import * as store from './bulk.store.ts';
import {
  bulkActionContracts,
  MAX_BULK_DEVICES,
  viewOf,
  type BulkAction,
  type BulkOperation,
  type BulkOperationView,
  type BulkResult,
  type BulkSelection,
  type BulkStatus,
  type RevocationReason,
} from './bulk.types.ts';

/** The baseline's dual-control settings (approvals section), read when a request is made. */
export interface ApprovalSettings {
  /** A selection of at least this many devices waits for a second person; 0 = never. */
  bulkDevices: number;
  /** How long a pending request may wait for approval. */
  expireAfter: number;
}

export interface BulkDeps {
  db: Db;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  devices: Pick<DeviceService, 'find' | 'list' | 'markLost' | 'decommission'>;
  access: Pick<AccessService, 'setQuarantine' | 'listZones'>;
  /** The PKI's revocation of a device and all its certificates. */
  revoke(id: string, actor: string, reason: RevocationReason): Promise<string[]>;
  approvals(): Promise<ApprovalSettings>;
}

/** Who acts: the actor string of the events and the scope authz checks (role, device groups). */
export interface Principal {
  actor: string;
  scope: Scope;
}

export interface BulkRequest {
  action: BulkAction;
  ids?: readonly string[] | undefined;
  group?: string | undefined;
  zone?: string | undefined;
  reason?: string | undefined;
  revocationReason?: RevocationReason | undefined;
  stolen?: boolean | undefined;
}

/** The permission a bulk action needs: that of the device operation it runs, to request, approve or reject it. */
export function permissionOf(action: BulkAction): Permission {
  return bulkActionContracts[action].access;
}

/**
 * The person behind an actor: an API token acts for its user, so `user:ada/token:1` and `user:ada` are one
 * person (one person cannot approve their own request with a token of theirs).
 */
export function personOf(actor: string): string {
  const slash = actor.indexOf('/token:');
  return slash < 0 ? actor : actor.slice(0, slash);
}

/** States no bulk action applies to: a group or zone selection leaves these devices out. */
const FINAL: readonly string[] = ['revoked', 'decommissioned'];

const describeSelection = (s: BulkSelection) =>
  s.kind === 'ids' ? 'ids' : s.kind === 'group' ? `group ${s.group}` : `zone ${s.zone}`;

function visibleToAll(scope: Scope, groups: readonly (string | null)[]): boolean {
  return groups.every((g) => seesGroup(scope, g));
}

/** Every device of a group or of the whole fleet, page by page, bounded by MAX_BULK_DEVICES. */
async function listAll(deps: BulkDeps, group: string | undefined, field: string): Promise<Device[]> {
  const out: Device[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await deps.devices.list({ group, after, limit: 1000 });
    out.push(...page);
    if (out.length > MAX_BULK_DEVICES * 4)
      throw new BulwarkError('validation_failed', `${field}: too many devices to select this way`);
    const last = page.at(-1);
    if (!last || page.length < 1000) return out;
    after = last.id;
  }
}

/** The devices a request selects, checked against the requester's scope. */
async function resolve(
  deps: BulkDeps,
  request: BulkRequest,
  scope: Scope,
): Promise<{ selection: BulkSelection; devices: Device[]; field: string }> {
  const given = (['ids', 'group', 'zone'] as const).filter((k) => request[k] !== undefined);
  if (given.length !== 1)
    throw new BulwarkError(
      'validation_failed',
      `${given[1] ?? 'ids'}: give exactly one of ids, group or zone`,
    );
  if (request.ids !== undefined) {
    const ids = [...new Set(request.ids)];
    if (ids.length === 0) throw new BulwarkError('validation_failed', 'ids: give at least one device id');
    if (ids.length > MAX_BULK_DEVICES)
      throw new BulwarkError('validation_failed', `ids: at most ${MAX_BULK_DEVICES} devices`);
    const devices: Device[] = [];
    for (const id of ids) {
      const device = await deps.devices.find(id);
      // A device outside the requester's groups is as unknown as one that does not exist.
      if (!device || !seesGroup(scope, device.group))
        throw new BulwarkError('validation_failed', `ids: device ${id} does not exist`);
      devices.push(device);
    }
    return { selection: { kind: 'ids' }, devices, field: 'ids' };
  }
  if (request.group !== undefined) {
    const group = request.group;
    if (!seesGroup(scope, group))
      throw new BulwarkError('forbidden', `group: you may act only on devices of your own groups`);
    const devices = (await listAll(deps, group, 'group')).filter((d) => !FINAL.includes(d.status));
    return { selection: { kind: 'group', group }, devices, field: 'group' };
  }
  const zone = request.zone ?? '';
  const zones = await deps.access.listZones();
  if (!zones.some((z) => z.name === zone))
    throw new BulwarkError('validation_failed', `zone: there is no zone named "${zone}"`);
  const devices = (await listAll(deps, undefined, 'zone')).filter(
    (d) => !FINAL.includes(d.status) && zoneOf(d, zones) === zone,
  );
  if (
    !visibleToAll(
      scope,
      devices.map((d) => d.group),
    )
  )
    throw new BulwarkError('forbidden', `zone: zone ${zone} holds devices outside your groups`);
  return { selection: { kind: 'zone', zone }, devices, field: 'zone' };
}

function checkOptions(request: BulkRequest): void {
  if (request.revocationReason !== undefined && request.action !== 'revoke')
    throw new BulwarkError('validation_failed', 'revocationReason: only for action revoke');
  if (request.stolen !== undefined && request.action !== 'lost')
    throw new BulwarkError('validation_failed', 'stolen: only for action lost');
  if (request.reason !== undefined && request.reason.length > 256)
    throw new BulwarkError('validation_failed', 'reason: at most 256 characters');
}

/** What one device's action came to; a refusal (already revoked, …) is that device's failure, not the batch's. */
async function runOne(deps: BulkDeps, op: BulkOperation, id: string): Promise<BulkResult> {
  const actor = op.requestedBy;
  // Each device's own event names the bulk operation it came from.
  const reason = op.reason ? `${op.reason} (bulk ${op.id})` : `bulk ${op.id}`;
  try {
    const device = await deps.devices.find(id);
    if (!device) return { deviceId: id, outcome: 'failed', message: 'no longer exists' };
    switch (op.action) {
      case 'quarantine':
      case 'release': {
        const quarantined = op.action === 'quarantine';
        if ((device.quarantinedAt !== null) === quarantined)
          return {
            deviceId: id,
            outcome: 'skipped',
            message: quarantined ? 'already quarantined' : 'not quarantined',
          };
        await deps.access.setQuarantine(id, { quarantined, reason }, actor);
        break;
      }
      case 'revoke':
        if (device.status === 'revoked')
          return { deviceId: id, outcome: 'skipped', message: 'already revoked' };
        await deps.revoke(id, actor, op.revocationReason ?? 'cessationOfOperation');
        break;
      case 'lost':
        if (device.status === 'lost') return { deviceId: id, outcome: 'skipped', message: 'already lost' };
        await deps.devices.markLost(id, { reason, stolen: op.stolen }, actor);
        break;
      case 'decommission':
        if (device.status === 'decommissioned')
          return { deviceId: id, outcome: 'skipped', message: 'already decommissioned' };
        await deps.devices.decommission(id, { reason }, actor);
        break;
    }
    return { deviceId: id, outcome: 'ok' };
  } catch (err) {
    const e = BulwarkError.from(err);
    if (e.code === 'internal') throw err;
    return { deviceId: id, outcome: 'failed', message: e.message };
  }
}

/** Runs a `running` operation device by device, then records the results with the executed event. */
async function execute(deps: BulkDeps, op: BulkOperation): Promise<BulkOperation> {
  const results: BulkResult[] = [];
  // One device after another: each goes through its own service, with its own event, as a single action would.
  for (const id of op.deviceIds) results.push(await runOne(deps, op, id));
  const executedAt = deps.now();
  const done: BulkOperation = { ...op, status: 'executed', executedAt, results };
  const { summary } = viewOf(done);
  await deps.events.atomically(async (tx, emit) => {
    await store.transition(tx, {
      id: op.id,
      from: 'running',
      to: 'executed',
      set: { executed_at: executedAt, results: JSON.stringify(results) },
    });
    emit({
      type: 'operations.executed',
      actor: op.decidedBy ?? op.requestedBy,
      subject: subjectOf.operation(op.id),
      data: {
        action: op.action,
        count: op.count,
        ...summary,
        failedIds: results.filter((r) => r.outcome === 'failed').map((r) => r.deviceId),
      },
    });
  });
  return done;
}

/** Pending requests past their window become `expired` (asked before any read or decision). */
async function expireDue(deps: BulkDeps): Promise<void> {
  const { db, events, now } = deps;
  for (const op of await store.duePending(db, now())) {
    await events.atomically(async (tx, emit) => {
      const moved = await store.transition(tx, {
        id: op.id,
        from: 'pending',
        to: 'expired',
        set: { decided_at: now() },
      });
      if (!moved) return;
      emit({
        type: 'operations.expired',
        actor: 'system',
        subject: subjectOf.operation(op.id),
        data: { action: op.action, count: op.count, requestedBy: op.requestedBy },
      });
    });
  }
}

/** An operation the principal may see (all its devices in scope), or not_found. */
async function visible(deps: BulkDeps, id: string, scope: Scope): Promise<BulkOperation> {
  await expireDue(deps);
  const op = await store.getOperation(deps.db, id);
  if (!op || !visibleToAll(scope, op.deviceGroups))
    throw new BulwarkError('not_found', `bulk operation ${id} does not exist`);
  return op;
}

function requirePending(op: BulkOperation, verb: string): void {
  if (op.status !== 'pending')
    throw new BulwarkError(
      'conflict',
      `bulk operation ${op.id} is ${op.status}, not pending: cannot ${verb} it`,
    );
}

/** The decider's groups must cover every device as it is now (a device may have moved since the request). */
async function requireCoverage(deps: BulkDeps, op: BulkOperation, scope: Scope): Promise<void> {
  if (scope.groups === null) return;
  for (const id of op.deviceIds) {
    const device = await deps.devices.find(id);
    if (!seesGroup(scope, device?.group ?? null))
      throw new BulwarkError(
        'forbidden',
        `your device groups do not cover every device of bulk operation ${op.id}`,
      );
  }
}

/**
 * Asks for a bulk action. Below the baseline threshold (or with dual control off) it runs now and answers
 * `executed`; otherwise it is stored `pending` for a second person.
 */
async function request(deps: BulkDeps, input: BulkRequest, who: Principal): Promise<BulkOperationView> {
  requirePermission(who.scope, permissionOf(input.action));
  checkOptions(input);
  const { selection, devices, field } = await resolve(deps, input, who.scope);
  if (devices.length === 0)
    throw new BulwarkError('validation_failed', `${field}: selects no device a ${input.action} applies to`);
  if (devices.length > MAX_BULK_DEVICES)
    throw new BulwarkError('validation_failed', `${field}: selects more than ${MAX_BULK_DEVICES} devices`);
  const settings = await deps.approvals();
  const needsApproval = settings.bulkDevices > 0 && devices.length >= settings.bulkDevices;
  const at = deps.now();
  const op: BulkOperation = {
    id: randomUUID(),
    action: input.action,
    status: needsApproval ? 'pending' : 'running',
    selection,
    deviceIds: devices.map((d) => d.id),
    deviceGroups: [...new Set(devices.map((d) => d.group))],
    count: devices.length,
    reason: input.reason ?? null,
    revocationReason: input.action === 'revoke' ? (input.revocationReason ?? 'cessationOfOperation') : null,
    stolen: input.stolen ?? false,
    requestedBy: who.actor,
    requestedAt: at,
    needsApproval,
    threshold: settings.bulkDevices,
    expiresAt: needsApproval ? at + settings.expireAfter : null,
    decidedBy: null,
    decidedAt: null,
    decisionNote: null,
    executedAt: null,
    results: [],
  };
  await deps.events.atomically(async (tx, emit) => {
    await store.insertOperation(tx, op);
    emit({
      type: 'operations.requested',
      actor: who.actor,
      subject: subjectOf.operation(op.id),
      data: {
        action: op.action,
        selection: describeSelection(selection),
        count: op.count,
        deviceIds: op.deviceIds,
        needsApproval,
        threshold: op.threshold,
        ...(op.reason ? { reason: op.reason } : {}),
      },
    });
  });
  return viewOf(needsApproval ? op : await execute(deps, op));
}

interface Decision {
  id: string;
  who: Principal;
  note?: string | undefined;
}

/** A second person approves a pending request: it runs now. The requester cannot approve their own. */
async function approve(deps: BulkDeps, { id, who, note }: Decision): Promise<BulkOperationView> {
  const op = await visible(deps, id, who.scope);
  requirePending(op, 'approve');
  if (personOf(op.requestedBy) === personOf(who.actor))
    throw new BulwarkError(
      'forbidden',
      `you requested bulk operation ${id}: a second person must approve it (dual control)`,
    );
  requirePermission(who.scope, permissionOf(op.action));
  await requireCoverage(deps, op, who.scope);
  const decided = { decidedBy: who.actor, decidedAt: deps.now(), decisionNote: note ?? null };
  const moved = await deps.events.atomically(async (tx, emit) => {
    const ok = await store.transition(tx, {
      id,
      from: 'pending',
      to: 'running',
      set: {
        decided_by: decided.decidedBy,
        decided_at: decided.decidedAt,
        decision_note: decided.decisionNote,
      },
    });
    if (ok)
      emit({
        type: 'operations.approved',
        actor: who.actor,
        subject: subjectOf.operation(id),
        data: { action: op.action, count: op.count, requestedBy: op.requestedBy, ...(note ? { note } : {}) },
      });
    return ok;
  });
  if (!moved) throw new BulwarkError('conflict', `bulk operation ${id} was decided meanwhile`);
  return viewOf(await execute(deps, { ...op, status: 'running', ...decided }));
}

/** A second person rejects a pending request, or its requester cancels it: nothing runs. */
async function reject(deps: BulkDeps, { id, who, note }: Decision): Promise<BulkOperationView> {
  const op = await visible(deps, id, who.scope);
  requirePending(op, 'reject');
  const own = personOf(op.requestedBy) === personOf(who.actor);
  if (!own) {
    requirePermission(who.scope, permissionOf(op.action));
    await requireCoverage(deps, op, who.scope);
  }
  const to: BulkStatus = own ? 'cancelled' : 'rejected';
  const decided = { decidedBy: who.actor, decidedAt: deps.now(), decisionNote: note ?? null };
  const moved = await deps.events.atomically(async (tx, emit) => {
    const ok = await store.transition(tx, {
      id,
      from: 'pending',
      to,
      set: {
        decided_by: decided.decidedBy,
        decided_at: decided.decidedAt,
        decision_note: decided.decisionNote,
      },
    });
    if (!ok) return false;
    const subject = subjectOf.operation(id);
    const base = { action: op.action, count: op.count, ...(note ? { note } : {}) };
    if (own) emit({ type: 'operations.cancelled', actor: who.actor, subject, data: base });
    else
      emit({
        type: 'operations.rejected',
        actor: who.actor,
        subject,
        data: { ...base, requestedBy: op.requestedBy },
      });
    return true;
  });
  if (!moved) throw new BulwarkError('conflict', `bulk operation ${id} was decided meanwhile`);
  return viewOf({ ...op, status: to, ...decided });
}

/**
 * Bulk device actions under dual control (four eyes: IEC 62443-3-3 SR 2.1 RE 4, NIST SP 800-53 AC-5). A request
 * is resolved to device ids at once, so the approver sees exactly what will run; at or above the baseline's
 * threshold it waits for another person holding the same permission, whose groups cover every device.
 */
export function createBulkOperations(deps: BulkDeps) {
  return {
    request: (input: BulkRequest, who: Principal) => request(deps, input, who),
    approve: (id: string, who: Principal, note?: string) => approve(deps, { id, who, note }),
    reject: (id: string, who: Principal, note?: string) => reject(deps, { id, who, note }),
    get: async (id: string, scope: Scope) => viewOf(await visible(deps, id, scope)),
    /** Newest first; only requests whose devices are all within the principal's groups. */
    async list(filter: { status?: BulkStatus | undefined; limit: number }, scope: Scope) {
      await expireDue(deps);
      const ops = await store.listOperations(deps.db, filter);
      return ops.filter((op) => visibleToAll(scope, op.deviceGroups)).map(viewOf);
    },
    /** Expires pending requests past their window now (also done before every read and decision). */
    expireDue: () => expireDue(deps),
  };
}

export type BulkOperations = ReturnType<typeof createBulkOperations>;
