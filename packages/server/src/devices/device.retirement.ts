import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type SubjectData } from '../events/index.ts';
import {
  atomically,
  requireDevice,
  type DeviceContext,
  type DeviceRetirementDeps,
} from './device.context.ts';
import { lockStatus } from './device.lifecycle.ts';
import { requireStatus } from './device.rules.ts';
import * as store from './device.store.ts';
import type { Device } from './device.types.ts';

/**
 * A device leaving service: lost or stolen (and found again), and decommissioned (ETSI EN 303 645 5.11-1:
 * the user's data deleted; IEC 62443-4-2 CR 1.9 / NIST SP 800-82 PE: a lost device's identity no longer
 * trusted). Certificates are pki's, erasure privacy's and attestation's: they come through `ctx.retirement`.
 */

/** How long `decommission` waits for its audit entry (the proof) to be relayed into the log. */
const PROOF_WAIT_MS = 2_000;

function need<K extends keyof DeviceRetirementDeps>(ctx: DeviceContext, name: K): DeviceRetirementDeps[K] {
  const dep = ctx.retirement[name];
  if (!dep)
    throw new BulwarkError(
      'internal',
      `device retirement is not wired: ${name} is missing (the composition root binds it)`,
    );
  return dep;
}

/**
 * Reported lost or stolen: status `lost`, quarantined (a re-enrolled device comes back quarantined), every
 * certificate revoked (live sessions drop, the CRL lists them), and `device.lost`, all in one transaction.
 */
export async function markLost(
  ctx: DeviceContext,
  input: { id: string; reason?: string | undefined; stolen: boolean },
  actor: string,
): Promise<{ revokedCertificates: string[] }> {
  const { id, reason, stolen } = input;
  const device = await requireDevice(ctx.db, id);
  requireStatus(device, 'markLost');
  const revokeCertificates = need(ctx, 'revokeCertificates');
  const t = ctx.now();
  return atomically(ctx, async (tx, emit) => {
    await lockStatus(ctx, tx, {
      id,
      operation: 'markLost',
      changes: { status: 'lost', quarantined_at: device.quarantinedAt ?? t, cert_expires_at: null },
    });
    // The key may be in someone else's hands: keyCompromise (RFC 5280 §5.3.1).
    const serials = await revokeCertificates(tx, emit, {
      deviceId: id,
      at: t,
      actor,
      reason: 'keyCompromise',
    });
    emit({
      type: 'device.lost',
      actor,
      subject: subjectOf.device(id),
      data: { ...(reason ? { reason } : {}), stolen, revokedCertificates: serials },
    });
    return { revokedCertificates: serials };
  });
}

/**
 * A lost device is back: `registered` (a new enrollment token re-enrolls it, the old certificates stay
 * revoked) and still quarantined until an operator releases it.
 */
export async function markFound(
  ctx: DeviceContext,
  input: { id: string; reason?: string | undefined },
  actor: string,
): Promise<Device> {
  const { id, reason } = input;
  requireStatus(await requireDevice(ctx.db, id), 'markFound');
  return atomically(ctx, async (tx, emit) => {
    // Not enrolled any more: enabling it after a disable makes it `registered`, not `active`.
    await lockStatus(ctx, tx, {
      id,
      operation: 'markFound',
      changes: { status: 'registered', enrolled_at: null },
    });
    emit({ type: 'device.found', actor, subject: subjectOf.device(id), data: reason ? { reason } : {} });
    return requireDevice(tx, id);
  });
}

export interface Decommissioned {
  revokedCertificates: string[];
  erased: Record<string, number>;
  proof: { seq: number; hash: string } | null;
}

/**
 * `eraseDeviceData` from the modules' data-subject answers, run in the order given (the devices module's own
 * last: it marks the row `decommissioned`), with the records erased counted by module. A module that fails
 * stops the erasure: the device is not decommissioned yet, and running it again completes it.
 */
export function eraseAcross(
  sources: readonly Pick<SubjectData, 'module' | 'eraseSubject'>[],
): DeviceRetirementDeps['eraseDeviceData'] {
  return async (deviceId, actor) => {
    const erased: Record<string, number> = {};
    for (const source of sources) {
      const { erased: n } = await source.eraseSubject({ kind: 'device', id: deviceId }, actor);
      erased[source.module] = (erased[source.module] ?? 0) + n;
    }
    return erased;
  };
}

/** Polls for the proof entry: the event is durable once `atomically` resolves, the relay may lag a little. */
async function proofOf(ctx: DeviceContext, subject: string): Promise<{ seq: number; hash: string } | null> {
  const auditEntryFor = ctx.retirement.auditEntryFor ?? defaultAuditEntryFor(ctx);
  const deadline = Date.now() + PROOF_WAIT_MS;
  for (;;) {
    const entry = await auditEntryFor(subject, 'device.decommissioned');
    if (entry) return { seq: entry.seq, hash: entry.hash };
    if (Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Without a bound reader: the module's own audit log, when it has one. */
function defaultAuditEntryFor(ctx: DeviceContext): DeviceRetirementDeps['auditEntryFor'] {
  return async (subject, type) => {
    const [entry] = (await ctx.audit?.query({ type, subject, limit: 1 })) ?? [];
    return entry;
  };
}

/**
 * Retires the device: its certificates revoked (one transaction with their events), its data erased by every
 * module (`eraseDeviceData`, which leaves the row anonymised and `decommissioned`), then `device.decommissioned`
 * with the counts: that entry is the proof, answered with its seq and hash. The id is never reused. A crash
 * half-way leaves a device that is not yet decommissioned: running it again completes it.
 */
export async function decommission(
  ctx: DeviceContext,
  input: { id: string; reason?: string | undefined },
  actor: string,
): Promise<Decommissioned> {
  const { id, reason } = input;
  const device = await requireDevice(ctx.db, id);
  if (device.status === 'decommissioned')
    throw new BulwarkError('conflict', `device ${id} is already decommissioned`);
  const revokeCertificates = need(ctx, 'revokeCertificates');
  const eraseDeviceData = need(ctx, 'eraseDeviceData');
  const t = ctx.now();
  const revokedCertificates = await atomically(ctx, async (tx, emit) => {
    await lockStatus(ctx, tx, { id, operation: 'decommission', changes: { cert_expires_at: null } });
    return revokeCertificates(tx, emit, { deviceId: id, at: t, actor, reason: 'cessationOfOperation' });
  });
  const erased = await eraseDeviceData(id, actor);
  const subject = subjectOf.device(id);
  await atomically(ctx, async (tx, emit) => {
    // The devices module's own erasure already made it `decommissioned`; this makes sure of it.
    await store.updateDevice(tx, {
      id,
      changes: { status: 'decommissioned', quarantined_at: null, updated_at: ctx.now() },
    });
    emit({
      type: 'device.decommissioned',
      actor,
      subject,
      data: { ...(reason ? { reason } : {}), revokedCertificates, erased },
    });
  });
  return { revokedCertificates, erased, proof: await proofOf(ctx, subject) };
}
