import type { DbOrTx, FirmwareReleasesTable, FirmwareSbomComponentsTable } from '../store/index.ts';
import { parseStoredReferenceValues } from './reference-values.ts';
import type { Release, ReleaseStatus } from './release.types.ts';

export function toRelease(row: FirmwareReleasesTable, sbomComponents: number): Release {
  return {
    id: row.id,
    name: row.name,
    version: row.version,
    filename: row.filename,
    targetPath: row.target_path,
    hardwareIds: JSON.parse(row.hardware_ids) as string[],
    securityVersion: row.security_version,
    releaseNotes: row.release_notes,
    endOfSupport: row.end_of_support,
    size: row.size,
    sha256: row.sha256,
    status: row.status as ReleaseStatus,
    hasSbom: row.sbom !== null,
    sbomComponents,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    uploadedAt: row.uploaded_at,
    retiredAt: row.retired_at,
    referenceValues: parseStoredReferenceValues(row.reference_values),
  };
}

/** Every column but the SBOM text, which only its own endpoint returns. */
const columns = [
  'id',
  'name',
  'version',
  'filename',
  'target_path',
  'hardware_ids',
  'security_version',
  'release_notes',
  'end_of_support',
  'size',
  'sha256',
  'status',
  'created_by',
  'created_at',
  'updated_at',
  'uploaded_at',
  'retired_at',
  'reference_values',
] as const;

type Row = Omit<FirmwareReleasesTable, 'sbom'> & { has_sbom: number; components: number };

function withCounts(q: DbOrTx) {
  return q
    .selectFrom('firmware_releases as r')
    .select(columns.map((c) => `r.${c}` as const))
    .select((eb) => [
      eb.case().when('r.sbom', 'is', null).then(0).else(1).end().as('has_sbom'),
      eb
        .selectFrom('firmware_sbom_components as c')
        .whereRef('c.release_id', '=', 'r.id')
        .select((e) => e.fn.countAll<number>().as('n'))
        .as('components'),
    ]);
}

const fromRow = (row: Row): Release =>
  toRelease({ ...row, sbom: Number(row.has_sbom) ? '' : null }, Number(row.components ?? 0));

export async function getRelease(q: DbOrTx, id: string): Promise<Release | undefined> {
  const row = await withCounts(q).where('r.id', '=', id).executeTakeFirst();
  return row && fromRow(row as Row);
}

export async function findByNameVersion(
  q: DbOrTx,
  name: string,
  version: string,
): Promise<Release | undefined> {
  const row = await withCounts(q)
    .where('r.name', '=', name)
    .where('r.version', '=', version)
    .executeTakeFirst();
  return row && fromRow(row as Row);
}

export async function findByTargetPath(q: DbOrTx, targetPath: string): Promise<Release | undefined> {
  const row = await withCounts(q).where('r.target_path', '=', targetPath).executeTakeFirst();
  return row && fromRow(row as Row);
}

export async function listReleases(
  q: DbOrTx,
  filter: { name?: string | undefined; status?: ReleaseStatus | undefined; limit: number },
): Promise<Release[]> {
  let query = withCounts(q).orderBy('r.created_at', 'desc').orderBy('r.id').limit(filter.limit);
  if (filter.name !== undefined) query = query.where('r.name', '=', filter.name);
  if (filter.status !== undefined) query = query.where('r.status', '=', filter.status);
  return (await query.execute()).map((r) => fromRow(r as Row));
}

export async function insertRelease(q: DbOrTx, row: FirmwareReleasesTable): Promise<void> {
  await q.insertInto('firmware_releases').values(row).execute();
}

export async function insertComponents(q: DbOrTx, rows: FirmwareSbomComponentsTable[]): Promise<void> {
  // Batches keep each statement under SQLite's bound-parameter limit.
  for (let i = 0; i < rows.length; i += 500)
    await q
      .insertInto('firmware_sbom_components')
      .values(rows.slice(i, i + 500))
      .execute();
}

/** Changes a release (only from these statuses, when given); true when it applied. */
export async function updateRelease(
  q: DbOrTx,
  update: {
    id: string;
    changes: Partial<Omit<FirmwareReleasesTable, 'id'>>;
    onlyIfStatus?: ReleaseStatus[] | undefined;
  },
): Promise<boolean> {
  let query = q.updateTable('firmware_releases').set(update.changes).where('id', '=', update.id);
  if (update.onlyIfStatus) query = query.where('status', 'in', update.onlyIfStatus);
  return Number((await query.executeTakeFirst()).numUpdatedRows) === 1;
}

export async function deleteRelease(q: DbOrTx, id: string): Promise<void> {
  await q.deleteFrom('firmware_sbom_components').where('release_id', '=', id).execute();
  await q.deleteFrom('firmware_releases').where('id', '=', id).where('status', '=', 'draft').execute();
}

export async function getSbom(q: DbOrTx, id: string): Promise<string | null | undefined> {
  const row = await q.selectFrom('firmware_releases').select('sbom').where('id', '=', id).executeTakeFirst();
  return row?.sbom;
}

export async function componentsOf(q: DbOrTx, releaseId?: string): Promise<FirmwareSbomComponentsTable[]> {
  let query = q.selectFrom('firmware_sbom_components').selectAll().orderBy('release_id').orderBy('idx');
  if (releaseId !== undefined) query = query.where('release_id', '=', releaseId);
  return query.execute();
}
