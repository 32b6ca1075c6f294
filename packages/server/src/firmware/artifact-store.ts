import { createHash, randomBytes } from 'node:crypto';
import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  readFileSync,
  readlinkSync,
  type ReadStream,
} from 'node:fs';
import { open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BulwarkError } from '@bulwark/protocol';

export interface ArtifactExpectation {
  /** Exact size in bytes, declared when the release was created. */
  size: number;
  /** Lowercase hex SHA-256, declared when the release was created. */
  sha256: string;
}

/** What {@link ArtifactStore.cleanTemporary} did. */
export interface TemporaryCleanup {
  /** Temporary files removed: their owner is gone. */
  removed: string[];
  /** Temporary files kept: their owner is alive, or cannot be shown to be gone. */
  kept: string[];
}

/** Where firmware images live: content-addressed files under `<data>/firmware/artifacts`. */
export interface ArtifactStore {
  /**
   * Streams `source` to a temporary file while counting and hashing, so an image is never held in memory.
   * Only a complete image of the declared size and hash is moved into place; anything else is deleted and
   * refused with `payload_too_large`, `upload_incomplete` or `hash_mismatch`.
   */
  put(source: Readable, expected: ArtifactExpectation): Promise<void>;
  has(sha256: string): Promise<boolean>;
  read(sha256: string): ReadStream;
  remove(sha256: string): Promise<void>;
  /**
   * Removes the temporary files of uploads that no process owns any more (a crash, a kill, a power cut),
   * whatever their age, and keeps those of live uploads, including other nodes' on a shared directory.
   * See "Temporary files and their owners" below.
   */
  cleanTemporary(): Promise<TemporaryCleanup>;
}

/*
 * Temporary files and their owners.
 *
 * Several nodes may share `<data>/firmware` (docs/firmware.md), so "nobody owns this file" must be decided
 * without guessing from its age. Each process that uploads holds a lease, `tmp/<instance>.lease`, while it
 * has at least one upload in progress; its temporary files are `tmp/<instance>.<random>.part`. The instance
 * id is random per process start. The lease records where the owner runs:
 *
 * - its host: the kernel's boot id and the pid namespace (`/proc/sys/kernel/random/boot_id`,
 *   `/proc/self/ns/pid`). Two processes with the same boot id and pid namespace see the same pids, so
 *   the owner is alive exactly when its pid still runs with the start time the lease recorded
 *   (`/proc/<pid>/stat` field 22): a reused pid has another start time, a reboot another boot id.
 * - a heartbeat: the owner touches its lease every {@link LEASE_RENEW_MS} while uploading. An owner on
 *   another host (or where /proc is not available) is alive while its lease is younger than
 *   {@link LEASE_STALE_MS}.
 *
 * A `.part` whose lease is missing is orphaned: a lease is written before the first `.part` and removed
 * only once the last upload of its process has ended. Files of the naming used before leases existed
 * (`<random>.part`) are removed when older than an hour, as before, since a node of the older version may
 * still be writing one.
 */
const LEASE_RENEW_MS = 30_000;
const LEASE_STALE_MS = 2 * 60_000;
const LEGACY_MAX_AGE_MS = 3_600_000;

interface Lease {
  instance: string;
  hostname: string;
  bootId: string | null;
  pidNamespace: string | null;
  pid: number;
  /** Clock ticks after boot when the process started (`/proc/<pid>/stat` field 22). */
  startTicks: string | null;
}

const readOrNull = (read: () => string): string | null => {
  try {
    return read().trim();
  } catch {
    return null; // not Linux, or /proc not mounted
  }
};

/** Field 22 of `/proc/<pid>/stat` (proc(5)); the command name (field 2) may hold spaces and parentheses. */
function processStartTicks(pid: number | 'self'): string | null {
  const stat = readOrNull(() => readFileSync(`/proc/${pid}/stat`, 'utf8'));
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null; // fields[0] is field 3 (state)
}

function thisProcess(instance: string): Lease {
  return {
    instance,
    hostname: hostname(),
    bootId: readOrNull(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8')),
    pidNamespace: readOrNull(() => readlinkSync('/proc/self/ns/pid')),
    pid: process.pid,
    startTicks: processStartTicks('self'),
  };
}

function parseLease(text: string): Lease | undefined {
  try {
    const v = JSON.parse(text) as Partial<Lease>;
    if (typeof v.instance !== 'string' || typeof v.pid !== 'number' || !Number.isSafeInteger(v.pid))
      return undefined;
    const str = (x: unknown) => (typeof x === 'string' ? x : null);
    return {
      instance: v.instance,
      hostname: typeof v.hostname === 'string' ? v.hostname : '',
      bootId: str(v.bootId),
      pidNamespace: str(v.pidNamespace),
      pid: v.pid,
      startTicks: str(v.startTicks),
    };
  } catch {
    return undefined;
  }
}

const PART = /^([0-9a-f]{24})\.[0-9a-f]{16}\.part$/;
const LEGACY_PART = /^[0-9a-f]{24}\.part$/;
const LEASE = /^([0-9a-f]{24})\.lease$/;

/** True unless the owner of `instance`'s files is shown to be gone (see "Temporary files and their owners"). */
async function ownerAlive(
  at: { me: ReturnType<typeof thisProcess>; leaseFile: string },
  instance: string,
): Promise<boolean> {
  const { me } = at;
  if (instance === me.instance) return true;
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(at.leaseFile)).mtimeMs;
    text = await readFile(at.leaseFile, 'utf8');
  } catch {
    return false; // no lease: its process has ended every upload it started, or died before
  }
  const lease = parseLease(text);
  const sameHost =
    lease !== undefined &&
    lease.instance === instance &&
    me.bootId !== null &&
    me.pidNamespace !== null &&
    lease.bootId === me.bootId &&
    lease.pidNamespace === me.pidNamespace &&
    lease.startTicks !== null;
  if (sameHost) return processStartTicks(lease.pid) === lease.startTicks;
  // Another host, or an unreadable lease (being written?): alive while its heartbeat is fresh.
  return Date.now() - mtimeMs < LEASE_STALE_MS;
}

