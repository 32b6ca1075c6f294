import { X509Certificate as NodeX509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BulwarkError, deviceIdProblem } from '@bulwark/protocol';
import { isAtomicTempFile, renameDurable, writeFileAtomic } from './atomic-write.ts';
import { parseMqttUrl, parseServerUrl } from './urls.ts';

/** What `identity.json` holds. */
export interface IdentityMetadata {
  readonly deviceId: string;
  /** EST server origin, `https://host[:port]`; renewal goes there. */
  readonly serverUrl: string;
  /** Broker URL, `mqtts://host:port`, when known at enrollment. */
  readonly mqttUrl?: string | undefined;
}

/** The device key and the certificate issued for it. They are always replaced together. */
export interface Credentials {
  /** PKCS#8 PEM private key. */
  readonly keyPem: string;
  /** PEM leaf certificate. */
  readonly certPem: string;
}

/** Everything a device needs to connect: who it is, its credentials and the CA chain it trusts. */
export interface DeviceIdentity extends IdentityMetadata, Credentials {
  /** PEM CA chain: the trust anchor for the EST server and the broker. */
  readonly caPem: string;
}

/** Reads and writes one device identity in a directory. */
export interface IdentityStore {
  readonly dir: string;
  /** True once an enrollment has been saved completely (`identity.json` is written last). */
  exists(): Promise<boolean>;
  load(): Promise<DeviceIdentity>;
  /** Writes a whole identity (after enrollment), replacing any previous one. */
  save(identity: DeviceIdentity): Promise<void>;
  /** Replaces key and certificate as one unit (after renewal); see the module comment. */
  replaceCredentials(credentials: Credentials): Promise<void>;
}

const files = {
  key: 'key.pem',
  cert: 'cert.pem',
  ca: 'ca.pem',
  metadata: 'identity.json',
} as const;

/** Staged files of a renewal in progress; see {@link openIdentityStore}. */
const next = (name: string): string => `${name}.next`;

const PRIVATE = 0o600;
const PUBLIC = 0o644;
const DIRECTORY = 0o700;

/**
 * Opens the identity directory `dir`:
 *
 * | file            | content                                  | mode |
 * | --------------- | ---------------------------------------- | ---- |
 * | `key.pem`       | PKCS#8 private key                       | 0600 |
 * | `cert.pem`      | device certificate                       | 0644 |
 * | `ca.pem`        | CA chain to trust                        | 0644 |
 * | `identity.json` | `{ deviceId, serverUrl, mqttUrl? }`      | 0644 |
 *
 * The directory is created with mode 0700. Every file is written atomically (temp file, fsync,
 * rename). A key and its certificate must change together, which two renames cannot do, so
 * renewal first stages `key.pem.next` then `cert.pem.next`, then renames key then cert; `load()`
 * finishes an interrupted renewal (a complete staged pair is rolled forward, a lone staged key is
 * discarded), so after a power cut the device always has a matching pair.
 *
 * @example
 * ```ts
 * const store = openIdentityStore('/var/lib/bulwark');
 * const { deviceId, certPem } = await store.load();
 * ```
 */
