import { subjectOf, type Subject, type SubjectData } from '../events/index.ts';
import { atomically, type DeviceContext } from './device.context.ts';
import * as store from './device.store.ts';

/** A certificate as an export lists it (no key material, no PEM). */
export interface CertificateSummary {
  serial: string;
  notBefore: number;
  notAfter: number;
  revokedAt: number | null;
}

/** The device's certificates, from the pki door when the composition root binds it. */
export type CertificatesOf = (deviceId: string) => Promise<CertificateSummary[]>;

/** Every record the devices module keeps about one device: its row, its tokens (metadata), its certificates. */
export async function exportDevice(
  ctx: DeviceContext,
  subject: Subject,
  certificatesOf?: CertificatesOf,
): Promise<Record<string, unknown>[]> {
  if (subject.kind !== 'device') return [];
  const row = await store.getDeviceRow(ctx.db, subject.id);
  if (!row) return [];
  const tokens = await store.listTokens(ctx.db, subject.id);
  const records: Record<string, unknown>[] = [
    { record: 'device', ...store.toDevice(row) },
    // The token itself was never stored; its hash is a credential check, not data about the device.
    ...tokens.map((t) => ({
      record: 'enrollment_token',
      id: t.id,
      createdAt: t.created_at,
      expiresAt: t.expires_at,
      usedAt: t.used_at,
    })),
  ];
  if (certificatesOf)
    for (const c of await certificatesOf(subject.id)) records.push({ record: 'certificate', ...c });
  return records;
}

/**
 * Erases what the module holds about a device: its attributes (which may describe people: an owner, a
 * room) and its enrollment tokens; the row stays, anonymised and `decommissioned`, so audit entries about
 * it still name a known subject. Its certificates are pki's to revoke. The audit log is never edited.
 */
export async function eraseDevice(
  ctx: DeviceContext,
  subject: Subject,
  actor: string,
): Promise<{ erased: number }> {
  if (subject.kind !== 'device') return { erased: 0 };
  const { id } = subject;
  return atomically(ctx, async (tx, emit) => {
    const row = await store.getDeviceRow(tx, id);
    if (!row) return { erased: 0 };
    const tokens = await store.deleteTokens(tx, id);
    if (row.status === 'decommissioned' && row.attributes === '{}') return { erased: tokens };
    const t = ctx.now();
    await store.updateDevice(tx, {
      id,
      changes: { attributes: '{}', status: 'decommissioned', quarantined_at: null, updated_at: t },
    });
    emit({
      type: 'device.updated',
      actor,
      subject: subjectOf.device(id),
      data: { changes: { attributes: {}, status: 'decommissioned' } },
    });
    return { erased: tokens + 1 };
  });
}

/** The devices module's part of a data-subject request. */
export function deviceSubjectData(
  ctx: DeviceContext,
  certificatesOf: () => CertificatesOf | undefined,
): SubjectData {
  return {
    module: 'devices',
    exportSubject: (subject) => exportDevice(ctx, subject, certificatesOf()),
    eraseSubject: (subject, actor) => eraseDevice(ctx, subject, actor),
  };
}
