import { appNameProblem, BulwarkError } from '@bulwark/protocol';
import { subjectOf, type TxEmit } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import { certRow } from './ca.ts';
import type { RevocationReason } from './crl.ts';
import * as certs from './cert.store.ts';
import { validateCsr } from './csr.ts';
import type { PkiContext } from './pki.context.ts';
import { signClientCertificate } from './signing.ts';
import { normalizeSerial } from './x509.ts';

/** The organisational unit of every application certificate (devices carry `O=Bulwark devices`). */
export const APP_CERT_OU = 'bulwark-apps';

type Tx = Parameters<Parameters<PkiContext['events']['atomically']>[0]>[0];

export interface AppCertificateRequest {
  app: string;
  /** PKCS#10, PEM or base64 DER; its subject and extensions are ignored (the server sets them). */
  csrPem: string;
  actor: string;
  /** Run in the transaction that stores the certificate (the apps module re-checks the app's status). */
  check?: (tx: Tx) => Promise<void>;
}

export interface AppCertificate {
  serial: string;
  certificatePem: string;
  /** Issuing CA then root: what the app and the broker trust. */
  chainPem: string;
  notAfter: number;
}

/**
 * Signs an application's client certificate from its CSR: CN = app name, OU = bulwark-apps, SAN URI
 * `urn:bulwark:app:<name>` (RFC 5280 §4.2.1.6), the same key policy and proof of possession as device
 * enrollment. The certificate and its `app.certificate_issued` event commit together.
 */
export async function issueAppCertificate(
  ctx: PkiContext,
  request: AppCertificateRequest,
): Promise<AppCertificate> {
  const { app } = request;
  const problem = appNameProblem(app);
  if (problem) throw new BulwarkError('validation_failed', problem);
  const valid = await validateCsr(request.csrPem);
  const cert = await signClientCertificate(ctx, {
    subject: [{ CN: [app] }, { OU: [APP_CERT_OU] }],
    sanUri: `urn:bulwark:app:${app}`,
    publicKey: valid.csr.publicKey,
  });
  const serial = normalizeSerial(cert.serialNumber);
  const notAfter = cert.notAfter.getTime();
  await ctx.events.atomically(async (tx, emit) => {
    await request.check?.(tx);
    await certs.insertCertificate(
      tx,
      certRow({ cert, kind: 'app', deviceId: null, appName: app, issuedAt: ctx.now() }),
    );
    emit({
      type: 'app.certificate_issued',
      actor: request.actor,
      subject: subjectOf.app(app),
      data: { serial, notAfter },
    });
  });
  return { serial, certificatePem: cert.toString('pem'), chainPem: ctx.material.chainPem, notAfter };
}

/**
 * Revokes every certificate of an application inside the caller's transaction (the apps module's
 * revocation: status, tokens, certificates and events commit together), with a `certificate.revoked` each.
 * The CRL lists them like any other.
 */
export async function revokeAppCertificates(
  tx: DbOrTx,
  emit: TxEmit,
  revocation: { app: string; at: number; actor: string; reason?: RevocationReason },
): Promise<string[]> {
  const { app, at, actor } = revocation;
  const reason: RevocationReason = revocation.reason ?? 'cessationOfOperation';
  const serials = (await certs.activeAppCertificates(tx, app)).map((c) => c.serial);
  await certs.revokeCertificates(tx, { serials, at, reason });
  for (const serial of serials)
    emit({ type: 'certificate.revoked', actor, subject: subjectOf.app(app), data: { serial, reason } });
  return serials;
}
