import type { Db, DbOrTx, FirmwareAdvisoriesTable } from '../store/index.ts';
import type { Advisory, OsvAffected } from './osv.ts';
import { advisorySeverities, type AdvisorySeverity } from './severity.ts';

/**
 * The advisory tables, owned by risk: `firmware_advisories` (imported OSV records) and
 * `firmware_release_vulnerabilities` (which release's SBOM component each advisory affects).
 */

export interface MatchRow {
  release_id: string;
  advisory_id: string;
  purl: string;
  component_version: string;
}

export const scoreOf = (tenths: number | null) => (tenths === null ? null : tenths / 10);
/** A stored severity (unknown when the column holds something else). */
export const severityOf = (value: string): AdvisorySeverity =>
  advisorySeverities.find((s) => s === value) ?? 'unknown';

/** Advisories in force (not withdrawn), with what they affect. */
export async function activeAdvisories(q: DbOrTx): Promise<{ id: string; affected: OsvAffected[] }[]> {
  const rows = await q
    .selectFrom('firmware_advisories')
    .select(['id', 'affected'])
    .where('withdrawn', 'is', null)
    .execute();
  return rows.map((a) => ({ id: a.id, affected: JSON.parse(a.affected) as OsvAffected[] }));
}

/** "release advisory" pairs currently matched. */
export async function matchedPairs(q: DbOrTx): Promise<Set<string>> {
  const rows = await q
    .selectFrom('firmware_release_vulnerabilities')
    .select(['release_id', 'advisory_id'])
    .execute();
  return new Set(rows.map((r) => `${r.release_id} ${r.advisory_id}`));
}

/** Drops the matches of one release (a discarded draft). */
export async function deleteMatchesOf(q: DbOrTx, releaseId: string): Promise<void> {
  await q.deleteFrom('firmware_release_vulnerabilities').where('release_id', '=', releaseId).execute();
}

export async function replaceMatches(db: Db, rows: MatchRow[]): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.deleteFrom('firmware_release_vulnerabilities').execute();
    for (let i = 0; i < rows.length; i += 200)
      await trx
        .insertInto('firmware_release_vulnerabilities')
        .values(rows.slice(i, i + 200))
        .execute();
  });
}

/** Every match with its advisory's severity and score. */
export async function matchesWithSeverity(q: DbOrTx) {
  return q
    .selectFrom('firmware_release_vulnerabilities as v')
    .innerJoin('firmware_advisories as a', 'a.id', 'v.advisory_id')
    .select(['v.release_id', 'v.advisory_id', 'a.severity', 'a.score_tenths'])
    .execute();
}

/** Stores the advisories newer than the stored ones; counts imported and unchanged. */
export async function upsertAdvisories(
  db: Db,
  advisories: Advisory[],
  now: number,
): Promise<{ imported: number; unchanged: number }> {
  let imported = 0;
  let unchanged = 0;
  await db.transaction().execute(async (trx) => {
    for (const a of advisories) {
      const existing = await trx
        .selectFrom('firmware_advisories')
        .select('modified')
        .where('id', '=', a.id)
        .executeTakeFirst();
      if (existing && existing.modified >= a.modified) {
        unchanged++;
        continue;
      }
      const row = advisoryRow(a, now);
      if (existing) await trx.updateTable('firmware_advisories').set(row).where('id', '=', a.id).execute();
      else
        await trx
          .insertInto('firmware_advisories')
          .values({ id: a.id, ...row })
          .execute();
      imported++;
    }
  });
  return { imported, unchanged };
}

function advisoryRow(a: Advisory, now: number): Omit<FirmwareAdvisoriesTable, 'id'> {
  return {
    modified: a.modified,
    summary: a.summary,
    aliases: JSON.stringify(a.aliases),
    severity: a.severity,
    score_tenths: a.score === null ? null : Math.round(a.score * 10),
    cvss_vector: a.cvssVector,
    affected: JSON.stringify(a.affected),
    withdrawn: a.withdrawn,
    imported_at: now,
  };
}

export async function releaseVulnerabilityRows(q: DbOrTx, releaseId: string) {
  return q
    .selectFrom('firmware_release_vulnerabilities as v')
    .innerJoin('firmware_advisories as a', 'a.id', 'v.advisory_id')
    .select([
      'a.id',
      'a.summary',
      'a.aliases',
      'a.severity',
      'a.score_tenths',
      'a.cvss_vector',
      'v.purl',
      'v.component_version',
    ])
    .where('v.release_id', '=', releaseId)
    .execute();
}

export async function advisoryRows(
  q: DbOrTx,
  filter: { severity?: string | undefined; limit?: number | undefined },
) {
  let query = q
    .selectFrom('firmware_advisories')
    .select(['id', 'summary', 'aliases', 'severity', 'score_tenths', 'cvss_vector', 'modified', 'withdrawn'])
    .orderBy('score_tenths', 'desc')
    .orderBy('id')
    .limit(filter.limit ?? 1000);
  if (filter.severity) query = query.where('severity', '=', filter.severity);
  return query.execute();
}
