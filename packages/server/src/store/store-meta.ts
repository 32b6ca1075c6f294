import type { DbOrTx } from './schema.ts';

export async function getStoreMeta(q: DbOrTx, name: string): Promise<string | undefined> {
  const row = await q.selectFrom('store_meta').select('value').where('name', '=', name).executeTakeFirst();
  return row?.value;
}

/** Writes `name` once; a value already there (another process was first) is kept. */
export async function putStoreMeta(
  q: DbOrTx,
  meta: { name: string; value: string; now: number },
): Promise<void> {
  await q
    .insertInto('store_meta')
    .values({ name: meta.name, value: meta.value, created_at: meta.now })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
}
