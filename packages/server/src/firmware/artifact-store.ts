import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, type ReadStream } from 'node:fs';
import { open, readdir, rename, rm, stat } from 'node:fs/promises';
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
  /** Removes temporary files older than `olderThanMs` (left by a crash; another process may be uploading). */
  cleanTemporary(now: number, olderThanMs: number): Promise<number>;
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

  return {
    async put(source, expected) {
      const tmp = path.join(tmpDir, `${randomBytes(12).toString('hex')}.part`);
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
        await rename(tmp, fileOf(actual));
      } finally {
        await rm(tmp, { force: true });
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
    async cleanTemporary(now, olderThanMs) {
      let removed = 0;
      for (const name of await readdir(tmpDir)) {
        const file = path.join(tmpDir, name);
        const info = await stat(file).catch(() => undefined);
        if (info && now - info.mtimeMs > olderThanMs) {
          await rm(file, { force: true });
          removed++;
        }
      }
      return removed;
    },
  };
}
