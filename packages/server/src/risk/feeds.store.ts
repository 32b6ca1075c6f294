import type { DbOrTx, RiskEpssTable, RiskKevTable } from '../store/index.ts';
import { CVE_ID, type EpssRow, type KevEntry } from './feeds.ts';

/**
 * The feed tables, owned by risk: `risk_kev` (the CISA KEV catalog) and `risk_epss` (FIRST EPSS scores), both
 * keyed by CVE id and replaced whole by each import.
 */

/**
 * Rows per INSERT: well under SQLite's 32,766 and PostgreSQL's 65,535 bound parameters (8 columns × 500), and
 * large enough that ~250,000 EPSS rows take a few hundred statements.
 */
export const INSERT_CHUNK = 500;
/** CVE ids per `IN (…)` lookup. */
export const LOOKUP_CHUNK = 500;

function* chunks<T>(list: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < list.length; i += size) yield list.slice(i, i + size);
}

/** When rows are stored, and who hears how far the import got (rows stored, of how many). */
export interface ReplaceOptions {
  now: number;
  onProgress?: ((stored: number, total: number) => void) | undefined;
}

/** Replaces the whole catalog (inside the caller's transaction). */
export async function replaceKev(
  tx: DbOrTx,
  entries: readonly KevEntry[],
  options: ReplaceOptions,
): Promise<void> {
  const { now, onProgress } = options;
  await tx.deleteFrom('risk_kev').execute();
  let stored = 0;
  for (const part of chunks(entries, INSERT_CHUNK)) {
    await tx
      .insertInto('risk_kev')
      .values(
        part.map((e): RiskKevTable => ({
          cve: e.cve,
          vendor: e.vendor,
          product: e.product,
          name: e.name,
          date_added: e.dateAdded,
          due_date: e.dueDate,
          ransomware: e.ransomware,
          imported_at: now,
        })),
      )
      .execute();
    onProgress?.((stored += part.length), entries.length);
  }
}

/** Replaces every score (inside the caller's transaction). */
export async function replaceEpss(
  tx: DbOrTx,
  feed: { rows: readonly EpssRow[]; scoreDate: string | null },
  options: ReplaceOptions,
): Promise<void> {
  const { now, onProgress } = options;
  await tx.deleteFrom('risk_epss').execute();
  let stored = 0;
  for (const part of chunks(feed.rows, INSERT_CHUNK)) {
    await tx
      .insertInto('risk_epss')
      .values(
        part.map((r): RiskEpssTable => ({
          cve: r.cve,
          score: r.score,
          percentile: r.percentile,
          score_date: feed.scoreDate,
          imported_at: now,
        })),
      )
      .execute();
    onProgress?.((stored += part.length), feed.rows.length);
  }
}

const distinct = (cves: readonly string[]) => [...new Set(cves)];

export async function kevRows(q: DbOrTx, cves: readonly string[]) {
  const rows: Pick<RiskKevTable, 'cve' | 'date_added' | 'due_date' | 'ransomware'>[] = [];
  for (const part of chunks(distinct(cves), LOOKUP_CHUNK))
    rows.push(
      ...(await q
        .selectFrom('risk_kev')
        .select(['cve', 'date_added', 'due_date', 'ransomware'])
        .where('cve', 'in', part)
        .execute()),
    );
  return rows;
}

export async function epssRows(q: DbOrTx, cves: readonly string[]) {
  const rows: Pick<RiskEpssTable, 'cve' | 'score' | 'percentile'>[] = [];
  for (const part of chunks(distinct(cves), LOOKUP_CHUNK))
    rows.push(
      ...(await q
        .selectFrom('risk_epss')
        .select(['cve', 'score', 'percentile'])
        .where('cve', 'in', part)
        .execute()),
    );
  return rows;
}

const numberOrNull = (value: unknown) => (value === null || value === undefined ? null : Number(value));

/** How many entries each feed holds and when it was imported (every row of one import has the same time). */
export async function feedFigures(q: DbOrTx) {
  const [kev, epss] = await Promise.all([
    q
      .selectFrom('risk_kev')
      .select((eb) => [eb.fn.countAll().as('n'), eb.fn.max('imported_at').as('at')])
      .executeTakeFirst(),
    q
      .selectFrom('risk_epss')
      .select((eb) => [
        eb.fn.countAll().as('n'),
        eb.fn.max('imported_at').as('at'),
        eb.fn.max('score_date').as('scoreDate'),
      ])
      .executeTakeFirst(),
  ]);
  return {
    kev: { entries: Number(kev?.n ?? 0), importedAt: numberOrNull(kev?.at) },
    epss: {
      entries: Number(epss?.n ?? 0),
      importedAt: numberOrNull(epss?.at),
      scoreDate: epss?.scoreDate ?? null,
    },
  };
}

/** The CVE ids each advisory is known by: its id when it is one, and its CVE aliases (OSV `aliases`). */
export async function advisoryCves(
  q: DbOrTx,
  advisoryIds: readonly string[],
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const part of chunks(distinct(advisoryIds), LOOKUP_CHUNK)) {
    const rows = await q
      .selectFrom('firmware_advisories')
      .select(['id', 'aliases'])
      .where('id', 'in', part)
      .execute();
    for (const r of rows) {
      const aliases = JSON.parse(r.aliases) as string[];
      out.set(r.id, distinct([r.id, ...aliases].filter((id) => CVE_ID.test(id))));
    }
  }
  return out;
}
