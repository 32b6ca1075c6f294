import { BulwarkError } from '@bulwark/protocol';
import { requireStatus } from '../devices/index.ts';
import { actorOf, subjectOf, type TxEmit } from '../events/index.ts';
import { certRow } from './ca.ts';
import * as certs from './cert.store.ts';
import { validateCsr } from './csr.ts';
import type { PkiContext } from './pki.context.ts';
import { signClientCertificate } from './signing.ts';
import { normalizeSerial, x509 } from './x509.ts';

export interface Issued {
  certificate: x509.X509Certificate;
  /** base64 certs-only PKCS#7 (RFC 7030 §4.2.3). */
  pkcs7: string;
}

export interface EnrollInput {
  deviceId: string;
  token: string;
  csr: string;
  remoteAddress?: string;
}

export interface ReenrollInput {
  peerCertSerial: string | undefined;
  csr: string;
  remoteAddress?: string;
}

/** Signs a device certificate: subject, SAN and extensions are the server's, only the public key is the device's. */
function sign(
  ctx: PkiContext,
  device: { id: string; publicKey: x509.PublicKey },
): Promise<x509.X509Certificate> {
  return signClientCertificate(ctx, {
    subject: [{ CN: [device.id] }, { O: ['Bulwark devices'] }],
    sanUri: `urn:bulwark:device:${device.id}`,
    publicKey: device.publicKey,
  });
}

const issuedOf = (cert: x509.X509Certificate): Issued => ({
  certificate: cert,
  pkcs7: new x509.X509Certificates([cert]).export('base64'),
});

interface Refusal {
  operation: string;
  err: unknown;
  actor: string;
  subject: string | undefined;
  remoteAddress?: string | undefined;
}

/** Records a refused enrollment (rate-limited per address) and throws its error. */
async function refused(ctx: PkiContext, refusal: Refusal): Promise<never> {
  const e = BulwarkError.from(refusal.err);
  const { remoteAddress } = refusal;
  const { record, suppressed } = ctx.refusals.admit(remoteAddress ?? 'unknown');
  if (!record) throw e;
  await ctx.events.emit({
    type: 'enrollment.refused',
    actor: refusal.actor,
    subject: refusal.subject,
    data: {
      operation: refusal.operation,
      reason: e.message,
      code: e.code,
      ...(remoteAddress ? { remoteAddress } : {}),
      ...(suppressed ? { suppressed } : {}),
    },
  });
  throw e;
}

function emitIssued(
  emit: TxEmit,
  issued: { deviceId: string; cert: x509.X509Certificate; keyAlgorithm: string },
  input: { operation: 'simpleenroll' | 'simplereenroll'; remoteAddress?: string | undefined },
): void {
  const device = subjectOf.device(issued.deviceId);
  emit({
    type: 'certificate.issued',
    actor: device,
    subject: device,
    data: {
      serial: normalizeSerial(issued.cert.serialNumber),
      operation: input.operation,
      keyAlgorithm: issued.keyAlgorithm,
      notAfter: issued.cert.notAfter.getTime(),
      ...(input.remoteAddress ? { remoteAddress: input.remoteAddress } : {}),
    },
  });
}

/**
 * EST simpleenroll with a one-time token (RFC 7030 §4.2.1, §3.2.3 HTTP-based client authentication). The
 * certificate, the certificates it supersedes and their events are committed together.
 */
