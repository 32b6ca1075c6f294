import type { ErrorCode } from '@bulwark/protocol';
import { statusAllows } from '../devices/index.ts';
import * as certs from './cert.store.ts';
import type { PkiContext } from './pki.context.ts';
import { normalizeSerial } from './x509.ts';

/** What the broker learns about a TLS client before accepting its CONNECT. */
export interface ConnectionIdentity {
  clientId: string;
  certSerial: string | undefined;
  certCn: string | undefined;
  /** The peer's address, when the listener passes it (a lost device seen again names where from). */
  remoteAddress?: string | undefined;
}

/** A device certificate's answer (also what the device-only listeners accept). */
export type DeviceConnectionCheck =
  | { ok: true; kind?: 'device'; deviceId: string; group: string | null; serial: string }
  /** `code` becomes the CONNACK return code through protocol's `mqttConnackOf`. */
  | { ok: false; code: ErrorCode; reason: string };

export type ConnectionCheck =
  | DeviceConnectionCheck
  /**
   * An application's certificate: known here and unrevoked. The client id is not compared with the CN here:
   * an app connects as `NAME` or `NAME/<instance>`, which the apps check (`apps.checkApp`) decides.
   */
  | { ok: true; kind: 'app'; app: string; serial: string };

type Refusal = Extract<ConnectionCheck, { ok: false }>;
const refuse = (code: ErrorCode, reason: string): Refusal => ({ ok: false, code, reason });

/** The identity's own consistency: a client id and a verified certificate. */
function identityProblem(id: ConnectionIdentity): Refusal | undefined {
  // [MQTT-3.1.3-8], [MQTT-3.1.3-9]: identifier problems are answered with 0x02.
  if (id.clientId === '')
    return refuse('validation_failed', 'empty client id: the client id must equal the device id');
  if (!id.certSerial || !id.certCn) return refuse('unauthenticated', 'no verified client certificate');
  return undefined;
}

/** A device certificate names its device, and the client id must be that device's id. */
function cnProblem(id: ConnectionIdentity): Refusal | undefined {
  if (id.certCn === id.clientId) return undefined;
  return refuse(
    'validation_failed',
    `client id "${id.clientId}" does not match the certificate's device id "${id.certCn}"`,
  );
}

/** The broker's identity check for a CONNECT over mutual TLS: a device's certificate, or an app's. */
export async function checkConnection(
  ctx: PkiContext,
  id: ConnectionIdentity,
  via: 'mqtt' | 'https' = 'mqtt',
): Promise<ConnectionCheck> {
  const problem = identityProblem(id);
  if (problem || !id.certSerial)
    return problem ?? refuse('unauthenticated', 'no verified client certificate');
  const cert = await certs.getCertificate(ctx.db, normalizeSerial(id.certSerial));
  if (cert?.kind === 'app' && cert.app_name) {
    // Same refusal as a device's revoked certificate: the app check never sees a revoked credential.
    if (cert.revoked_at !== null)
      return refuse('device_revoked', `certificate revoked (${cert.revocation_reason ?? 'unspecified'})`);
    return { ok: true, kind: 'app', app: cert.app_name, serial: cert.serial };
  }
  const mismatch = cnProblem(id);
  if (mismatch) return mismatch;
  if (!cert || cert.kind !== 'device' || cert.device_id !== id.certCn || !cert.device_id)
    return refuse('forbidden', 'certificate was not issued to this device');
  if (cert.revoked_at !== null) {
    ctx.lostSeen.seen({ serial: cert.serial, via, remoteAddress: id.remoteAddress });
    return refuse('device_revoked', `certificate revoked (${cert.revocation_reason ?? 'unspecified'})`);
  }
  const device = await ctx.devices.find(cert.device_id);
  if (!device) return refuse('not_found', 'unknown device');
  if (!statusAllows(device.status, 'connect')) return refuse('forbidden', `device is ${device.status}`);
  return { ok: true, deviceId: device.id, group: device.group, serial: cert.serial };
}

/**
 * For listeners only devices use (the TUF repository, EST, attestation), all HTTPS: an application's
 * certificate is refused; a lost device's certificate is recorded as seen via https.
 */
export async function checkDeviceConnection(
  ctx: PkiContext,
  id: ConnectionIdentity,
): Promise<DeviceConnectionCheck> {
  const check = await checkConnection(ctx, id, 'https');
  if (check.ok && check.kind === 'app')
    return refuse('forbidden', 'an application certificate does not identify a device');
  return check;
}

/**
 * Whether a certificate that chains to our CA may speak to the broker at all: issued here to a device (that
 * still exists) or to an application, and not revoked. Checked right after the TLS handshake, before any
 * MQTT byte is read; the CRL in the handshake covers revocations, this covers certificates the store does
 * not know (signed, then the store was restored from an older backup) and devices that no longer exist.
 * An app's status is the apps check's, at CONNECT.
 */
export async function certificateStanding(
  ctx: PkiContext,
  serial: string,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const cert = await certs.getCertificate(ctx.db, normalizeSerial(serial));
  if (cert?.kind === 'app' && cert.app_name)
    return cert.revoked_at === null ? { ok: true } : { ok: false, reason: 'certificate_revoked' };
  if (!cert || cert.kind !== 'device' || !cert.device_id) return { ok: false, reason: 'certificate_unknown' };
  if (cert.revoked_at !== null) return { ok: false, reason: 'certificate_revoked' };
  if (!(await ctx.devices.find(cert.device_id))) return { ok: false, reason: 'device_unknown' };
  return { ok: true };
}
