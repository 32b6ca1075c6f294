import type { AuditLog } from './audit-log.ts';
import type { EventType } from './event-types.ts';
import { ERASED, readEntries } from './personal.ts';

/** The audit log's hash chain as the compliance checks read it (IEC 62443-4-2 CR 3.9, ETSI EN 303 645 5.7). */
export interface AuditChainFacts {
  ok: boolean;
  entries: number;
  /** The first entry found bad; null when the chain is intact. */
  brokenAt: number | null;
  reason: string | null;
}

/** Verifies the chain end to end, against the anchors and the head mark, as `bulwark audit-log verify` does. */
export async function auditChainFacts(audit: Pick<AuditLog, 'verify'>): Promise<AuditChainFacts> {
  const result = await audit.verify();
  return {
    ok: result.ok,
    entries: result.entries,
    brokenAt: result.ok ? null : (result.badSeq ?? null),
    reason: result.ok ? null : (result.reason ?? null),
  };
}

const READ_CHUNK = 500;

/**
 * The time of the latest entry of `type` per subject, in the subjects' clear form (`user:alice`), counted in
 * the database (one row per stored subject, then only those rows read); subjects erased are left out.
 */
export async function latestPerSubject(
  audit: Pick<AuditLog, 'db'>,
  type: EventType,
): Promise<Map<string, number>> {
  const { db } = audit;
  const latest = await db
    .selectFrom('audit_log')
    .select((eb) => eb.fn.max('seq').as('seq'))
    .where('type', '=', type)
    .where('subject', 'is not', null)
    .groupBy('subject')
    .execute();
  const seqs = latest.map((r) => Number(r.seq));
  const out = new Map<string, number>();
  for (let i = 0; i < seqs.length; i += READ_CHUNK) {
    const rows = await db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', 'in', seqs.slice(i, i + READ_CHUNK))
      .execute();
    // A subject sealed later has two stored forms (clear before, sealed after): the later entry wins.
    for (const entry of await readEntries(db, rows)) {
      const subject = entry.subject;
      if (subject === null || subject.endsWith(`:${ERASED}`)) continue;
      out.set(subject, Math.max(out.get(subject) ?? 0, entry.ts));
    }
  }
  return out;
}
