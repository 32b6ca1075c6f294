import { BulwarkError } from '@bulwark/protocol';
import type { DbOrTx, FirmwareRolloutDevicesTable, FirmwareRolloutsTable } from '../store/index.ts';
import type { RolloutStatus } from './rollout.plan.ts';

/** The rollout tables (`firmware_rollouts`, `firmware_rollout_devices`): firmware owns them. */

/** Statuses of a rollout that is not over. */
export const unfinished: RolloutStatus[] = ['running', 'paused', 'waiting_approval'];

export async function rolloutRow(q: DbOrTx, id: string): Promise<FirmwareRolloutsTable> {
  const r =
    typeof id === 'string' && id.length <= 64
      ? await q.selectFrom('firmware_rollouts').selectAll().where('id', '=', id).executeTakeFirst()
      : undefined;
  if (!r) throw new BulwarkError('not_found', `rollout ${id} does not exist`);
  return r;
}

/** The devices of a rollout (of one phase), in plan order. */
export async function deviceRows(
  q: DbOrTx,
  rolloutId: string,
  phase?: number,
): Promise<FirmwareRolloutDevicesTable[]> {
  let query = q
    .selectFrom('firmware_rollout_devices')
    .selectAll()
    .where('rollout_id', '=', rolloutId)
    .orderBy('position');
  if (phase !== undefined) query = query.where('phase', '=', phase);
  return query.execute();
}

export interface RolloutChange {
  id: string;
  changes: Partial<Omit<FirmwareRolloutsTable, 'id'>>;
  /** The change applies only from these statuses (another node may have moved the rollout on). */
  onlyIfStatus: RolloutStatus[];
  now: number;
}

/** A conditional update; true when it applied. */
export async function setRollout(q: DbOrTx, change: RolloutChange): Promise<boolean> {
  const result = await q
    .updateTable('firmware_rollouts')
    .set({ ...change.changes, updated_at: change.now })
    .where('id', '=', change.id)
    .where('status', 'in', change.onlyIfStatus)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export interface DeviceChange {
  rolloutId: string;
  deviceId: string;
  changes: Partial<Omit<FirmwareRolloutDevicesTable, 'rollout_id' | 'device_id'>>;
  now: number;
}

export async function setDevice(q: DbOrTx, change: DeviceChange): Promise<void> {
  await q
    .updateTable('firmware_rollout_devices')
    .set({ ...change.changes, updated_at: change.now })
    .where('rollout_id', '=', change.rolloutId)
    .where('device_id', '=', change.deviceId)
    .execute();
}

/** A device's entries in unfinished rollouts (of one rollout). */
export async function activeRows(q: DbOrTx, deviceId: string, rolloutId?: string) {
  let query = q
    .selectFrom('firmware_rollout_devices as d')
    .innerJoin('firmware_rollouts as r', 'r.id', 'd.rollout_id')
    .selectAll('d')
    .where('d.device_id', '=', deviceId)
    .where('r.status', 'in', unfinished);
  if (rolloutId) query = query.where('d.rollout_id', '=', rolloutId);
  return query.execute();
}

/** Devices with an update not yet done in an unfinished rollout: one update at a time per device. */
export async function busyDevices(q: DbOrTx): Promise<Set<string>> {
  const rows = await q
    .selectFrom('firmware_rollout_devices as d')
    .innerJoin('firmware_rollouts as r', 'r.id', 'd.rollout_id')
    .select('d.device_id')
    .where('r.status', 'in', unfinished)
    .where('d.status', 'not in', ['succeeded', 'failed', 'skipped'])
    .execute();
  return new Set(rows.map((d) => d.device_id));
}

/** Device counts of a rollout by phase and status. */
export async function phaseCounts(q: DbOrTx, rolloutId: string) {
  return q
    .selectFrom('firmware_rollout_devices')
    .select(['phase', 'status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('rollout_id', '=', rolloutId)
    .groupBy(['phase', 'status'])
    .execute();
}

export async function runningIds(q: DbOrTx): Promise<string[]> {
  const rows = await q.selectFrom('firmware_rollouts').select('id').where('status', '=', 'running').execute();
  return rows.map((r) => r.id);
}

export async function listRows(
  q: DbOrTx,
  filter: { status?: string | undefined; limit?: number | undefined },
): Promise<FirmwareRolloutsTable[]> {
  let query = q
    .selectFrom('firmware_rollouts')
    .selectAll()
    .orderBy('created_at', 'desc')
    .limit(filter.limit ?? 100);
  if (filter.status) query = query.where('status', '=', filter.status);
  return query.execute();
}

/** Inserts a rollout and its device plan (in the caller's transaction). */
export async function insertRollout(
  q: DbOrTx,
  rollout: FirmwareRolloutsTable,
  devices: FirmwareRolloutDevicesTable[],
): Promise<void> {
  await q.insertInto('firmware_rollouts').values(rollout).execute();
  for (let i = 0; i < devices.length; i += 500)
    await q
      .insertInto('firmware_rollout_devices')
      .values(devices.slice(i, i + 500))
      .execute();
}

/** An aborted rollout's devices still waiting are skipped. */
export async function skipPending(q: DbOrTx, rolloutId: string, now: number): Promise<void> {
  await q
    .updateTable('firmware_rollout_devices')
    .set({ status: 'skipped', reason: 'aborted', updated_at: now })
    .where('rollout_id', '=', rolloutId)
    .where('status', '=', 'pending')
    .execute();
}
