import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Db, DbOrTx, AuditLogTable } from '../store/index.ts';
import type { AuditEntry, EventType, SecurityEvent } from './event-types.ts';
import { anchorMessage, entryHash, entryHashOfCanonicalData, GENESIS_HASH } from './hash-chain.ts';
import { canonicalJson } from './jcs.ts';

/** What the audit log needs to authenticate its head (the master-key MAC; see secrets/). */
export interface AnchorMac {
  mac(purpose: string, message: string): string;
  verifyMac(purpose: string, message: string, mac: string): boolean;
}

export interface AuditLogDeps {
  db: Db;
  mac: AnchorMac;
  now: () => number;
  /** Conflicts from a concurrent writer (another process): recompute and try again. */
  isRetryable: (err: unknown) => boolean;
  /**
   * A file outside the database where this node records the highest head it has seen. Verification
   * requires the log to reach it, so cutting the end off and restoring an older anchor is caught.
   */
  headFile?: string;
}

interface HeadMark {
  seq: number;
  hash: string;
}

function readHeadFile(file: string | undefined): HeadMark | undefined {
  if (!file) return undefined;
  try {
    const mark = JSON.parse(readFileSync(file, 'utf8')) as HeadMark;
    return Number.isInteger(mark.seq) && typeof mark.hash === 'string' ? mark : undefined;
  } catch {
    return undefined;
  }
}

const ANCHOR_PURPOSE = 'audit-anchor';
const ENTRY_PURPOSE = 'audit-entry';
const INSERT_CHUNK = 500;
const MAX_ATTEMPTS = 20;

export interface VerifyResult {
  ok: boolean;
  entries: number;
  headSeq: number;
  /** The first entry found bad, and why. */
  badSeq?: number;
  reason?: string;
}

/** The storage edge: a row's type and data were written from a typed event by `append`. */
function toEntry(row: AuditLogTable): AuditEntry {
  return {
    seq: row.seq,
    ts: row.ts,
    type: row.type,
    actor: row.actor,
    subject: row.subject,
    data: JSON.parse(row.data) as unknown,
    prevHash: row.prev_hash,
    hash: row.hash,
  } as AuditEntry;
}

