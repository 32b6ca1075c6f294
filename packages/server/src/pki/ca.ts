import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { BulwarkError } from '@bulwark/protocol';
import type { EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db } from '../store/index.ts';
import { getMaterial, insertCertificate, putMaterial, type CertKind } from './cert.store.ts';
import {
  exportPkcs8,
  fingerprint,
  generateCaKeys,
  importSigningKey,
  newSerial,
  normalizeSerial,
  pkcs8ToPem,
  SIGNING_ALG,
  x509,
} from './x509.ts';

const DAY = 86_400_000;
const ROOT_VALIDITY = 20 * 365 * DAY;
const ISSUING_VALIDITY = 10 * 365 * DAY;
const SERVER_VALIDITY = 397 * DAY;
const SERVER_RENEW_BEFORE = 30 * DAY;
const BACKDATE = 5 * 60_000; // tolerate devices whose clocks run a little behind

export interface CaKeyPair {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export interface PkiMaterial {
  root: CaKeyPair;
  issuing: CaKeyPair;
  /** For the TLS listeners. */
  server: { certPem: string; keyPem: string; cert: x509.X509Certificate };
  /** Issuing CA then root, PEM: what devices and clients trust. */
  chainPem: string;
}

export interface CaDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'atomically'>;
  now: () => number;
  /** Extra names for the server certificate besides localhost, 127.0.0.1, ::1 and this host's name. */
  hostnames: readonly string[];
  /**
   * Only the server issues or renews its certificate; one-shot CLI processes use what is stored, so a CLI
   * run with other host names never replaces the server's certificate.
   */
  manageServerCertificate: boolean;
}

const caExtensions = async (publicKey: CryptoKey, pathLength: number, issuerPublicKey: CryptoKey) => [
  // RFC 5280 §4.2.1.9: cA with a path length; §4.2.1.3: keyCertSign and cRLSign, both critical.
  new x509.BasicConstraintsExtension(true, pathLength, true),
  new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
  await x509.SubjectKeyIdentifierExtension.create(publicKey),
  await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey),
];

/** The `certificates` row of a certificate issued here. */
export function certRow(issued: {
  cert: x509.X509Certificate;
  kind: CertKind;
  deviceId: string | null;
  issuedAt: number;
  /** The application of a `kind: 'app'` certificate. */
  appName?: string;
}) {
  const { cert, kind, deviceId, issuedAt } = issued;
  return {
    serial: normalizeSerial(cert.serialNumber),
    kind,
    device_id: deviceId,
    subject: cert.subject,
    fingerprint: fingerprint(cert),
    not_before: cert.notBefore.getTime(),
    not_after: cert.notAfter.getTime(),
    pem: cert.toString('pem'),
    issued_at: issuedAt,
    revoked_at: null,
    revocation_reason: null,
    ...(issued.appName === undefined ? {} : { app_name: issued.appName }),
  };
}

export function serverNames(configured: readonly string[]): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1', ...configured]);
  const host = osHostname();
  if (/^[A-Za-z0-9.-]{1,253}$/.test(host)) names.add(host);
  return [...names];
}

