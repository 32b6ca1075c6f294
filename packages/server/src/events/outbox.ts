import { randomBytes } from 'node:crypto';
import type { DbOrTx, EventOutboxTable, Tx } from '../store/index.ts';
import type { SecurityEvent } from './event-types.ts';
import { canonicalJson } from './jcs.ts';

/**
 * The outbox: an event recorded by `atomically` is written to `event_outbox` with the transaction of its
 * change, so the change and its event commit together or not at all. The relay (audit-log.ts,
 * `relayOutbox`) then moves the rows into the hash-chained log in one transaction of its own.
 */

/** An event ready for the chain: its data already canonical JSON (what the entry hash covers). */
export interface ChainItem {
  type: string;
  actor: string;
  subject: string | null;
  dataJson: string;
}

export function chainItemOf(event: SecurityEvent): ChainItem {
  return {
    type: event.type,
    actor: event.actor,
    subject: event.subject ?? null,
    dataJson: canonicalJson(event.data ?? {}) ?? '{}',
  };
}

const node = randomBytes(4).toString('hex');
let lastMs = 0;
let counter = 0;

/**
 * Ids that sort in the order events were recorded: in this process strictly (a monotonic time and a
 * counter), across processes by time. Wall time, not the platform's clock: tests move that clock back.
 */
function nextId(): string {
  const t = Math.max(Date.now(), lastMs);
  counter = t === lastMs ? counter + 1 : 0;
  lastMs = t;
  return `${t.toString(36).padStart(9, '0')}-${counter.toString(36).padStart(5, '0')}-${node}`;
}

/** Writes the events into the outbox with the change's transaction; returns their ids. */
export async function insertOutbox(tx: Tx, events: readonly SecurityEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const created = Date.now();
  const rows: EventOutboxTable[] = events.map((event) => {
    const { type, actor, subject, dataJson } = chainItemOf(event);
    return { id: nextId(), type, actor, subject, data: dataJson, created_at: created };
  });
  await tx.insertInto('event_outbox').values(rows).execute();
  return rows.map((r) => r.id);
}

/** Whether the outbox holds anything (a cheap read before a relay takes the write lock). */
export async function outboxPending(q: DbOrTx): Promise<boolean> {
  return (await q.selectFrom('event_outbox').select('id').limit(1).executeTakeFirst()) !== undefined;
}

/**
 * Takes up to `limit` of the oldest rows out of the outbox, in the transaction that appends them. Deleting
 * first claims them: on PostgreSQL a relay on another node that deleted a row first makes this one skip it
 * (it waits for that transaction, then finds the row gone), so no row is appended twice; a relay that rolls
 * back leaves its rows for the next one, so none is lost.
 */
export async function claimOutbox(tx: Tx, limit: number): Promise<ChainItem[]> {
  const oldest = tx.selectFrom('event_outbox').select('id').orderBy('id').limit(limit);
  const rows = await tx.deleteFrom('event_outbox').where('id', 'in', oldest).returningAll().execute();
  return rows
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((r) => ({ type: r.type, actor: r.actor, subject: r.subject, dataJson: r.data }));
}
