import type { z } from 'zod';
import type { api } from '@bulwark/protocol';

export type AuditEntry = z.output<typeof api.audit.auditEntry>;

/** What the audit view asks for: a type prefix (`device.`) and a subject (`device:pump-1`), each optional. */
export interface AuditFilter {
  typePrefix: string;
  subject: string;
}

/** At most this many entries are kept on screen; older ones are read again with "Older entries". */
export const MAX_SHOWN = 1000;

/** Newest first, as read from the API and the stream. */
export interface AuditList {
  entries: AuditEntry[];
  /** The cursor for the next older page (`before`), null when the oldest entry is shown. */
  next: number | null;
}

export const emptyList: AuditList = { entries: [], next: null };

/** Whether an entry (a live one: the stream is not filtered by the server) belongs in the filtered view. */
export function matches(entry: AuditEntry, filter: AuditFilter): boolean {
  return (
    entry.type.startsWith(filter.typePrefix) && (filter.subject === '' || entry.subject === filter.subject)
  );
}

/** The next older page appended (entries already shown are not shown twice). */
export function withOlder(list: AuditList, page: AuditList): AuditList {
  const seen = new Set(list.entries.map((e) => e.seq));
  return { entries: [...list.entries, ...page.entries.filter((e) => !seen.has(e.seq))], next: page.next };
}

/**
 * A live entry on top. Beyond MAX_SHOWN the oldest shown are dropped, and "Older entries" reads on from the
 * oldest one kept.
 */
export function withLive(list: AuditList, entry: AuditEntry, filter: AuditFilter): AuditList {
  if (!matches(entry, filter) || list.entries.some((e) => e.seq === entry.seq)) return list;
  const entries = [entry, ...list.entries].sort((a, b) => b.seq - a.seq);
  if (entries.length <= MAX_SHOWN) return { entries, next: list.next };
  const kept = entries.slice(0, MAX_SHOWN);
  return { entries: kept, next: kept[kept.length - 1]?.seq ?? null };
}

/** A few fields of an entry's data on one line (`reason=keyCompromise · serials=1`), the rest behind a toggle. */
export function dataSummary(data: Record<string, unknown>, max = 3): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(data).slice(0, max)) {
    const text =
      typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? String(value)
        : Array.isArray(value)
          ? `${value.length} item${value.length === 1 ? '' : 's'}`
          : value === null
            ? 'null'
            : '{…}';
    parts.push(`${key}=${text.length > 40 ? `${text.slice(0, 39)}…` : text}`);
  }
  const more = Object.keys(data).length - max;
  return parts.join(' · ') + (more > 0 ? ` · +${more}` : '');
}
