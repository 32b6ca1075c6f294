import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** The highest head this node has seen, kept in a file outside the database (see `AuditLogDeps.headFile`). */
export interface HeadMark {
  seq: number;
  hash: string;
}

export function readHeadFile(file: string | undefined): HeadMark | undefined {
  if (!file) return undefined;
  try {
    const mark = JSON.parse(readFileSync(file, 'utf8')) as HeadMark;
    return Number.isInteger(mark.seq) && typeof mark.hash === 'string' ? mark : undefined;
  } catch {
    return undefined;
  }
}

/** Records `mark` unless the file already holds a head at least as far. */
export function markHead(file: string | undefined, mark: HeadMark): void {
  if (!file) return;
  const known = readHeadFile(file);
  if (known && known.seq >= mark.seq) return;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(mark) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}
