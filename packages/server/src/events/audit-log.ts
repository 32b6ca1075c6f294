import type { Db, DbOrTx, Tx } from '../store/index.ts';
import {
  ANCHOR_PURPOSE,
  ENTRY_PURPOSE,
  verifyChain,
  type AnchorMac,
  type VerifyOptions,
  type VerifyResult,
} from './audit-verify.ts';
import type { AuditEntry, EventType, SecurityEvent } from './event-types.ts';
import { anchorMessage, entryHashOfCanonicalData, GENESIS_HASH } from './hash-chain.ts';
import { markHead } from './head-mark.ts';
import { chainItemOf, claimOutbox, outboxPending, type ChainItem } from './outbox.ts';
import { erasePersonal, readEntries, sealItems, storedFormsOf, type SealedItem } from './personal.ts';

export type { AnchorMac, VerifyResult } from './audit-verify.ts';

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

const INSERT_CHUNK = 500;
const MAX_ATTEMPTS = 20;
/** Outbox rows moved into the log per transaction. */
const RELAY_BATCH = 500;

async function headOf(q: DbOrTx): Promise<{ seq: number; hash: string }> {
  const row = await q
    .selectFrom('audit_log')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row ?? { seq: 0, hash: GENESIS_HASH };
}

/**
 * The new rows after the head, each hash linking to the one before. The hash covers the row as stored
 * (personal values sealed, personal.ts), so erasing them later leaves it verifiable.
 */
function chainRows(head: { seq: number; hash: string }, ts: number, items: readonly SealedItem[]) {
  let { seq, hash } = head;
  return items.map(({ stored, clear }) => {
    seq += 1;
    const fields = {
      seq,
      ts,
      type: stored.type,
      actor: stored.actor,
      subject: stored.subject,
      prevHash: hash,
    };
    // The data is stored as its canonical JSON: verification then hashes the stored bytes as they are.
    hash = entryHashOfCanonicalData(fields, stored.dataJson);
    return { fields, dataJson: stored.dataJson, hash, clear };
  });
}

type ChainRow = ReturnType<typeof chainRows>[number];

async function insertRows(trx: Tx, rows: readonly ChainRow[], mac: AnchorMac): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    await trx
      .insertInto('audit_log')
      .values(
        rows.slice(i, i + INSERT_CHUNK).map(({ fields, dataJson, hash }) => ({
          seq: fields.seq,
          ts: fields.ts,
          type: fields.type,
          actor: fields.actor,
          subject: fields.subject,
          data: dataJson,
          prev_hash: fields.prevHash,
          hash,
          mac: mac.mac(ENTRY_PURPOSE, hash),
        })),
      )
      .execute();
  }
}

async function writeAnchor(trx: Tx, head: { seq: number; hash: string }, mac: AnchorMac): Promise<void> {
  const anchor = { ...head, mac: mac.mac(ANCHOR_PURPOSE, anchorMessage(head.seq, head.hash)) };
  await trx
    .insertInto('audit_anchor')
    .values({ id: 1, ...anchor })
    .onConflict((oc) => oc.column('id').doUpdateSet(anchor))
    .execute();
}

/**
 * Appends the items after the head in `trx` and moves the anchor to the new head. Resolves with the entries
 * as they happened (personal values in the clear) and the hashes of the stored rows.
 */
async function appendInTx(deps: AuditLogDeps, trx: Tx, items: readonly ChainItem[]): Promise<AuditEntry[]> {
  if (items.length === 0) return [];
  const ts = deps.now();
  // Sealing first: its inserts may wait for another node's, and the head read after that is current.
  const sealed = await sealItems(trx, items, ts);
  const rows = chainRows(await headOf(trx), ts, sealed);
  await insertRows(trx, rows, deps.mac);
  const last = rows[rows.length - 1];
  if (last) await writeAnchor(trx, { seq: last.fields.seq, hash: last.hash }, deps.mac);
  return rows.map(
    ({ fields, hash, clear }) =>
      ({
        ...fields,
        actor: clear.actor,
        subject: clear.subject,
        data: JSON.parse(clear.dataJson) as unknown,
        hash,
      }) as AuditEntry,
  );
}

/** Runs a transaction that appends, again while a concurrent writer (another process) gets in the way. */
async function withRetry(
  deps: AuditLogDeps,
  work: (trx: Tx) => Promise<AuditEntry[]>,
): Promise<AuditEntry[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const entries = await deps.db.transaction().execute(work);
      const last = entries[entries.length - 1];
      if (last) markHead(deps.headFile, { seq: last.seq, hash: last.hash });
      return entries;
    } catch (err) {
      if (attempt >= MAX_ATTEMPTS || !deps.isRetryable(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.min(50, attempt * 2 + Math.random() * 5)));
    }
  }
}

