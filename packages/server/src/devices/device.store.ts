import type { DbOrTx, DevicesTable, EnrollmentTokensTable } from '../store/index.ts';
import type { Device, DeviceStatus } from './device.types.ts';

export function toDevice(row: DevicesTable): Device {
  return {
    id: row.id,
    group: row.group_name,
    status: row.status as DeviceStatus,
    attributes: JSON.parse(row.attributes) as Record<string, string>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
  };
}

export async function getDeviceRow(q: DbOrTx, id: string): Promise<DevicesTable | undefined> {
  return q.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertDevice(q: DbOrTx, row: DevicesTable): Promise<void> {
  await q.insertInto('devices').values(row).execute();
}

export async function updateDevice(
  q: DbOrTx,
  id: string,
  changes: Partial<Omit<DevicesTable, 'id'>>,
  onlyIfStatusIn?: readonly DeviceStatus[],
): Promise<boolean> {
  let query = q.updateTable('devices').set(changes).where('id', '=', id);
  if (onlyIfStatusIn) query = query.where('status', 'in', onlyIfStatusIn);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export interface ListFilter {
  group?: string | undefined;
  /** Only devices in one of these groups (a user limited to groups). */
  groupsIn?: readonly string[] | undefined;
  status?: DeviceStatus | undefined;
  /** Keyset pagination: ids after this one. */
  after?: string | undefined;
  limit: number;
}

export async function listDeviceRows(q: DbOrTx, filter: ListFilter): Promise<DevicesTable[]> {
  let query = q.selectFrom('devices').selectAll().orderBy('id').limit(filter.limit);
  if (filter.group !== undefined) query = query.where('group_name', '=', filter.group);
  if (filter.groupsIn !== undefined) {
    if (filter.groupsIn.length === 0) return [];
    query = query.where('group_name', 'in', filter.groupsIn);
  }
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.after !== undefined) query = query.where('id', '>', filter.after);
  return query.execute();
}

export async function insertToken(q: DbOrTx, row: EnrollmentTokensTable): Promise<void> {
  await q.insertInto('enrollment_tokens').values(row).execute();
}

export async function findTokenByHash(
  q: DbOrTx,
  tokenHash: string,
): Promise<EnrollmentTokensTable | undefined> {
  return q.selectFrom('enrollment_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

/** Marks the token used only if it still is unused: exactly one enrollment can win. */
export async function consumeToken(q: DbOrTx, id: string, now: number): Promise<boolean> {
  const result = await q
    .updateTable('enrollment_tokens')
    .set({ used_at: now })
    .where('id', '=', id)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}
