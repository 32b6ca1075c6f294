import { accessSync, constants, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';

let chosen: string | undefined;
const MIN_FREE = 4 * 1024 ** 3;

/**
 * Where tests put their data directories and SQLite files: /dev/shm (memory) where there is one, else the
 * system's temporary directory. The store commits durably (synchronous = FULL), and on a disk every commit
 * waits for an fsync that a test never needs; in memory the same code runs without that wait. A small
 * /dev/shm (containers often get 64 MiB) is not used: the firmware tests upload files of a gigabyte.
 */
export function testTmpDir(): string {
  if (chosen !== undefined) return chosen;
  try {
    if (!statSync('/dev/shm').isDirectory()) throw new Error('not a directory');
    accessSync('/dev/shm', constants.W_OK);
    const fs = statfsSync('/dev/shm');
    if (fs.bavail * fs.bsize < MIN_FREE) throw new Error('too small');
    chosen = '/dev/shm';
  } catch {
    chosen = tmpdir();
  }
  return chosen;
}