/**
 * Writes the anchor of an empty log (seq 0), so that from the first start on a missing anchor means
 * tampering. Idempotent.
 */
async function ensureAnchor({ db, mac }: AuditLogDeps): Promise<void> {
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
}

/**
 * Moves the outbox into the log: each batch is taken out of the outbox and appended in one transaction,
 * in outbox order. Resolves with the entries this process appended (another node may relay some rows).
 */
async function relayOutbox(deps: AuditLogDeps): Promise<AuditEntry[]> {
  const appended: AuditEntry[] = [];
  while (await outboxPending(deps.db)) {
    let claimed = 0;
    const entries = await withRetry(deps, async (trx) => {
      const items = await claimOutbox(trx, RELAY_BATCH);
      claimed = items.length;
      return appendInTx(deps, trx, items);
    });
    appended.push(...entries);
    if (claimed < RELAY_BATCH) break;
  }
  return appended;
}

export interface AuditQuery<T extends EventType> {
  from?: number | undefined;
  to?: number | undefined;
  type?: T | undefined;
  /** Any of these types (an empty list matches nothing). */
  types?: readonly T[] | undefined;
  actor?: string | undefined;
  subject?: string | undefined;
  after?: number | undefined;
  before?: number | undefined;
  /** `asc` (default): oldest first, paged with `after`; `desc`: newest first, paged with `before`. */
  order?: 'asc' | 'desc' | undefined;
  limit: number;
}

/**
 * Entries matching a filter, oldest first (page with `after`, the last seq seen) or newest first (`order:
 * 'desc'`, page with `before`). A `user:`/`person:` actor or subject matches its sealed entries and those
 * written in the clear before sealing.
 */
async function query<T extends EventType = EventType>(
  db: Db,
  filter: AuditQuery<T>,
): Promise<AuditEntry<T>[]> {
  if (filter.types?.length === 0) return [];
  let q = db
    .selectFrom('audit_log')
    .selectAll()
    .orderBy('seq', filter.order ?? 'asc')
    .limit(filter.limit);
  if (filter.after !== undefined) q = q.where('seq', '>', filter.after);
  if (filter.before !== undefined) q = q.where('seq', '<', filter.before);
  if (filter.from !== undefined) q = q.where('ts', '>=', filter.from);
  if (filter.to !== undefined) q = q.where('ts', '<', filter.to);
  if (filter.type !== undefined) q = q.where('type', '=', filter.type);
  if (filter.types !== undefined) q = q.where('type', 'in', filter.types);
  if (filter.actor !== undefined) q = q.where('actor', 'in', await storedFormsOf(db, filter.actor));
  if (filter.subject !== undefined) q = q.where('subject', 'in', await storedFormsOf(db, filter.subject));
  return (await readEntries(db, await q.execute())) as AuditEntry<T>[];
}

/** Append-only, hash-chained, anchored. Appends from this process are batched into one transaction. */
export function createAuditLog(deps: AuditLogDeps) {
  const { db } = deps;
  return {
    /** The store the log is kept in (the event bus writes `atomically`'s changes there). */
    db,
    ensureAnchor: () => ensureAnchor(deps),

    /** Appends in one transaction; resolves once the entries are committed (durable). */
    append: (events: readonly SecurityEvent[]): Promise<AuditEntry[]> => {
      const items = events.map(chainItemOf);
      return withRetry(deps, (trx) => appendInTx(deps, trx, items));
    },

    relayOutbox: () => relayOutbox(deps),

    head: () => headOf(db),

    query: <T extends EventType = EventType>(filter: AuditQuery<T>) => query(db, filter),

    /** The latest entry of a type (e.g. the previous start's configuration). */
    async latest<T extends EventType>(type: T): Promise<AuditEntry<T> | undefined> {
      const row = await db
        .selectFrom('audit_log')
        .selectAll()
        .where('type', '=', type)
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row && ((await readEntries(db, [row]))[0] as AuditEntry<T>);
    },

    async readAfter(afterSeq: number, limit = 500): Promise<AuditEntry[]> {
      const rows = await db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>', afterSeq)
        .orderBy('seq')
        .limit(limit)
        .execute();
      return readEntries(db, rows);
    },

    /**
     * Erases the personal values of these owners (`person:<id>`, `user:<name>`, `device:<id>`) from the log:
     * their entries stay, verify, and read `[erased]` (personal.ts). Resolves with how many values were erased.
     */
    erasePersonal: (owners: readonly string[]): Promise<number> => erasePersonal(db, owners),

    /** Walks the whole chain and checks it against the anchors (see audit-verify.ts). */
    verify: (options: VerifyOptions = {}): Promise<VerifyResult> => verifyChain(deps, options),
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
