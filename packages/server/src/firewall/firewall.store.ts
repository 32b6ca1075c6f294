import type { BansTable, DbOrTx } from '../store/index.ts';

/** The `bans` table (owned by the firewall module). */

export async function insertBan(q: DbOrTx, row: BansTable): Promise<void> {
  await q.insertInto('bans').values(row).execute();
}

export async function getBan(q: DbOrTx, id: string): Promise<BansTable | undefined> {
  return q.selectFrom('bans').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function deleteBan(q: DbOrTx, id: string): Promise<boolean> {
  const result = await q.deleteFrom('bans').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** Expired bans stay listed for a while, then they go. */
export async function deleteExpiredBefore(q: DbOrTx, before: number): Promise<void> {
  await q.deleteFrom('bans').where('expires_at', 'is not', null).where('expires_at', '<', before).execute();
}

export async function listBans(q: DbOrTx): Promise<BansTable[]> {
  return q.selectFrom('bans').selectAll().orderBy('created_at').execute();
}
