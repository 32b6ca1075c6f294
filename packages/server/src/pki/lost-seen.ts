import { X509Certificate } from 'node:crypto';
import { actorOf, createEventRateLimit, subjectOf, type EventBus } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import * as certs from './cert.store.ts';
import type { PkiContext } from './pki.context.ts';
import { normalizeSerial } from './x509.ts';

/** A certificate presented again: where, from which address. */
export interface PresentedCertificate {
  serial: string;
  via: 'mqtt' | 'https';
  remoteAddress: string | null | undefined;
}

/**
 * A lost or stolen device's certificate presented again (the thief, or the device found by someone): one
 * `device.lost_seen` a minute per device at most, the rest counted in `suppressed` (an attacker retrying
 * cannot flood the log). Only a certificate issued here to a device reported `lost` counts.
 */
export function createLostSeen(ctx: Pick<PkiContext, 'db' | 'devices' | 'events' | 'onError'>) {
  const limit = createEventRateLimit({ max: 1, windowMs: 60_000 });

  async function check(seen: PresentedCertificate): Promise<void> {
    const cert = await certs.getCertificate(ctx.db, normalizeSerial(seen.serial));
    if (!cert || cert.kind !== 'device' || !cert.device_id) return;
    const device = await ctx.devices.find(cert.device_id);
    if (device?.status !== 'lost') return;
    const { record, suppressed } = limit.admit(device.id);
    if (!record) return;
    const remoteAddress = seen.remoteAddress ?? null;
    await ctx.events.emit({
      type: 'device.lost_seen',
      actor: actorOf.anonymous(remoteAddress ?? 'unknown'),
      subject: subjectOf.device(device.id),
      data: { via: seen.via, remoteAddress, certSerial: cert.serial, ...(suppressed ? { suppressed } : {}) },
    });
  }

  /** Never delays nor fails the refusal it comes from: recorded on the side. */
  function seen(presented: PresentedCertificate): void {
    check(presented).catch((err: unknown) => ctx.onError?.(err, 'lost device check'));
  }

  /**
   * The broker records every certificate it refuses as `tls.handshake_failed` with the peer's serial: a
   * revoked one in the handshake (the CRL, CERT_REVOKED) or right after it (the store's standing). A lost
   * device's certificates are all revoked, so following these entries sees every MQTT attempt.
   */
  function follow(bus: Pick<EventBus, 'on'>): () => void {
    return bus.on('tls.handshake_failed', (entry) => {
      const { listener, certSerial, remoteAddress } = entry.data;
      if (certSerial) seen({ serial: certSerial, via: listener, remoteAddress });
    });
  }

  return { seen, follow };
}

export type LostSeen = ReturnType<typeof createLostSeen>;

/**
 * A device certificate by serial with its public key, for verifying what its key signed (attestation's
 * signed tamper and health reports, header `kid`): undefined when not a device certificate issued here.
 */
export async function certificateForReport(
  q: DbOrTx,
  serial: string,
): Promise<{ publicKeyPem: string; revoked: boolean; deviceId: string | null } | undefined> {
  const cert = await certs.getCertificate(q, normalizeSerial(serial));
  if (!cert || cert.kind !== 'device') return undefined;
  const publicKeyPem = new X509Certificate(cert.pem).publicKey
    .export({ type: 'spki', format: 'pem' })
    .toString();
  return { publicKeyPem, revoked: cert.revoked_at !== null, deviceId: cert.device_id };
}
