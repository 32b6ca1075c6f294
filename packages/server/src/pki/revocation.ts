import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
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
    const serials = (await certs.activeDeviceCertificates(tx, deviceId)).map((c) => c.serial);
    await certs.revokeCertificates(tx, { serials, at: t, reason });
    for (const serial of serials)
      emit({ type: 'certificate.revoked', actor, subject, data: { serial, reason } });
    emit({ type: 'device.revoked', actor, subject, data: { revokedCertificates: serials, reason } });
    return serials;
  });
}
