import type { DbOrTx, TufKeysTable, TufMetadataTable, TufPendingTable } from '../store/index.ts';

export const tufRoles = ['root', 'targets', 'snapshot', 'timestamp'] as const;
export type TufRole = (typeof tufRoles)[number];
export const onlineRoles = ['snapshot', 'timestamp'] as const;
export type OnlineRole = (typeof onlineRoles)[number];

export async function latest(q: DbOrTx, role: TufRole): Promise<TufMetadataTable | undefined> {
  return q
    .selectFrom('tuf_metadata')
    .selectAll()
    .where('role', '=', role)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
}

export async function byVersion(
  q: DbOrTx,
  role: TufRole,
  version: number,
): Promise<TufMetadataTable | undefined> {
  return q
    .selectFrom('tuf_metadata')
    .selectAll()
    .where('role', '=', role)
    .where('version', '=', version)
    .executeTakeFirst();
}

export async function insertMetadata(q: DbOrTx, row: TufMetadataTable): Promise<void> {
  await q.insertInto('tuf_metadata').values(row).execute();
}

export async function keysFor(q: DbOrTx, role: OnlineRole, status: string): Promise<TufKeysTable[]> {
  return q.selectFrom('tuf_keys').selectAll().where('role', '=', role).where('status', '=', status).execute();
}

export async function keyById(q: DbOrTx, keyid: string): Promise<TufKeysTable | undefined> {
  return q.selectFrom('tuf_keys').selectAll().where('keyid', '=', keyid).executeTakeFirst();
}

export async function insertKey(q: DbOrTx, row: TufKeysTable): Promise<void> {
  await q.insertInto('tuf_keys').values(row).execute();
}

export async function setKeyStatus(q: DbOrTx, keyid: string, status: string): Promise<void> {
  await q.updateTable('tuf_keys').set({ status }).where('keyid', '=', keyid).execute();
}

export async function getPending(q: DbOrTx, role: TufRole): Promise<TufPendingTable | undefined> {
  return q.selectFrom('tuf_pending').selectAll().where('role', '=', role).executeTakeFirst();
}

export async function putPending(q: DbOrTx, row: TufPendingTable): Promise<void> {
  await q.deleteFrom('tuf_pending').where('role', '=', row.role).execute();
  await q.insertInto('tuf_pending').values(row).execute();
}

export async function deletePending(q: DbOrTx, role: TufRole): Promise<void> {
  await q.deleteFrom('tuf_pending').where('role', '=', role).execute();
}