export function openIdentityStore(dir: string): IdentityStore {
  const path = (name: string): string => join(dir, name);

  async function ensureDirectory(): Promise<void> {
    // The umask can only remove bits, so a new directory is at most 0700. An existing directory
    // chosen by the operator keeps its mode; key.pem itself is 0600 regardless.
    await mkdir(dir, { recursive: true, mode: DIRECTORY });
  }

  async function finishInterruptedRenewal(): Promise<void> {
    const names = new Set(await readdir(dir));
    for (const name of names) {
      if (isAtomicTempFile(name)) await rm(path(name), { force: true });
    }
    const stagedKey = names.has(next(files.key));
    const stagedCert = names.has(next(files.cert));
    if (stagedCert) {
      // cert.pem.next is written only after key.pem.next is complete, so the pair is whole:
      // roll forward (the server has already issued this certificate).
      if (stagedKey) await renameDurable(path(next(files.key)), path(files.key));
      await renameDurable(path(next(files.cert)), path(files.cert));
    } else if (stagedKey) {
      // Interrupted before the certificate was staged: the old pair is still current.
      await rm(path(next(files.key)), { force: true });
    }
  }

  async function readMetadata(): Promise<IdentityMetadata> {
    let text: string;
    try {
      text = await readFile(path(files.metadata), 'utf8');
    } catch (err) {
      if (isNotFound(err)) {
        throw new BulwarkError('not_found', `no device identity in ${dir}: run "bulwark-agent enroll" first`);
      }
      throw err;
    }
    try {
      return validateMetadata(JSON.parse(text));
    } catch (err) {
      throw new BulwarkError('config_invalid', `${path(files.metadata)} is invalid: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  async function readPrivateKey(): Promise<string> {
    const { mode } = await stat(path(files.key));
    // Like ssh with id_* files: refuse a private key that others can read rather than use it.
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      throw new BulwarkError(
        'forbidden',
        `${path(files.key)} is accessible by other users (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`,
      );
    }
    return readFile(path(files.key), 'utf8');
  }

  return {
    dir,

    async exists() {
      try {
        await stat(path(files.metadata));
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },

    async load() {
      const metadata = await readMetadata();
      await finishInterruptedRenewal();
      const [keyPem, certPem, caPem] = await Promise.all([
        readPrivateKey(),
        readFile(path(files.cert), 'utf8'),
        readFile(path(files.ca), 'utf8'),
      ]);
      assertKeyMatchesCertificate({ keyPem, certPem }, dir);
      return { ...metadata, keyPem, certPem, caPem };
    },

    async save(identity) {
      const metadata = validateMetadata(identity);
      assertKeyMatchesCertificate(identity, dir);
      await ensureDirectory();
      // A staged renewal from a previous identity must never be rolled forward over this one.
      await rm(path(next(files.key)), { force: true });
      await rm(path(next(files.cert)), { force: true });
      await writeFileAtomic(path(files.ca), identity.caPem, PUBLIC);
      await writeFileAtomic(path(files.key), identity.keyPem, PRIVATE);
      await writeFileAtomic(path(files.cert), identity.certPem, PUBLIC);
      // Written last: the identity exists only once everything else is on disk.
      await writeFileAtomic(path(files.metadata), JSON.stringify(metadata, null, 2) + '\n', PUBLIC);
    },

    async replaceCredentials(credentials) {
      assertKeyMatchesCertificate(credentials, dir);
      await writeFileAtomic(path(next(files.key)), credentials.keyPem, PRIVATE);
      await writeFileAtomic(path(next(files.cert)), credentials.certPem, PUBLIC);
      await renameDurable(path(next(files.key)), path(files.key));
      await renameDurable(path(next(files.cert)), path(files.cert));
    },
  };
}

function validateMetadata(value: unknown): IdentityMetadata {
  if (typeof value !== 'object' || value === null) throw new Error('expected an object');
  const { deviceId, serverUrl, mqttUrl } = value as Record<string, unknown>;
  if (typeof deviceId !== 'string') throw new Error('deviceId must be a string');
  const problem = deviceIdProblem(deviceId);
  if (problem !== undefined) throw new Error(problem);
  if (typeof serverUrl !== 'string') throw new Error('serverUrl must be a string');
  if (mqttUrl !== undefined && typeof mqttUrl !== 'string') throw new Error('mqttUrl must be a string');
  return {
    deviceId,
    serverUrl: parseServerUrl(serverUrl),
    ...(mqttUrl === undefined ? {} : { mqttUrl: parseMqttUrl(mqttUrl) }),
  };
}

function assertKeyMatchesCertificate(credentials: Credentials, dir: string): void {
  let matches: boolean;
  try {
    matches = new NodeX509Certificate(credentials.certPem).checkPrivateKey(
      createPrivateKey(credentials.keyPem),
    );
  } catch (err) {
    throw new BulwarkError('config_invalid', `unreadable key or certificate in ${dir}: ${messageOf(err)}`, {
      cause: err,
    });
  }
  if (!matches) {
    throw new BulwarkError('config_invalid', `key.pem does not match cert.pem in ${dir}`);
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
