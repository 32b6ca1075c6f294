import { randomUUID } from 'node:crypto';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import type { DevicesTable } from '../store/index.ts';
import { atomically, requireDevice, type DeviceContext } from './device.context.ts';
import {
  checkAttributes,
  checkGroup,
  checkTokenTtl,
  hashToken,
  mergeAttributes,
  newDeviceRow,
  newToken,
  requireStatus,
} from './device.rules.ts';
import * as store from './device.store.ts';
import {
  deviceStates,
  deviceStatuses,
  type Device,
  type DeviceState,
  type DeviceStatus,
} from './device.types.ts';

/** Registration use cases: add, import, list, change, enrollment tokens. */

export interface NewDevice {
  id: string;
  group?: string | null | undefined;
  attributes?: Record<string, string> | undefined;
}

function checkId(id: string): void {
  const problem = deviceIdProblem(id);
  if (problem) throw new BulwarkError('validation_failed', problem);
}

/** A device id already taken; a decommissioned device's id stays taken for good. */
function idTaken(row: Pick<DevicesTable, 'id' | 'status'>): BulwarkError {
  return row.status === 'decommissioned'
    ? new BulwarkError('conflict', `device ${row.id} was decommissioned; ids are never reused`)
    : new BulwarkError('conflict', `device ${row.id} already exists`);
}

/** Inserts the row; a duplicate id is a conflict (found after the insert failed, so no race hides it). */
async function insertNew(ctx: DeviceContext, work: () => Promise<void>, id: string): Promise<void> {
  try {
    await work();
  } catch (err) {
    const existing = await store.getDeviceRow(ctx.db, id);
    if (existing) throw idTaken(existing);
    throw err;
  }
}

export async function add(
  ctx: DeviceContext,
  input: { id: string; group?: string | null | undefined },
  actor: string,
): Promise<Device> {
  checkId(input.id);
  const group = checkGroup(input.group);
  const row = newDeviceRow({ id: input.id, group, attributes: '{}', at: ctx.now() });
  const subject = subjectOf.device(input.id);
  await insertNew(
    ctx,
    () =>
      atomically(ctx, async (tx, emit) => {
        await store.insertDevice(tx, row);
        emit({ type: 'device.added', actor, subject, data: { group } });
      }),
    input.id,
  );
  return store.toDevice(row);
}

/**
 * Registers a device with its group and attributes and issues its enrollment token, all or nothing (one
 * transaction): a bulk import never leaves a device without its token or without its attributes.
 */
export async function addWithToken(
  ctx: DeviceContext,
  input: NewDevice & { ttlMs?: number | undefined },
  actor: string,
): Promise<{ device: Device; token: string; expiresAt: number }> {
  checkId(input.id);
  const ttlMs = input.ttlMs ?? ctx.tokenTtlMs;
  const group = checkGroup(input.group);
  const attributes = checkAttributes(input.attributes ?? {});
  checkTokenTtl(ttlMs);
  const row = newDeviceRow({ id: input.id, group, attributes, at: ctx.now() });
  const t = row.created_at;
  const token = newToken();
  const tokenId = randomUUID();
  const existing = await store.getDeviceRow(ctx.db, input.id);
  if (existing) throw idTaken(existing);
  const subject = subjectOf.device(input.id);
  await insertNew(
    ctx,
    () =>
      atomically(ctx, async (tx, emit) => {
        await store.insertDevice(tx, row);
        const tokenRow = { id: tokenId, device_id: input.id, token_hash: hashToken(token) };
        await store.insertToken(tx, { ...tokenRow, created_at: t, expires_at: t + ttlMs, used_at: null });
        emit({ type: 'device.added', actor, subject, data: { group } });
        if (attributes !== '{}')
          emit({
            type: 'device.updated',
            actor,
            subject,
            data: { changes: { attributes: JSON.parse(attributes) as Record<string, string> } },
          });
        emit({ type: 'enrollment.token_issued', actor, subject, data: { tokenId, expiresAt: t + ttlMs } });
      }),
    input.id,
  );
  return { device: store.toDevice(row), token, expiresAt: t + ttlMs };
}

export interface ListInput {
  group?: string | undefined;
  groupsIn?: readonly string[] | undefined;
  status?: string | undefined;
  /** The effective state: a status, or `quarantined`. */
  state?: string | undefined;
  after?: string | undefined;
  limit?: number | undefined;
}

