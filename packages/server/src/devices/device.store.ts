import type { DbOrTx, DevicesTable, EnrollmentTokensTable } from '../store/index.ts';
import {
  effectiveState,
  stateFilter,
  type Device,
  type DeviceState,
  type DeviceStatus,
} from './device.types.ts';

const num = (v: number | string | null | undefined) => (v === null || v === undefined ? null : Number(v));

export function toDevice(row: DevicesTable): Device {
  const quarantinedAt = num(row.quarantined_at);
  const connectedSince = (row.sessions ?? 0) > 0 ? num(row.connected_at) : null;
  return {
    id: row.id,
    group: row.group_name,
    status: row.status as DeviceStatus,
    attributes: JSON.parse(row.attributes) as Record<string, string>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
    state: effectiveState(row.status as DeviceStatus, quarantinedAt !== null),
    quarantinedAt,
    lastSeenAt: num(row.last_seen_at),
    online: connectedSince !== null,
    connectedSince,
    certificateExpiresAt: num(row.cert_expires_at),
  };
}

export async function getDeviceRow(q: DbOrTx, id: string): Promise<DevicesTable | undefined> {
  return q.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function insertDevice(q: DbOrTx, row: DevicesTable): Promise<void> {
  await q.insertInto('devices').values(row).execute();
}

/** Changes a device row; with `onlyIfStatusIn`, only while its status is one of them (true if it changed). */
export async function updateDevice(
  q: DbOrTx,
  update: {
    id: string;
    changes: Partial<Omit<DevicesTable, 'id'>>;
    onlyIfStatusIn?: readonly DeviceStatus[] | undefined;
  },
): Promise<boolean> {
  let query = q.updateTable('devices').set(update.changes).where('id', '=', update.id);
  if (update.onlyIfStatusIn) query = query.where('status', 'in', update.onlyIfStatusIn);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

export interface ListFilter {
  group?: string | undefined;
  /** Only devices in one of these groups (a user limited to groups). */
  groupsIn?: readonly string[] | undefined;
  status?: DeviceStatus | undefined;
  /** The effective state (quarantine included). */
  state?: DeviceState | undefined;
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
  if (filter.state !== undefined) {
    const { statuses, quarantined } = stateFilter(filter.state);
    query = query.where('status', 'in', statuses);
    if (quarantined === true) query = query.where('quarantined_at', 'is not', null);
    if (quarantined === false) query = query.where('quarantined_at', 'is', null);
  }
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

/** A session began (`mqtt.connected`): the device is online; `at` is the event's time, so a replay is harmless. */
export async function recordConnected(q: DbOrTx, id: string, at: number): Promise<void> {
  await q
    .updateTable('devices')
    .set((eb) => ({
      sessions: eb(eb.fn.coalesce('sessions', eb.lit(0)), '+', 1),
      connected_at: at,
      last_seen_at: at,
    }))
    .where('id', '=', id)
    .execute();
}

/** A session ended (`mqtt.disconnected`, `mqtt.session_dropped`). */
export async function recordDisconnected(q: DbOrTx, id: string, at: number): Promise<void> {
  await q
    .updateTable('devices')
    .set((eb) => ({
      sessions: eb
        .case()
        .when(eb.fn.coalesce('sessions', eb.lit(0)), '>', 1)
        .then(eb('sessions', '-', 1))
        .else(0)
        .end(),
      last_seen_at: at,
    }))
    .where('id', '=', id)
    .execute();
}

/** At server start nothing is connected to this node yet: counts left by a crash are cleared. */
export async function clearSessions(q: DbOrTx): Promise<void> {
  await q.updateTable('devices').set({ sessions: 0, connected_at: null }).where('sessions', '>', 0).execute();
}

export async function recordCertificate(q: DbOrTx, id: string, notAfter: number): Promise<void> {
  await q.updateTable('devices').set({ cert_expires_at: notAfter }).where('id', '=', id).execute();
}

/** The device's enrollment tokens, newest first (their hashes stay here). */
export async function listTokens(q: DbOrTx, deviceId: string): Promise<EnrollmentTokensTable[]> {
  return q
    .selectFrom('enrollment_tokens')
    .selectAll()
    .where('device_id', '=', deviceId)
    .orderBy('created_at', 'desc')
    .execute();
}

export async function deleteTokens(q: DbOrTx, deviceId: string): Promise<number> {
  const result = await q.deleteFrom('enrollment_tokens').where('device_id', '=', deviceId).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/** Devices per lifecycle status and per quarantine flag. */
export async function countByStatus(
  q: DbOrTx,
): Promise<{ status: string; quarantined: boolean; count: number }[]> {
  const rows = await q
    .selectFrom('devices')
    .select((eb) => [
      'status',
      eb.case().when('quarantined_at', 'is', null).then(0).else(1).end().as('q'),
      eb.fn.countAll().as('n'),
    ])
    .groupBy(['status', 'q'])
    .execute();
  return rows.map((r) => ({ status: r.status, quarantined: Number(r.q) === 1, count: Number(r.n) }));
}

/** How many devices match, counted in the database (the facts read). */
export async function countWhere(
  q: DbOrTx,
  where: {
    statusIn?: readonly DeviceStatus[];
    withoutCertificate?: boolean;
    certificateExpiringBefore?: number;
    neverSeen?: boolean;
    seenBefore?: number;
  },
): Promise<number> {
  let query = q.selectFrom('devices').select((eb) => eb.fn.countAll().as('n'));
  if (where.statusIn) query = query.where('status', 'in', where.statusIn);
  if (where.withoutCertificate) query = query.where('cert_expires_at', 'is', null);
  if (where.certificateExpiringBefore !== undefined)
    query = query.where('cert_expires_at', '<', where.certificateExpiringBefore);
  if (where.neverSeen) query = query.where('last_seen_at', 'is', null);
  if (where.seenBefore !== undefined) query = query.where('last_seen_at', '<', where.seenBefore);
  const row = await query.executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Devices in service (registered, active, disabled) per group; a device without a group counts under ''. */
export async function countByGroup(q: DbOrTx): Promise<{ group: string; devices: number }[]> {
  const rows = await q
    .selectFrom('devices')
    .select((eb) => ['group_name', eb.fn.countAll().as('n')])
    .where('status', 'in', ['registered', 'active', 'disabled'])
    .groupBy('group_name')
    .execute();
  return rows
    .map((r) => ({ group: r.group_name ?? '', devices: Number(r.n) }))
    .sort((a, b) => a.group.localeCompare(b.group));
}
