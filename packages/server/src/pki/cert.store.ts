import type { CertificatesTable, DbOrTx, PkiMaterialTable } from '../store/index.ts';

export const certKinds = ['root', 'issuing', 'server', 'device', 'app'] as const;
export type CertKind = (typeof certKinds)[number];

export async function insertCertificate(q: DbOrTx, row: CertificatesTable): Promise<void> {
  await q.insertInto('certificates').values(row).execute();
}

export async function getCertificate(q: DbOrTx, serial: string): Promise<CertificatesTable | undefined> {
  return q.selectFrom('certificates').selectAll().where('serial', '=', serial).executeTakeFirst();
}

/** Every certificate issued to a device (revoked ones too), oldest first, as an export lists them. */
export async function deviceCertificateSummaries(q: DbOrTx, deviceId: string) {
  const rows = await q
    .selectFrom('certificates')
    .select(['serial', 'not_before', 'not_after', 'revoked_at'])
    .where('device_id', '=', deviceId)
    .orderBy('issued_at')
    .execute();
  return rows.map((r) => ({
    serial: r.serial,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  }));
}

export async function activeDeviceCertificates(q: DbOrTx, deviceId: string): Promise<CertificatesTable[]> {
  return q
    .selectFrom('certificates')
    .selectAll()
    .where('device_id', '=', deviceId)
    .where('revoked_at', 'is', null)
    .execute();
}

/** Device and application certificates not revoked (expired ones too), oldest first: the compliance facts. */
export async function unrevokedClientCertificates(q: DbOrTx): Promise<CertificatesTable[]> {
  return q
    .selectFrom('certificates')
    .selectAll()
    .where('kind', 'in', ['device', 'app'])
    .where('revoked_at', 'is', null)
    .orderBy('issued_at')
    .execute();
}

/** An application's certificates that are not revoked. */
export async function activeAppCertificates(q: DbOrTx, app: string): Promise<CertificatesTable[]> {
  return q
    .selectFrom('certificates')
    .selectAll()
    .where('kind', '=', 'app')
    .where('app_name', '=', app)
    .where('revoked_at', 'is', null)
    .execute();
}

/** Every certificate issued to an application (revoked ones too), oldest first. */
export async function appCertificateSummaries(q: DbOrTx, app: string) {
  const rows = await q
    .selectFrom('certificates')
    .select(['serial', 'not_before', 'not_after', 'revoked_at'])
    .where('kind', '=', 'app')
    .where('app_name', '=', app)
    .orderBy('issued_at')
    .execute();
  return rows.map((r) => ({
    serial: r.serial,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
  }));
}

export async function revokeCertificates(
  q: DbOrTx,
  revocation: { serials: readonly string[]; at: number; reason: string },
): Promise<void> {
  const { serials, at, reason } = revocation;
  if (serials.length === 0) return;
  await q
    .updateTable('certificates')
    .set({ revoked_at: at, revocation_reason: reason })
    .where('serial', 'in', serials)
    .where('revoked_at', 'is', null)
    .execute();
}

/** Revoked certificates that have not expired yet: what the CRL must list (RFC 5280 §5). */
export async function revokedUnexpired(q: DbOrTx, now: number) {
  return q
    .selectFrom('certificates')
    .select(['serial', 'revoked_at', 'revocation_reason'])
    .where('revoked_at', 'is not', null)
    .where('not_after', '>', now)
    .orderBy('revoked_at')
    .execute();
}

export async function getMaterial(q: DbOrTx, name: string): Promise<PkiMaterialTable | undefined> {
  return q.selectFrom('pki_material').selectAll().where('name', '=', name).executeTakeFirst();
}

/** Inserts unless present; a concurrent first start in another process wins and its material is used. */
export async function putMaterial(q: DbOrTx, row: PkiMaterialTable, replace: boolean): Promise<void> {
  await q
    .insertInto('pki_material')
    .values(row)
    .onConflict((oc) =>
      replace
        ? oc
            .column('name')
            .doUpdateSet({ cert_pem: row.cert_pem, sealed_key: row.sealed_key, created_at: row.created_at })
        : oc.column('name').doNothing(),
    )
    .execute();
}
