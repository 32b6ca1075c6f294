import type { Platform } from '@bulwark/server';
import { x509 } from './bulwark.ts';

export interface AppIdentity {
  /** The app's name: its MQTT client id and its certificate's CN. */
  id: string;
  key: string;
  cert: string;
}

function pemKey(pkcs8: ArrayBuffer): string {
  const base64 = Buffer.from(pkcs8).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${base64.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
}

/**
 * An app with its grants, as `bulwark app add NAME --purpose P --grant G…` makes it (added only when it does
 * not exist yet), and a client certificate for it as `bulwark app cert` makes one: the key is generated here
 * and only the CSR goes to the server (`apps.issueCertificate`).
 */
export async function appInProcess(
  s: { platform: Pick<Platform, 'apps'> },
  app: { name: string; purpose: string; grants: string[] },
): Promise<AppIdentity> {
  const { apps } = s.platform;
  if (!(await apps.list()).some((a) => a.name === app.name)) await apps.add(app, 'bench');
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${app.name}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const issued = await apps.issueCertificate(app.name, csr.toString('pem'), 'bench');
  const key = pemKey(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { id: app.name, key, cert: issued.certificatePem };
}
