import { BulwarkError } from '@bulwark/protocol';
import { subjectOf, type TxEmit } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import * as certs from './cert.store.ts';
import { reasonCode, revocationReasons, type RevocationReason } from './crl.ts';
import type { PkiContext } from './pki.context.ts';

export interface Revocation {
  deviceId: string;
  actor: string;
  reason: RevocationReason;
}

/**
 * Revokes the device and every certificate it holds, with their events, in one transaction: a crash leaves
 * the revocation and its audit entries both or neither. Effective on the broker within a second.
 */
export async function revokeDevice(ctx: PkiContext, revocation: Revocation): Promise<string[]> {
  const { deviceId, actor, reason } = revocation;
  if (!Object.hasOwn(reasonCode, reason))
    throw new BulwarkError('validation_failed', `reason must be one of ${revocationReasons.join(', ')}`);
  const t = ctx.now();
  const subject = subjectOf.device(deviceId);
  return ctx.events.atomically(async (tx, emit) => {
    await ctx.devices.markRevoked(tx, deviceId);
    const serials = await revokeDeviceCertificates(tx, emit, { deviceId, at: t, actor, reason });
    emit({ type: 'device.revoked', actor, subject, data: { revokedCertificates: serials, reason } });
    return serials;
  });
}

/**
 * Revokes every unrevoked certificate of a device inside the caller's transaction, with a
 * `certificate.revoked` each (the broker drops their sessions and reloads the CRL): the devices module's
 * lost and decommission use it, bound by the composition root. Resolves with the serials.
 */
export async function revokeDeviceCertificates(
  tx: DbOrTx,
  emit: TxEmit,
  revocation: { deviceId: string; at: number; actor: string; reason: RevocationReason },
): Promise<string[]> {
  const { deviceId, at, actor, reason } = revocation;
  const subject = subjectOf.device(deviceId);
  const serials = (await certs.activeDeviceCertificates(tx, deviceId)).map((c) => c.serial);
  await certs.revokeCertificates(tx, { serials, at, reason });
  for (const serial of serials)
    emit({ type: 'certificate.revoked', actor, subject, data: { serial, reason } });
  return serials;
}
