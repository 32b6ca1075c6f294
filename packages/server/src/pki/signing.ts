import type { PkiContext } from './pki.context.ts';
import { newSerial, SIGNING_ALG, x509 } from './x509.ts';

/** Tolerates clients whose clocks run a little behind. */
export const BACKDATE = 5 * 60_000;

/** What the server puts into a client certificate: only the public key is the requester's. */
export interface ClientCertificateRequest {
  /** Subject as attribute/value lists: `[{ CN: ['pump-1'] }, { O: ['Bulwark devices'] }]`. */
  subject: Record<string, string[]>[];
  /** The principal's URI name (`urn:bulwark:device:<id>`, `urn:bulwark:app:<name>`), RFC 5280 §4.2.1.6. */
  sanUri: string;
  publicKey: x509.PublicKey;
}

/**
 * Signs a TLS client certificate (devices and apps): subject, SAN and extensions are the server's; end
 * entity (RFC 5280 §4.2.1.9), digitalSignature/keyAgreement, clientAuth only.
 */
export async function signClientCertificate(
  ctx: Pick<PkiContext, 'material' | 'now' | 'deviceCertValidityMs'>,
  request: ClientCertificateRequest,
): Promise<x509.X509Certificate> {
  const { material } = ctx;
  const t = ctx.now();
  return x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: request.subject,
    issuer: material.issuing.cert.subject,
    notBefore: new Date(t - BACKDATE),
    notAfter: new Date(t + ctx.deviceCertValidityMs),
    publicKey: request.publicKey,
    signingKey: material.issuing.key,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: request.sanUri }]),
      await x509.SubjectKeyIdentifierExtension.create(request.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(material.issuing.cert),
    ],
  });
}
