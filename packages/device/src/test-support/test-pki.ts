import { randomBytes } from 'node:crypto';
import { fingerprintOf } from '../certificate.ts';
import { generateDeviceKey } from '../keys.ts';
import { x509 } from '../x509.ts';

const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface IssueParams {
  /** e.g. `CN=pump-17` */
  readonly subject: string;
  readonly publicKey: x509.PublicKeyType;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
  /** Subject alternative names, for server certificates. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/** A throwaway CA for tests: a self-signed ECDSA P-256 root that issues leaf certificates. */
export interface TestCa {
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  /** SHA-256, `AB:CD:…` */
  readonly fingerprint: string;
  issue(params: IssueParams): Promise<x509.X509Certificate>;
  /** A new P-256 key and a certificate for it, both PEM. */
  issueKeyAndCert(
    params: Omit<IssueParams, 'publicKey'>,
  ): Promise<{ keyPem: string; certPem: string; serialNumber: string }>;
}

export async function createTestCa(commonName = 'Bulwark Test Root'): Promise<TestCa> {
  const keys = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3_600_000),
    keys,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });

  async function issue(params: IssueParams): Promise<x509.X509Certificate> {
    const now = Date.now();
    const names = [
      ...(params.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(params.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    return x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: params.subject,
      issuer: cert.subject,
      notBefore: params.notBefore ?? new Date(now - 60_000),
      notAfter: params.notAfter ?? new Date(now + 3_600_000),
      publicKey: params.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      ],
    });
  }

  return {
    cert,
    certPem: cert.toString('pem') + '\n',
    fingerprint: fingerprintOf(new Uint8Array(cert.rawData)),
    issue,
    async issueKeyAndCert(params) {
      const key = await generateDeviceKey('ec-p256');
      const issued = await issue({ ...params, publicKey: key.keyPair.publicKey });
      return {
        keyPem: key.privateKeyPem,
        certPem: issued.toString('pem') + '\n',
        serialNumber: issued.serialNumber.toUpperCase(),
      };
    },
  };
}

/** A TLS server certificate for the loopback interface. */
export function issueLocalhostCert(ca: TestCa): Promise<{ keyPem: string; certPem: string }> {
  return ca.issueKeyAndCert({ subject: 'CN=localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
}

/** A positive serial number (the high bit clear), as RFC 5280 §4.1.2.2 requires. */
function serial(): string {
  return '01' + randomBytes(15).toString('hex');
}