export async function enroll(ctx: PkiContext, input: EnrollInput): Promise<Issued> {
  const { devices } = ctx;
  const device = subjectOf.device(input.deviceId);
  try {
    const check = await devices.checkToken(input.deviceId, input.token);
    const valid = await validateCsr(input.csr);
    const cert = await sign(ctx, { id: input.deviceId, publicKey: valid.csr.publicKey });
    const t = ctx.now();
    await ctx.events.atomically(async (tx, emit) => {
      await devices.completeEnrollment(tx, check);
      // A token re-provisions the device: certificates it held before are superseded.
      const previous = (await certs.activeDeviceCertificates(tx, input.deviceId)).map((c) => c.serial);
      await certs.revokeCertificates(tx, { serials: previous, at: t, reason: 'superseded' });
      await certs.insertCertificate(
        tx,
        certRow({ cert, kind: 'device', deviceId: input.deviceId, issuedAt: t }),
      );
      for (const serial of previous)
        emit({
          type: 'certificate.revoked',
          actor: device,
          subject: device,
          data: { serial, reason: 'superseded' },
        });
      emitIssued(
        emit,
        { deviceId: input.deviceId, cert, keyAlgorithm: valid.keyAlgorithm },
        {
          operation: 'simpleenroll',
          remoteAddress: input.remoteAddress,
        },
      );
    });
    return issuedOf(cert);
  } catch (err) {
    // Until the token checks out, the claimed id is only a claim: the actor is the address.
    return refused(ctx, {
      operation: 'simpleenroll',
      err,
      actor: actorOf.anonymous(input.remoteAddress ?? 'unknown'),
      subject: device,
      remoteAddress: input.remoteAddress,
    });
  }
}

/** The device certificate a re-enrollment authenticates with: ours, a device's, unrevoked, unexpired. */
async function currentCertificate(ctx: PkiContext, peerCertSerial: string | undefined) {
  if (!peerCertSerial) {
    throw new BulwarkError(
      'unauthenticated',
      'simplereenroll requires the current device certificate as TLS client certificate',
    );
  }
  const current = await certs.getCertificate(ctx.db, normalizeSerial(peerCertSerial));
  if (!current || current.kind !== 'device' || !current.device_id) {
    throw new BulwarkError(
      'unauthenticated',
      'the client certificate is not a device certificate issued here',
    );
  }
  return { ...current, device_id: current.device_id };
}

function requireValid(ctx: PkiContext, current: { revoked_at: number | null; not_after: number }): void {
  if (current.revoked_at !== null)
    throw new BulwarkError('device_revoked', 'the client certificate has been revoked');
  if (current.not_after <= ctx.now())
    throw new BulwarkError('unauthenticated', 'the client certificate has expired');
}

/**
 * EST simplereenroll (RFC 7030 §4.2.2): the client authenticates with its current certificate, already
 * verified against our CA by TLS; it must still be ours, unrevoked, and belong to an active device.
 */
export async function reenroll(ctx: PkiContext, input: ReenrollInput): Promise<Issued> {
  let actor: string = actorOf.anonymous(input.remoteAddress ?? 'unknown');
  let deviceId: string | undefined;
  try {
    const current = await currentCertificate(ctx, input.peerCertSerial);
    const id = current.device_id;
    deviceId = id;
    actor = actorOf.device(id);
    if (current.revoked_at !== null)
      ctx.lostSeen.seen({ serial: current.serial, via: 'https', remoteAddress: input.remoteAddress });
    requireValid(ctx, current);
    const device = await ctx.devices.find(id);
    if (!device) throw new BulwarkError('device_revoked', 'device no longer exists');
    requireStatus(device, 'reenroll');
    const valid = await validateCsr(input.csr);
    const cert = await sign(ctx, { id, publicKey: valid.csr.publicKey });
    // Re-checked in the transaction that stores the certificate: a revocation meanwhile wins.
    await ctx.events.atomically(async (tx, emit) => {
      await ctx.devices.lockStatus(tx, id, 'reenroll');
      if ((await certs.getCertificate(tx, current.serial))?.revoked_at !== null) {
        throw new BulwarkError('device_revoked', 'the client certificate has been revoked');
      }
      await certs.insertCertificate(tx, certRow({ cert, kind: 'device', deviceId: id, issuedAt: ctx.now() }));
      emitIssued(
        emit,
        { deviceId: id, cert, keyAlgorithm: valid.keyAlgorithm },
        {
          operation: 'simplereenroll',
          remoteAddress: input.remoteAddress,
        },
      );
    });
    return issuedOf(cert);
  } catch (err) {
    return refused(ctx, {
      operation: 'simplereenroll',
      err,
      actor,
      subject: deviceId && subjectOf.device(deviceId),
      remoteAddress: input.remoteAddress,
    });
  }
}
