import type { ExpressionBuilder } from 'kysely';
import type { Database, DbOrTx, PhysicalAccessTable, PhysicalSitesTable } from '../store/index.ts';

/**
 * The tables of physical sites and who may access them (owner: the attestation module, this file only).
 * Rows stay here: physical.service.ts maps them to the contract's views.
 */

export type SiteRow = PhysicalSitesTable;
export type AccessRow = PhysicalAccessTable;

/** Every site, by name. */
export async function listSiteRows(db: DbOrTx): Promise<SiteRow[]> {
  return db.selectFrom('physical_sites').selectAll().orderBy('name').execute();
}

export async function getSiteRow(db: DbOrTx, name: string): Promise<SiteRow | undefined> {
  return db.selectFrom('physical_sites').selectAll().where('name', '=', name).executeTakeFirst();
}

export async function countSites(db: DbOrTx): Promise<number> {
  const row = await db
    .selectFrom('physical_sites')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Creates the site or replaces its owner, description and groups. */
export async function upsertSiteRow(db: DbOrTx, row: SiteRow): Promise<void> {
  await db
    .insertInto('physical_sites')
    .values(row)
    .onConflict((oc) =>
      oc.column('name').doUpdateSet({
        description: row.description,
        owner: row.owner,
        groups: row.groups,
        updated_at: row.updated_at,
        updated_by: row.updated_by,
      }),
    )
    .execute();
}

/** Access records, by site then grant time (all sites, or one). */
export async function listAccessRows(db: DbOrTx, site?: string): Promise<AccessRow[]> {
  let query = db.selectFrom('physical_access').selectAll();
  if (site !== undefined) query = query.where('site', '=', site);
  return query.orderBy('site').orderBy('granted_at').orderBy('id').execute();
}

export async function countAccess(db: DbOrTx, site: string): Promise<number> {
  const row = await db
    .selectFrom('physical_access')
    .select((eb) => eb.fn.countAll<number | string>().as('n'))
    .where('site', '=', site)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export async function insertAccessRow(db: DbOrTx, row: AccessRow): Promise<void> {
  await db.insertInto('physical_access').values(row).execute();
}

export async function getAccessRow(db: DbOrTx, site: string, id: string): Promise<AccessRow | undefined> {
  return db
    .selectFrom('physical_access')
    .selectAll()
    .where('site', '=', site)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Deletes one record; resolves with whether it was there. */
export async function deleteAccessRow(db: DbOrTx, id: string): Promise<boolean> {
  const result = await db.deleteFrom('physical_access').where('id', '=', id).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

/** A subject's records: linked to the id, or unlinked and recorded under exactly that name. */
const ofPerson = (id: string) => (eb: ExpressionBuilder<Database, 'physical_access'>) =>
  eb.or([eb('subject', '=', id), eb.and([eb('subject', 'is', null), eb('person', '=', id)])]);

/** The records naming a person (a data-subject request). */
export async function accessRowsOfPerson(db: DbOrTx, person: string): Promise<AccessRow[]> {
  return db.selectFrom('physical_access').selectAll().where(ofPerson(person)).orderBy('granted_at').execute();
}
