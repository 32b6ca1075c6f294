import type { ComplianceBaselinesTable, DbOrTx } from '../store/index.ts';

/**
 * The baseline versions (compliance_baselines): one row per version applied, the document as given. Queries
 * only, each taking the database or transaction first. bigint columns read back as strings on PostgreSQL.
 */

export interface BaselineRow {
  version: number;
  name: string;
  document: string;
  sha256: string;
  appliedAt: number;
  appliedBy: string;
}

const toRow = (r: ComplianceBaselinesTable): BaselineRow => ({
  version: Number(r.version),
  name: r.name,
  document: r.document,
  sha256: r.sha256,
  appliedAt: Number(r.applied_at),
  appliedBy: r.applied_by,
});

/** The version in force: the newest one applied (undefined: none, the built-in baseline). */
export async function latestBaselineRow(q: DbOrTx): Promise<BaselineRow | undefined> {
  const row = await q
    .selectFrom('compliance_baselines')
    .selectAll()
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row && toRow(row);
}

export async function insertBaselineRow(q: DbOrTx, row: BaselineRow): Promise<void> {
  await q
    .insertInto('compliance_baselines')
    .values({
      version: row.version,
      name: row.name,
      document: row.document,
      sha256: row.sha256,
      applied_at: row.appliedAt,
      applied_by: row.appliedBy,
    })
    .execute();
}

/** The versions applied, newest first, without their documents. */
export async function listBaselineRows(q: DbOrTx, limit: number): Promise<Omit<BaselineRow, 'document'>[]> {
  const rows = await q
    .selectFrom('compliance_baselines')
    .select(['version', 'name', 'sha256', 'applied_at', 'applied_by'])
    .orderBy('version', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({
    version: Number(r.version),
    name: r.name,
    sha256: r.sha256,
    appliedAt: Number(r.applied_at),
    appliedBy: r.applied_by,
  }));
}