/**
 * Streams an upload into `tmp` with the size cap and the SHA-256 check, and makes it durable; resolves with
 * its hash. A refusal names why (too large, truncated, broken stream, other bytes).
 */
async function receive(source: Readable, tmp: string, expected: ArtifactExpectation): Promise<string> {
  const hash = createHash('sha256');
  let received = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length;
      if (received > expected.size) {
        done(
          new BulwarkError(
            'payload_too_large',
            `the upload is larger than the declared size of ${expected.size} bytes`,
          ),
        );
        return;
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(source, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
  } catch (err) {
    if (err instanceof BulwarkError) throw err;
    // The client went away or the stream broke: whatever arrived is not the image.
    throw new BulwarkError(
      'upload_incomplete',
      `the upload ended after ${received} of ${expected.size} bytes (${(err as Error).message})`,
      { cause: err },
    );
  }
  if (received !== expected.size)
    throw new BulwarkError(
      'upload_incomplete',
      `the upload is truncated: ${received} of ${expected.size} bytes arrived`,
    );
  const actual = hash.digest('hex');
  if (actual !== expected.sha256)
    throw new BulwarkError(
      'hash_mismatch',
      `the upload's SHA-256 is ${actual}, not the declared ${expected.sha256}`,
    );
  const handle = await open(tmp, 'r');
  try {
    await handle.sync(); // durable before it becomes visible
  } finally {
    await handle.close();
  }
  return actual;
}

export function createArtifactStore(root: string): ArtifactStore {
  const dir = path.join(root, 'artifacts');
  const tmpDir = path.join(root, 'tmp');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  const fileOf = (sha256: string) => {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new BulwarkError('validation_failed', 'bad artifact hash');
    return path.join(dir, sha256);
  };

  const me = thisProcess(randomBytes(12).toString('hex'));
  const leaseOf = (instance: string) => path.join(tmpDir, `${instance}.lease`);
  let uploading = 0;
  let heartbeat: NodeJS.Timeout | undefined;
  // Lease writes and removals run one after another, so a removal never overtakes the next upload's write.
  let leaseOps: Promise<void> = Promise.resolve();
  const serially = (op: () => Promise<void>) => (leaseOps = leaseOps.then(op, op));

  /** Holds this process's lease while at least one upload runs (written before the first `.part`). */
  async function acquireLease(): Promise<void> {
    uploading++;
    try {
      await serially(async () => {
        await writeFile(leaseOf(me.instance), JSON.stringify(me), { mode: 0o600 });
        heartbeat ??= setInterval(() => {
          const t = new Date();
          utimes(leaseOf(me.instance), t, t).catch(() => undefined);
        }, LEASE_RENEW_MS).unref();
      });
    } catch (err) {
      await releaseLease();
      throw err;
    }
  }

  /** Gives the lease up once the last upload has ended and its `.part` is gone. */
  async function releaseLease(): Promise<void> {
    uploading--;
    await serially(async () => {
      if (uploading > 0) return;
      clearInterval(heartbeat);
      heartbeat = undefined;
      await rm(leaseOf(me.instance), { force: true });
    });
  }

  return {
    async put(source, expected) {
      await acquireLease();
      const tmp = path.join(tmpDir, `${me.instance}.${randomBytes(8).toString('hex')}.part`);
      try {
        await rename(tmp, fileOf(await receive(source, tmp, expected)));
      } finally {
        await rm(tmp, { force: true });
        await releaseLease();
      }
    },
    async has(sha256) {
      try {
        return (await stat(fileOf(sha256))).isFile();
      } catch {
        return false;
      }
    },
    read: (sha256) => createReadStream(fileOf(sha256)),
    async remove(sha256) {
      await rm(fileOf(sha256), { force: true });
    },
    async cleanTemporary() {
      const removed: string[] = [];
      const kept: string[] = [];
      const verdicts = new Map<string, Promise<boolean>>();
      const alive = (instance: string) => {
        let verdict = verdicts.get(instance);
        if (!verdict)
          verdicts.set(instance, (verdict = ownerAlive({ me, leaseFile: leaseOf(instance) }, instance)));
        return verdict;
      };
      const drop = async (name: string) => {
        await rm(path.join(tmpDir, name), { force: true });
        removed.push(name);
      };
      const names = (await readdir(tmpDir)).sort();
      for (const name of names) {
        const owner = PART.exec(name)?.[1];
        if (owner !== undefined) {
          if (await alive(owner)) kept.push(name);
          else await drop(name);
        } else if (LEGACY_PART.test(name)) {
          const info = await stat(path.join(tmpDir, name)).catch(() => undefined);
          if (info && Date.now() - info.mtimeMs > LEGACY_MAX_AGE_MS) await drop(name);
          else if (info) kept.push(name);
        }
      }
      // Leases after the files they cover, so a file is never left without the lease that protects it.
      for (const name of names) {
        const owner = LEASE.exec(name)?.[1];
        if (owner !== undefined && !(await alive(owner))) await drop(name);
      }
      return { removed, kept };
    },
  };
}
