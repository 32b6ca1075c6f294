import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { appInProcess, enrollInProcess, startTestServer, type TestServer } from '../bulwark/index.ts';

/**
 * One PKI and one fleet for every system under test: a Bulwark data directory in which N devices are
 * enrolled, their keys and certificates, and the server's TLS identity that bare Aedes and Mosquitto
 * reuse (same server certificate, same client CA), and the observer app's identity. Enrollment is slow (tens of ms per device, mostly
 * ASN.1 in JavaScript), so the fixture is kept between runs and only ever extended.
 */
export interface Fixture {
  dir: string;
  /** Pristine Bulwark data directory; copy it before starting a server on it. */
  dataDir: string;
  identitiesFile: string;
  /** The observer app's key and certificate (`{ id, key, cert }`, id = {@link OBSERVER_APP}). */
  observerFile: string;
  caFile: string;
  serverKeyFile: string;
  serverCertFile: string;
  devices: number;
}

interface Meta {
  version: number;
  schemaHash: string;
  devices: number;
}

const FORMAT = 2;
const ROOT = path.join(tmpdir(), 'bulwark-bench');

export const deviceId = (index: number) => `bench-${String(index).padStart(5, '0')}`;

/**
 * The one subscriber of the fan-in scenario (2b). In Bulwark an app (a principal of its own, never a
 * device) with a declared purpose and one grant, connecting with its app certificate; Mosquitto's ACL gives
 * the same name (its certificate's CN) read access to the same filter.
 */
export const OBSERVER_APP = {
  name: 'bench-observer',
  purpose: 'analytics.reporting',
  grants: ['subscribe devices/+/telemetry'],
};

/** The fixture is rebuilt when the store's schema changes, so a stale database is never measured. */
function schemaHash(): string {
  const store = new URL('../../packages/server/src/store/', import.meta.url);
  const hash = createHash('sha256');
  for (const file of ['migrations.ts', 'schema.ts']) {
    try {
      hash.update(readFileSync(new URL(file, store)));
    } catch {
      hash.update(file);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

async function ensureObserver(server: TestServer, file: string): Promise<void> {
  if (existsSync(file)) return;
  writeFileSync(file, JSON.stringify(await appInProcess(server, OBSERVER_APP)), { mode: 0o600 });
}

export async function ensureFixture(
  devices: number,
  options: { fresh: boolean; log: (line: string) => void },
): Promise<Fixture> {
  const dir = path.join(ROOT, 'fixture');
  const fixture: Fixture = {
    dir,
    dataDir: path.join(dir, 'bulwark-data'),
    identitiesFile: path.join(dir, 'identities.json'),
    observerFile: path.join(dir, 'observer.json'),
    caFile: path.join(dir, 'ca-chain.pem'),
    serverKeyFile: path.join(dir, 'server-key.pem'),
    serverCertFile: path.join(dir, 'server-cert.pem'),
    devices,
  };
  const metaFile = path.join(dir, 'fixture.json');
  const hash = schemaHash();
  let meta: Meta | undefined;
  try {
    meta = JSON.parse(readFileSync(metaFile, 'utf8')) as Meta;
  } catch {
    meta = undefined;
  }
  if (options.fresh || !meta || meta.version !== FORMAT || meta.schemaHash !== hash) {
    rmSync(dir, { recursive: true, force: true });
    meta = { version: FORMAT, schemaHash: hash, devices: 0 };
  }
  if (meta.devices >= devices && existsSync(fixture.identitiesFile) && existsSync(fixture.observerFile))
    return fixture;

  mkdirSync(dir, { recursive: true });
  const identities =
    meta.devices > 0 ? (JSON.parse(readFileSync(fixture.identitiesFile, 'utf8')) as unknown[]) : [];
  const started = Date.now();
  options.log(
    `fixture: enrolling devices ${identities.length}..${devices - 1} (cached in ${dir} for later runs)`,
  );
  const server = await startTestServer({ logLevel: 'silent' }, { dataDir: fixture.dataDir });
  try {
    const tlsMaterial = (await server.platform.pki()).serverTls();
    writeFileSync(fixture.serverKeyFile, tlsMaterial.keyPem, { mode: 0o600 });
    writeFileSync(fixture.serverCertFile, tlsMaterial.certPem);
    cpSync(server.caFile, fixture.caFile);
    const bounded = Date.now() + 30 * 60_000;
    for (let i = identities.length; i < devices && Date.now() < bounded; i++) {
      const { id, key, cert } = await enrollInProcess(server, deviceId(i));
      identities.push({ id, key, cert });
      if (i % 1000 === 999) options.log(`fixture: ${i + 1}/${devices} devices`);
    }
    await ensureObserver(server, fixture.observerFile);
  } finally {
    await server.stop({ keepData: true });
  }
  writeFileSync(fixture.identitiesFile, JSON.stringify(identities));
  writeFileSync(metaFile, JSON.stringify({ ...meta, devices: identities.length } satisfies Meta));
  if (identities.length < devices)
    throw new Error(`fixture: only ${identities.length} of ${devices} devices enrolled`);
  options.log(`fixture: ${devices} devices ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return fixture;
}
