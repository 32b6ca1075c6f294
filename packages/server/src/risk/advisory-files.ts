import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { BulwarkError } from '@bulwark/protocol';
import { parseAdvisories, type Advisory } from './osv.ts';

const MAX_FILES = 100_000;
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** A file, or every `.json` file of a directory tree, in name order (bounded). */
async function collectFiles(source: string): Promise<string[]> {
  const info = await stat(source).catch(() => undefined);
  if (!info) throw new BulwarkError('not_found', `${source} does not exist`);
  if (info.isFile()) return [source];
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile() && entry.name.endsWith('.json')) out.push(full);
      if (out.length > MAX_FILES) throw new BulwarkError('validation_failed', `more than ${MAX_FILES} files`);
    }
  };
  await walk(source);
  return out.sort();
}

async function readAdvisoryFile(file: string): Promise<Advisory[]> {
  const info = await stat(file);
  if (info.size > MAX_FILE_BYTES)
    throw new BulwarkError('payload_too_large', `${file} is larger than 64 MiB`);
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch (err) {
    throw new BulwarkError('validation_failed', `${file} is not JSON: ${(err as Error).message}`);
  }
  try {
    return parseAdvisories(json);
  } catch (err) {
    throw new BulwarkError('validation_failed', `${file}: ${(err as Error).message}`);
  }
}

/**
 * The OSV advisories of a file or a directory tree of `.json` files (an offline feed; no network). Every file
 * is validated before anything is stored: one bad record refuses the whole import.
 */
export async function readAdvisoryFiles(source: string): Promise<Advisory[]> {
  const advisories: Advisory[] = [];
  for (const file of await collectFiles(source)) advisories.push(...(await readAdvisoryFile(file)));
  return advisories;
}
