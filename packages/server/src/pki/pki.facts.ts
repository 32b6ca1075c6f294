import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { keyTypes, type KeyType } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import type { CertificatesTable } from '../store/index.ts';
import * as certs from './cert.store.ts';
import type { PkiContext } from './pki.context.ts';
import { normalizeSerial, type x509 } from './x509.ts';

/** A certificate as the compliance checks see it (the consumer's `CertificateFact`, stated here). */
export interface PkiCertificateFact {
  serial: string;
  subject: string;
  notBefore: number;
  notAfter: number;
  /** Null when the key is of a type not in `keyTypes` (then `keyDescription` says what it is). */
  keyType: KeyType | null;
  keyDescription: string;
  /** sha256 of the SubjectPublicKeyInfo (DER), hex: equal keys have equal fingerprints. */
  publicKeySha256: string;
}

/** What the PKI states for the compliance checks (ETSI EN 303 645 5.1/5.4, IEC 62443-4-2 CR 1.8/1.9). */
export interface PkiFacts {
  /** The CA chain the platform issues from: root first. */
  ca: PkiCertificateFact[];
  /** The TLS server certificate of the listeners. */
  server: PkiCertificateFact | null;
  deviceCertValidityMs: number;
  /** Per device in service (registered, active, disabled), its newest certificate not revoked. */
  deviceCertificates: (PkiCertificateFact & { deviceId: string })[];
  /** Every certificate not revoked and not expired, of devices and apps, with its owner (`device:x`, `app:y`). */
  activeCertificates: (PkiCertificateFact & { owner: string })[];
}

const inService = ['registered', 'active', 'disabled'] as const;
const DEVICE_PAGE = 10_000;

const curveNames: Record<string, string> = {
  prime256v1: 'p256',
  secp384r1: 'p384',
  secp521r1: 'p521',
};

/** `ec-p256`, `rsa-3072`, `ed25519`, … from the key itself; unknown curves and sizes keep their own name. */
export function describeKey(spkiDer: Buffer): { keyType: KeyType | null; keyDescription: string } {
  const key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  const type = key.asymmetricKeyType ?? 'unknown';
  const details = key.asymmetricKeyDetails ?? {};
  let description: string = type;
  if (type === 'ec')
    description = `ec-${curveNames[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown'}`;
  else if (type === 'rsa' || type === 'rsa-pss') description = `${type}-${details.modulusLength ?? 0}`;
  const keyType = (keyTypes as readonly string[]).includes(description) ? (description as KeyType) : null;
  return { keyType, keyDescription: description };
}

function keyFacts(spkiDer: Buffer) {
  return { ...describeKey(spkiDer), publicKeySha256: createHash('sha256').update(spkiDer).digest('hex') };
}

/** A certificate of the platform's own material (CA, server). */
export function materialFact(cert: x509.X509Certificate): PkiCertificateFact {
  return {
    serial: normalizeSerial(cert.serialNumber),
    subject: cert.subject,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
    ...keyFacts(Buffer.from(cert.publicKey.rawData)),
  };
}

/** A stored certificate: the row's own columns, the key read from its PEM. */
function rowFact(row: CertificatesTable): PkiCertificateFact {
  const spki = new X509Certificate(row.pem).publicKey.export({ type: 'spki', format: 'der' });
  return {
    serial: row.serial,
    subject: row.subject,
    notBefore: Number(row.not_before),
    notAfter: Number(row.not_after),
    ...keyFacts(spki),
  };
}

/** Ids of the devices in service, read through the devices module's door. */
async function devicesInService(ctx: PkiContext): Promise<Set<string>> {
  const ids = new Set<string>();
  for (const status of inService) {
    let after: string | undefined;
    for (;;) {
      const page = await ctx.devices.list({ status, after, limit: DEVICE_PAGE });
      for (const d of page) ids.add(d.id);
      if (page.length < DEVICE_PAGE) break;
      after = page[page.length - 1]?.id;
    }
  }
  return ids;
}

const ownerOf = (row: CertificatesTable): string | undefined => {
  if (row.kind === 'device' && row.device_id) return subjectOf.device(row.device_id);
  if (row.kind === 'app' && row.app_name) return subjectOf.app(row.app_name);
  return undefined;
};

/** The newest (by issue time) of each device's certificates that are not revoked. */
function newestPerDevice(rows: readonly CertificatesTable[], inServiceIds: ReadonlySet<string>) {
  const newest = new Map<string, CertificatesTable>();
  for (const row of rows) {
    const id = row.device_id;
    if (row.kind !== 'device' || id === null || !inServiceIds.has(id)) continue;
    const current = newest.get(id);
    if (!current || Number(row.issued_at) > Number(current.issued_at)) newest.set(id, row);
  }
  return newest;
}

/** The facts: the CA chain and server certificate, then every device and app certificate not revoked. */
export async function pkiFacts(ctx: PkiContext): Promise<PkiFacts> {
  const { material } = ctx;
  const t = ctx.now();
  const [rows, inServiceIds] = await Promise.all([
    certs.unrevokedClientCertificates(ctx.db),
    devicesInService(ctx),
  ]);
  const facts = new Map<string, PkiCertificateFact>();
  const factOf = (row: CertificatesTable) => {
    let fact = facts.get(row.serial);
    if (!fact) facts.set(row.serial, (fact = rowFact(row)));
    return fact;
  };
  const deviceCertificates = [...newestPerDevice(rows, inServiceIds)]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([deviceId, row]) => ({ ...factOf(row), deviceId }));
  const activeCertificates: PkiFacts['activeCertificates'] = [];
  for (const row of rows) {
    const owner = ownerOf(row);
    if (owner !== undefined && Number(row.not_after) > t) activeCertificates.push({ ...factOf(row), owner });
  }
  return {
    ca: [materialFact(material.root.cert), materialFact(material.issuing.cert)],
    server: materialFact(material.server.cert),
    deviceCertValidityMs: ctx.deviceCertValidityMs,
    deviceCertificates,
    activeCertificates,
  };
}