export async function list(ctx: DeviceContext, filter: ListInput = {}): Promise<Device[]> {
  if (filter.status !== undefined && !(deviceStatuses as readonly string[]).includes(filter.status)) {
    throw new BulwarkError('validation_failed', `status must be one of ${deviceStatuses.join(', ')}`);
  }
  if (filter.state !== undefined && !(deviceStates as readonly string[]).includes(filter.state)) {
    throw new BulwarkError(
      'validation_failed',
      `state must be one of ${deviceStates.join(', ')}, not "${filter.state}"`,
    );
  }
  const limit = filter.limit ?? 1000;
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    throw new BulwarkError('validation_failed', 'limit must be an integer from 1 to 10000');
  }
  const rows = await store.listDeviceRows(ctx.db, {
    group: filter.group,
    groupsIn: filter.groupsIn,
    status: filter.status as DeviceStatus | undefined,
    state: filter.state as DeviceState | undefined,
    after: filter.after,
    limit,
  });
  return rows.map(store.toDevice);
}

export interface DeviceChanges {
  group?: string | null | undefined;
  attributes?: Record<string, string> | undefined;
  setAttributes?: Record<string, string> | undefined;
  unsetAttributes?: readonly string[] | undefined;
}

/** The columns to write and the changes to record, from validated input. */
function plannedUpdate(
  device: Device,
  changes: DeviceChanges,
): {
  set: Partial<Omit<DevicesTable, 'id'>>;
  recorded: Record<string, string | null | Record<string, string>>;
} {
  if (changes.setAttributes !== undefined || changes.unsetAttributes !== undefined) {
    if (changes.attributes !== undefined)
      throw new BulwarkError('validation_failed', 'give either attributes or set/unset attributes, not both');
    changes = { group: changes.group, attributes: mergeAttributes(device.attributes, changes) };
  }
  const set: Partial<Omit<DevicesTable, 'id'>> = {};
  const recorded: Record<string, string | null | Record<string, string>> = {};
  if (changes.group !== undefined) {
    set.group_name = checkGroup(changes.group);
    recorded.group = set.group_name;
  }
  if (changes.attributes !== undefined) {
    set.attributes = checkAttributes(changes.attributes);
    recorded.attributes = JSON.parse(set.attributes) as Record<string, string>;
  }
  return { set, recorded };
}

/**
 * Changes a device's group and/or attributes: `attributes` replaces them as a whole; `setAttributes` and
 * `unsetAttributes` change only the names given (an empty value in `setAttributes` removes the name).
 */
export async function update(
  ctx: DeviceContext,
  input: { id: string; changes: DeviceChanges },
  actor: string,
): Promise<Device> {
  const { id } = input;
  const device = await requireDevice(ctx.db, id);
  const { set, recorded } = plannedUpdate(device, input.changes);
  if (Object.keys(set).length === 0) return device;
  return atomically(ctx, async (tx, emit) => {
    await store.updateDevice(tx, { id, changes: { ...set, updated_at: ctx.now() } });
    emit({ type: 'device.updated', actor, subject: subjectOf.device(id), data: { changes: recorded } });
    return requireDevice(tx, id);
  });
}

/** A one-time enrollment token, bound to this device, shown once and stored only as a hash. */
export async function issueToken(
  ctx: DeviceContext,
  input: { id: string; ttlMs?: number | undefined },
  actor: string,
): Promise<{ token: string; expiresAt: number }> {
  const { id } = input;
  const ttlMs = input.ttlMs ?? ctx.tokenTtlMs;
  checkTokenTtl(ttlMs);
  const device = await requireDevice(ctx.db, id);
  if (device.status === 'revoked')
    throw new BulwarkError('device_revoked', `device ${id} is revoked and cannot enroll again`);
  if (device.status === 'disabled')
    throw new BulwarkError('device_disabled', `device ${id} is disabled: enable it first`);
  requireStatus(device, 'issueToken');
  const token = newToken();
  const t = ctx.now();
  const tokenId = randomUUID();
  await atomically(ctx, async (tx, emit) => {
    const row = { id: tokenId, device_id: id, token_hash: hashToken(token) };
    await store.insertToken(tx, { ...row, created_at: t, expires_at: t + ttlMs, used_at: null });
    const data = { tokenId, expiresAt: t + ttlMs };
    emit({ type: 'enrollment.token_issued', actor, subject: subjectOf.device(id), data });
  });
  return { token, expiresAt: t + ttlMs };
}
