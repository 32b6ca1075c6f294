import { parseSubject, subjectOf, type AuditEntry, type SubjectData } from '../events/index.ts';
import type { DbOrTx } from '../store/index.ts';
import type { PrivacyContext } from './privacy.context.ts';
import { linksOf } from './privacy.store.ts';
import { privacySubjectData } from './privacy.subjects.ts';

/**
 * GDPR Art. 15 (right of access) and Art. 20 (portability): every record Bulwark keeps about one data
 * subject, as machine-readable JSON, module by module (the telemetry store and retained messages by the
 * subject's id, the records of the devices and user accounts linked to them, privacy's own records) and the
 * audit entries naming them. A subject nobody holds data about (unknown, or erased) exports empty modules.
 */
export interface SubjectExport {
  /** The data subject's id (`u-17`). */
  subject: string;
  generatedAt: number;
  /** Records per module (`telemetry`, `retained`, `devices`, `users`, `privacy`): empty arrays when none. */
  modules: Record<string, Record<string, unknown>[]>;
  /** Audit entries about the subject (`person:<id>`) or a user account linked to them, oldest first. */
  audit: AuditEntry[];
  /**
   * Entries a linked user account authored about someone or something else, oldest first: when and what
   * only (their subject and data would disclose others: GDPR Art. 15(4)).
   */
  authored: AuthoredEntry[];
}

/** What an export shows of an entry a subject's user authored about others. */
export interface AuthoredEntry {
  seq: number;
  ts: number;
  type: string;
  /** The kind of what the entry is about (`device`, `user`…), never its id; null when about nothing. */
  subjectKind: string | null;
}

/** The devices and user accounts linked to a subject (privacy_subject_links). */
export interface SubjectLinks {
  devices: string[];
  users: string[];
}

/** How many audit entries per name an export reads at most (a subject's own trail, not the fleet's). */
const AUDIT_LIMIT = 10_000;

export async function subjectLinks(db: DbOrTx, subjectId: string): Promise<SubjectLinks> {
  const rows = await linksOf(db, subjectId);
  return {
    devices: rows.filter((r) => r.link_kind === 'device').map((r) => r.ref),
    users: rows.filter((r) => r.link_kind === 'user').map((r) => r.ref),
  };
}

/** The records of one module about several subjects of a kind, one after the other. */
async function recordsOf(
  source: SubjectData,
  subjects: readonly { kind: 'person' | 'device' | 'user'; id: string }[],
): Promise<Record<string, unknown>[]> {
  const parts = await Promise.all(subjects.map((s) => source.exportSubject(s)));
  return parts.flat();
}

const bySeq = (entries: readonly AuditEntry[]) => [...new Map(entries.map((e) => [e.seq, e])).values()];
const inLogOrder = <T extends { seq: number }>(entries: T[]) => entries.sort((a, b) => a.seq - b.seq);

/**
 * Entries about the subject or one of its users, in full; entries one of its users authored about others,
 * reduced to when and what (each once, in log order).
 */
async function auditEntriesOf(
  ctx: PrivacyContext,
  subjectId: string,
  users: readonly string[],
): Promise<{ audit: AuditEntry[]; authored: AuthoredEntry[] }> {
  const { audit } = ctx.sources();
  const read = (filters: { subject?: string; actor?: string }[]) =>
    Promise.all(filters.map((f) => audit.query({ ...f, limit: AUDIT_LIMIT }))).then((found) =>
      bySeq(found.flat()),
    );
  const [about, by] = await Promise.all([
    read(
      [subjectOf.person(subjectId), ...users.map((u) => subjectOf.user(u))].map((subject) => ({ subject })),
    ),
    read(users.map((u) => ({ actor: subjectOf.user(u) }))),
  ]);
  const own = new Set(about.map((e) => e.seq));
  const authored = by
    .filter((e) => !own.has(e.seq))
    .map((e) => ({ seq: e.seq, ts: e.ts, type: e.type, subjectKind: parseSubject(e.subject)?.kind ?? null }));
  return { audit: inLogOrder(about), authored: inLogOrder(authored) };
}

/** Everything Bulwark keeps about a data subject (GDPR Art. 15); empty modules when nothing. */
export async function exportSubject(ctx: PrivacyContext, subjectId: string): Promise<SubjectExport> {
  const sources = ctx.sources();
  const links = await subjectLinks(ctx.db, subjectId);
  const person = { kind: 'person' as const, id: subjectId };
  const stores = [
    sources.telemetry,
    ...(sources.retained ? [sources.retained] : []),
    ...(sources.persons ?? []),
  ];
  const [stored, devices, users, privacy, audit] = await Promise.all([
    Promise.all(stores.map(async (s) => [s.module, await s.exportSubject(person)] as const)),
    recordsOf(
      sources.devices,
      links.devices.map((id) => ({ kind: 'device' as const, id })),
    ),
    recordsOf(
      sources.users,
      links.users.map((id) => ({ kind: 'user' as const, id })),
    ),
    privacySubjectData(ctx).exportSubject(person),
    auditEntriesOf(ctx, subjectId, links.users),
  ]);
  return {
    subject: subjectId,
    generatedAt: ctx.now(),
    modules: {
      ...Object.fromEntries(stored),
      [sources.devices.module]: devices,
      [sources.users.module]: users,
      privacy,
    },
    ...audit,
  };
}

/** An export's size per module (a request's result and receipt: counts, never the data). */
export function exportCounts(exported: SubjectExport): Record<string, number> {
  return {
    ...Object.fromEntries(Object.entries(exported.modules).map(([m, records]) => [m, records.length])),
    audit: exported.audit.length,
    ...(exported.authored.length > 0 && { authored: exported.authored.length }),
  };
}