async function createHierarchy(deps: CaDeps): Promise<void> {
  const t = deps.now();
  const install = randomBytes(4).toString('hex');
  const rootKeys = await generateCaKeys();
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: newSerial(),
    name: `CN=Bulwark Root CA ${install}, O=Bulwark`,
    notBefore: new Date(t - BACKDATE),
    notAfter: new Date(t + ROOT_VALIDITY),
    keys: rootKeys,
    signingAlgorithm: SIGNING_ALG,
    // pathLen 1: the root signs the issuing CA only, which signs end entities only.
    extensions: await caExtensions(rootKeys.publicKey, 1, rootKeys.publicKey),
  });
  const issuingKeys = await generateCaKeys();
  const issuing = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=Bulwark Issuing CA ${install}, O=Bulwark`,
    issuer: root.subject,
    notBefore: new Date(t - BACKDATE),
    notAfter: new Date(t + ISSUING_VALIDITY),
    publicKey: issuingKeys.publicKey,
    signingKey: rootKeys.privateKey,
    signingAlgorithm: SIGNING_ALG,
    extensions: await caExtensions(issuingKeys.publicKey, 0, rootKeys.publicKey),
  });
  // The hierarchy and its event commit together; a concurrent first start in another process wins.
  await deps.events.atomically(async (trx, emit) => {
    if (await getMaterial(trx, 'root')) return; // another process initialised it first
    for (const [name, cert, keys] of [
      ['root', root, rootKeys],
      ['issuing', issuing, issuingKeys],
    ] as const) {
      await putMaterial(
        trx,
        {
          name,
          cert_pem: cert.toString('pem'),
          sealed_key: deps.box.seal(await exportPkcs8(keys.privateKey), `pki/${name}`),
          created_at: t,
        },
        false,
      );
      await insertCertificate(trx, certRow({ cert, kind: name, deviceId: null, issuedAt: t }));
    }
    emit({
      type: 'pki.initialized',
      actor: 'system',
      subject: 'pki',
      data: {
        rootSerial: normalizeSerial(root.serialNumber),
        issuingSerial: normalizeSerial(issuing.serialNumber),
        algorithm: 'ECDSA P-256 / SHA-256',
      },
    });
  });
}

async function loadCa(deps: CaDeps, name: 'root' | 'issuing'): Promise<CaKeyPair | undefined> {
  const row = await getMaterial(deps.db, name);
  if (!row) return undefined;
  return {
    cert: new x509.X509Certificate(row.cert_pem),
    key: await importSigningKey(deps.box.open(row.sealed_key, `pki/${name}`)),
  };
}

function sanNames(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.toJSON() ?? []).map((n) => n.value).sort();
}

/** Loads the CA hierarchy, creating it at first start, and a server certificate that fits the configured names. */
/**
 * Whether the store holds a root CA and, given a box, that its sealed key opens with that master key
 * (throws `config_invalid` if it does not). A store from before key check values proves its key this way.
 */
export async function hasRootKey(deps: {
  db: Db;
  box?: Pick<SecretBox, 'open'> | undefined;
}): Promise<boolean> {
  const root = await getMaterial(deps.db, 'root');
  if (!root) return false;
  deps.box?.open(root.sealed_key, 'pki/root');
  return true;
}

export async function loadOrCreatePki(deps: CaDeps): Promise<PkiMaterial> {
  if (!(await getMaterial(deps.db, 'root'))) {
    // Certificates without their CA: the CA was lost, not never made. A new CA would silently cut off
    // every enrolled device (their chains no longer verify), so stop instead.
    const issued = await deps.db.selectFrom('certificates').select('serial').limit(1).executeTakeFirst();
    if (issued)
      throw new BulwarkError(
        'config_invalid',
        'the store holds issued certificates but no CA (pki_material is missing its root): restore the store from a backup; a new CA is not created over existing certificates',
      );
    await createHierarchy(deps);
  }
  const root = await loadCa(deps, 'root');
  const issuing = await loadCa(deps, 'issuing');
  if (!root || !issuing)
    throw new Error('PKI material is incomplete: root or issuing CA missing from the store');

  const names = serverNames(deps.hostnames);
  const current = await getMaterial(deps.db, 'server');
  let server: PkiMaterial['server'] | undefined;
  if (current) {
    const cert = new x509.X509Certificate(current.cert_pem);
    const fits =
      cert.issuer === issuing.cert.subject &&
      cert.notAfter.getTime() - deps.now() > SERVER_RENEW_BEFORE &&
      JSON.stringify(sanNames(cert)) === JSON.stringify([...names].sort());
    if (fits)
      server = {
        cert,
        certPem: current.cert_pem,
        keyPem: pkcs8ToPem(deps.box.open(current.sealed_key, 'pki/server')),
      };
  }
  if (!server && current && !deps.manageServerCertificate) {
    server = {
      cert: new x509.X509Certificate(current.cert_pem),
      certPem: current.cert_pem,
      keyPem: pkcs8ToPem(deps.box.open(current.sealed_key, 'pki/server')),
    };
  }
  server ??= await issueServerCertificate(deps, issuing, names);
  return {
    root,
    issuing,
    server,
    chainPem: issuing.cert.toString('pem') + '\n' + root.cert.toString('pem') + '\n',
  };
}

async function issueServerCertificate(
  deps: CaDeps,
  issuing: CaKeyPair,
  names: string[],
): Promise<PkiMaterial['server']> {
  const t = deps.now();
  const keys = await generateCaKeys();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: newSerial(),
    subject: `CN=${names.find((n) => isIP(n) === 0) ?? 'localhost'}, O=Bulwark`,
    issuer: issuing.cert.subject,
    notBefore: new Date(t - BACKDATE),
    notAfter: new Date(t + SERVER_VALIDITY),
    publicKey: keys.publicKey,
    signingKey: issuing.key,
    signingAlgorithm: SIGNING_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((value) => ({ type: isIP(value) ? ('ip' as const) : ('dns' as const), value })),
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(issuing.cert),
    ],
  });
  const pkcs8 = await exportPkcs8(keys.privateKey);
  await deps.events.atomically(async (trx, emit) => {
    await putMaterial(
      trx,
      {
        name: 'server',
        cert_pem: cert.toString('pem'),
        sealed_key: deps.box.seal(pkcs8, 'pki/server'),
        created_at: t,
      },
      true,
    );
    await insertCertificate(trx, certRow({ cert, kind: 'server', deviceId: null, issuedAt: t }));
    emit({
      type: 'pki.server_certificate_issued',
      actor: 'system',
      subject: 'pki',
      data: {
        serial: normalizeSerial(cert.serialNumber),
        hostnames: names,
        notAfter: cert.notAfter.getTime(),
      },
    });
  });
  return { cert, certPem: cert.toString('pem'), keyPem: pkcs8ToPem(pkcs8) };
}