/** Append-only, hash-chained, anchored. Appends from this process are batched into one transaction. */
export function createAuditLog(deps: AuditLogDeps) {
  const { db, mac, now, isRetryable } = deps;

  async function head(q: DbOrTx): Promise<{ seq: number; hash: string }> {
    const row = await q
      .selectFrom('audit_log')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ?? { seq: 0, hash: GENESIS_HASH };
  }

  async function appendOnce(events: readonly SecurityEvent[]): Promise<AuditEntry[]> {
    return db.transaction().execute(async (trx) => {
      let { seq, hash } = await head(trx);
      const ts = now();
      // The data is stored as its canonical JSON: verification then hashes the stored bytes as they are.
      const dataJson: string[] = [];
      const entries: AuditEntry[] = events.map((event) => {
        seq += 1;
        const json = canonicalJson(event.data ?? {}) ?? '{}';
        dataJson.push(json);
        const fields = {
          seq,
          ts,
          type: event.type,
          actor: event.actor,
          subject: event.subject ?? null,
          prevHash: hash,
        };
        hash = entryHashOfCanonicalData(fields, json);
        return { ...fields, data: JSON.parse(json) as unknown, hash } as AuditEntry;
      });
      for (let i = 0; i < entries.length; i += INSERT_CHUNK) {
        await trx
          .insertInto('audit_log')
          .values(
            entries.slice(i, i + INSERT_CHUNK).map((e, j) => ({
              seq: e.seq,
              ts: e.ts,
              type: e.type,
              actor: e.actor,
              subject: e.subject,
              data: dataJson[i + j]!,
              prev_hash: e.prevHash,
              hash: e.hash,
              mac: mac.mac(ENTRY_PURPOSE, e.hash),
            })),
          )
          .execute();
      }
      const anchor = { seq, hash, mac: mac.mac(ANCHOR_PURPOSE, anchorMessage(seq, hash)) };
      await trx
        .insertInto('audit_anchor')
        .values({ id: 1, ...anchor })
        .onConflict((oc) => oc.column('id').doUpdateSet(anchor))
        .execute();
      return entries;
    });
  }

  function markHead(mark: HeadMark): void {
    if (!deps.headFile) return;
    const known = readHeadFile(deps.headFile);
    if (known && known.seq >= mark.seq) return;
    const tmp = `${deps.headFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(mark) + '\n', { mode: 0o600 });
    renameSync(tmp, deps.headFile);
  }

  return {
    /**
     * Writes the anchor of an empty log (seq 0), so that from the first start on a missing anchor means
     * tampering. Idempotent.
     */
    async ensureAnchor(): Promise<void> {
      const anchor = {
        id: 1,
        seq: 0,
        hash: GENESIS_HASH,
        mac: mac.mac(ANCHOR_PURPOSE, anchorMessage(0, GENESIS_HASH)),
      };
      const present = await db.selectFrom('audit_anchor').select('id').where('id', '=', 1).executeTakeFirst();
      const rows = await db.selectFrom('audit_log').select('seq').limit(1).executeTakeFirst();
      if (!present && !rows)
        await db
          .insertInto('audit_anchor')
          .values(anchor)
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
    },

    /** Appends in one transaction; resolves once the entries are committed (durable). */
    async append(events: readonly SecurityEvent[]): Promise<AuditEntry[]> {
      for (let attempt = 1; ; attempt++) {
        try {
          const entries = await appendOnce(events);
          const last = entries[entries.length - 1];
          if (last) markHead({ seq: last.seq, hash: last.hash });
          return entries;
        } catch (err) {
          if (attempt >= MAX_ATTEMPTS || !isRetryable(err)) throw err;
          await new Promise((r) => setTimeout(r, Math.min(50, attempt * 2 + Math.random() * 5)));
        }
      }
    },

    head: () => head(db),

    /** Entries matching a filter, oldest first; page with `after` (the last seq seen). */
    async query<T extends EventType = EventType>(filter: {
      from?: number | undefined;
      to?: number | undefined;
      type?: T | undefined;
      actor?: string | undefined;
      subject?: string | undefined;
      after?: number | undefined;
      limit: number;
    }): Promise<AuditEntry<T>[]> {
      let q = db.selectFrom('audit_log').selectAll().orderBy('seq').limit(filter.limit);
      if (filter.after !== undefined) q = q.where('seq', '>', filter.after);
      if (filter.from !== undefined) q = q.where('ts', '>=', filter.from);
      if (filter.to !== undefined) q = q.where('ts', '<', filter.to);
      if (filter.type !== undefined) q = q.where('type', '=', filter.type);
      if (filter.actor !== undefined) q = q.where('actor', '=', filter.actor);
      if (filter.subject !== undefined) q = q.where('subject', '=', filter.subject);
      return (await q.execute()).map(toEntry) as AuditEntry<T>[];
    },

    /** The latest entry of a type (e.g. the previous start's configuration). */
    async latest<T extends EventType>(type: T): Promise<AuditEntry<T> | undefined> {
      const row = await db
        .selectFrom('audit_log')
        .selectAll()
        .where('type', '=', type)
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row && (toEntry(row) as AuditEntry<T>);
    },

    async readAfter(afterSeq: number, limit = 500): Promise<AuditEntry[]> {
      const rows = await db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .limit(limit)
        .execute();
      return rows.map(toEntry);
    },

    /**
     * Walks the whole chain: sequence numbers contiguous from 1, each hash recomputed, each link to the
     * previous hash, each entry's MAC (so a row with a correctly recomputed hash still cannot be forged
     * without the master key), and the head matching the MAC-protected anchor (which catches rows removed
     * from the end).
     *
     * The log may grow while it is walked (other nodes, the server beside the CLI), so the anchor is read
     * twice. Before the walk: every entry up to it was committed with it, so the walk must reach it and pass
     * through its hash (rows removed from the end). After the walk: every entry Bulwark committed that the
     * walk saw was anchored by then, so the walk must not go past it (rows inserted). Entries appended after
     * the first read are checked like all others; none is taken for a removal or an insertion.
     */
    async verify(
      options: { pageSize?: number; onProgress?: (seq: number) => void } = {},
    ): Promise<VerifyResult> {
      const pageSize = options.pageSize ?? 5000;
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      let count = 0;
      const mark = readHeadFile(deps.headFile);
      let markedHash: string | undefined;
      const readAnchor = () =>
        db.selectFrom('audit_anchor').selectAll().where('id', '=', 1).executeTakeFirst();
      const first = await readAnchor();
      let firstAnchoredHash: string | undefined;
      const fail = (badSeq: number, reason: string): VerifyResult => ({
        ok: false,
        entries: count,
        headSeq: expectedSeq - 1,
        badSeq,
        reason,
      });
      for (;;) {
        const rows = await db
          .selectFrom('audit_log')
          .selectAll()
          .where('seq', '>=', expectedSeq)
          .orderBy('seq')
          .limit(pageSize)
          .execute();
        for (const row of rows) {
          if (row.seq !== expectedSeq) {
            return row.seq > expectedSeq
              ? fail(
                  expectedSeq,
                  `entry ${expectedSeq} is missing (next entry found is ${row.seq}): a row was deleted`,
                )
              : fail(row.seq, `entry ${row.seq} is out of sequence`);
          }
          if (row.prev_hash !== prevHash) {
            return fail(
              row.seq,
              `entry ${row.seq} does not link to entry ${row.seq - 1} (previous hash differs): a row was changed, inserted or removed before it`,
            );
          }
          const fields = {
            seq: row.seq,
            ts: row.ts,
            type: row.type,
            actor: row.actor,
            subject: row.subject,
            prevHash: row.prev_hash,
          };
          // Fast path: the stored data is the canonical JSON that was hashed. Otherwise (rows written before
          // data was stored canonically, or re-serialized by a tool) canonicalize what it means and compare.
          let recomputed = entryHashOfCanonicalData(fields, row.data);
          if (recomputed !== row.hash) {
            let data: unknown;
            try {
              data = JSON.parse(row.data);
            } catch {
              return fail(row.seq, `entry ${row.seq} has data that is not valid JSON: the row was edited`);
            }
            recomputed = entryHash({ ...fields, data });
          }
          if (recomputed !== row.hash) {
            return fail(
              row.seq,
              `entry ${row.seq} (${row.type}) does not match its hash: the row was edited`,
            );
          }
          if (!mac.verifyMac(ENTRY_PURPOSE, row.hash, row.mac)) {
            return fail(
              row.seq,
              `entry ${row.seq} (${row.type}) has no valid MAC: it was not written by Bulwark (inserted or rewritten)`,
            );
          }
          if (mark && row.seq === mark.seq) markedHash = row.hash;
          if (first && row.seq === first.seq) firstAnchoredHash = row.hash;
          prevHash = row.hash;
          expectedSeq += 1;
          count += 1;
        }
        options.onProgress?.(expectedSeq - 1);
        if (rows.length < pageSize) break;
      }
      const last = expectedSeq - 1;
      const anchor = await readAnchor();
      if (!first || !anchor) return fail(last + 1, 'the audit anchor is missing: it was deleted');
      for (const a of first.seq === anchor.seq && first.mac === anchor.mac ? [anchor] : [first, anchor]) {
        if (!mac.verifyMac(ANCHOR_PURPOSE, anchorMessage(a.seq, a.hash), a.mac)) {
          return fail(
            a.seq,
            `the audit anchor for entry ${a.seq} fails its MAC: the anchor was forged or the master key differs`,
          );
        }
      }
      if (first.seq > last) {
        return fail(
          last + 1,
          `entry ${last + 1} is missing: the log ends at ${last} but was anchored at ${first.seq} (rows removed from the end)`,
        );
      }
      if (first.seq > 0 && firstAnchoredHash !== first.hash) {
        return fail(first.seq, `entry ${first.seq} differs from the anchored head: the chain was rewritten`);
      }
      if (anchor.seq < last) {
        return fail(
          anchor.seq + 1,
          `entry ${anchor.seq + 1} was not written by Bulwark: the log was anchored at ${anchor.seq} but continues to ${last} (rows inserted)`,
        );
      }
      if (anchor.seq === last && anchor.hash !== prevHash) {
        return fail(last, `entry ${last} differs from the anchored head: the chain was rewritten`);
      }
      if (mark && mark.seq > last) {
        return fail(
          last + 1,
          `entry ${last + 1} is missing: this node saw the log reach entry ${mark.seq} (rows removed from the end, older anchor restored)`,
        );
      }
      if (mark && markedHash !== undefined && markedHash !== mark.hash) {
        return fail(
          mark.seq,
          `entry ${mark.seq} differs from what this node recorded: the chain was rewritten`,
        );
      }
      return { ok: true, entries: count, headSeq: last };
    },
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
