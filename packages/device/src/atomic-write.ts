import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `data` so that a reader (or a device that loses power) sees either the old
 * or the new content, never a torn file: write a temporary file in the same directory, fsync it,
 * rename it over the target (rename(2) is atomic within a filesystem), then fsync the directory.
 * The temporary file is created with `mode` from the start, so a private key is never readable by
 * others, not even briefly.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await syncDirectory(dirname(path));
}

/** Renames and makes the new directory entry durable. */
export async function renameDurable(from: string, to: string): Promise<void> {
  await rename(from, to);
  await syncDirectory(dirname(to));
}

/** Names of the temporary files {@link writeFileAtomic} creates, to clean up after a crash. */
export const isAtomicTempFile = (name: string): boolean => /^\..+\.[0-9a-f]{12}\.tmp$/.test(name);

async function syncDirectory(dir: string): Promise<void> {
  // fsync on a directory makes renames durable on Linux/ext4; some platforms (Windows) cannot open
  // a directory for sync, where the rename is still atomic, just not guaranteed durable yet.
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort, see above
  } finally {
    await handle?.close();
  }
}
