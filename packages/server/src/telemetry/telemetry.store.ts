import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { DbOrTx, TelemetryMessagesTable, TelemetryPatternsTable } from '../store/index.ts';

/**
 * The telemetry module's tables (telemetry_patterns, telemetry_messages): queries only, each taking the
 * database or transaction first. Times are epoch ms; bigint columns read back as strings on PostgreSQL.
 */

const node = randomBytes(4).toString('hex');
let lastMs = 0;
let counter = 0;

/**
 * Ids that sort in arrival order: strictly in this process (a monotonic time and a counter), across
 * processes by time, as event_outbox ids (events/outbox.ts). Wall time: tests move the platform's clock.
 */
export function nextMessageId(): string {
  const t = Math.max(Date.now(), lastMs);
  counter = t === lastMs ? counter + 1 : 0;
  lastMs = t;
  return `${t.toString(36).padStart(9, '0')}-${counter.toString(36).padStart(6, '0')}-${node}`;
}

export async function listPatternRows(q: DbOrTx): Promise<TelemetryPatternsTable[]> {
  return q.selectFrom('telemetry_patterns').selectAll().orderBy('pattern').execute();
}

export async function getPatternRow(q: DbOrTx, pattern: string): Promise<TelemetryPatternsTable | undefined> {
  return q.selectFrom('telemetry_patterns').selectAll().where('pattern', '=', pattern).executeTakeFirst();
}

export async function upsertPattern(q: DbOrTx, row: TelemetryPatternsTable): Promise<void> {
  await q
    .insertInto('telemetry_patterns')
    .values(row)
    .onConflict((oc) =>
      oc.column('pattern').doUpdateSet({ retention_ms: row.retention_ms, updated_at: row.updated_at }),
    )
    .execute();
}

export async function deletePattern(q: DbOrTx, pattern: string): Promise<boolean> {
  const r = await q.deleteFrom('telemetry_patterns').where('pattern', '=', pattern).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

/** Stored count and oldest arrival per pattern. */
export async function patternStats(
  q: DbOrTx,
): Promise<Map<string, { messages: number; oldestAt: number | null }>> {
  const rows = await q
    .selectFrom('telemetry_messages')
    .select((eb) => ['pattern', eb.fn.countAll().as('n'), eb.fn.min('received_at').as('oldest')])
    .groupBy('pattern')
    .execute();
  return new Map(
    rows.map((r) => [
      r.pattern,
      { messages: Number(r.n), oldestAt: r.oldest === null ? null : Number(r.oldest) },
    ]),
  );
}

export async function insertMessages(q: DbOrTx, rows: readonly TelemetryMessagesTable[]): Promise<void> {
  if (rows.length > 0)
    await q
      .insertInto('telemetry_messages')
      .values([...rows])
      .execute();
}

export async function deleteMessagesOfPattern(q: DbOrTx, pattern: string): Promise<number> {
  const r = await q.deleteFrom('telemetry_messages').where('pattern', '=', pattern).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function deleteMessagesOfDevice(q: DbOrTx, deviceId: string): Promise<number> {
  const r = await q.deleteFrom('telemetry_messages').where('device_id', '=', deviceId).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function deleteMessagesOfSubject(q: DbOrTx, subjectId: string): Promise<number> {
  const r = await q.deleteFrom('telemetry_messages').where('subject_id', '=', subjectId).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** A data subject's messages (privacy: `person:<id>`), newest first. */
export async function selectMessagesOfSubject(
  q: DbOrTx,
  m: { subjectId: string; limit: number },
): Promise<TelemetryMessagesTable[]> {
  return q
    .selectFrom('telemetry_messages')
    .selectAll()
    .where('subject_id', '=', m.subjectId)
    .orderBy('id', 'desc')
    .limit(m.limit)
    .execute();
}

/** Deletes up to `limit` rows kept for a data schema received before `before`; resolves with how many. */
export async function deleteSchemaBatch(
  q: DbOrTx,
  batch: { schema: string; before: number; limit: number },
): Promise<number> {
  const ids = q
    .selectFrom('telemetry_messages')
    .select('id')
    .where('data_schema', '=', batch.schema)
    .where('received_at', '<', batch.before)
    .limit(batch.limit);
  const r = await q.deleteFrom('telemetry_messages').where('id', 'in', ids).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Rows kept for a data schema, in arrival order (privacy's de-identified exports). */
export async function selectMessagesOfSchema(
  q: DbOrTx,
  m: { schema: string; from?: number | undefined; to?: number | undefined; limit: number },
): Promise<TelemetryMessagesTable[]> {
  let query = q.selectFrom('telemetry_messages').selectAll().where('data_schema', '=', m.schema);
  if (m.from !== undefined) query = query.where('received_at', '>=', m.from);
  if (m.to !== undefined) query = query.where('received_at', '<', m.to);
  return query.orderBy('id', 'asc').limit(m.limit).execute();
}

/** Deletes up to `limit` rows of the pattern received before `before`; resolves with how many. */
export async function deleteExpiredBatch(
  q: DbOrTx,
  batch: { pattern: string; before: number; limit: number },
): Promise<number> {
  const ids = q
    .selectFrom('telemetry_messages')
    .select('id')
    .where('pattern', '=', batch.pattern)
    .where('received_at', '<', batch.before)
    .limit(batch.limit);
  const r = await q.deleteFrom('telemetry_messages').where('id', 'in', ids).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export interface MessageQuery {
  deviceId: string;
  from?: number | undefined;
  to?: number | undefined;
  /** An exact topic (compared in SQL); filters are matched by the caller on a prefix-narrowed scan. */
  topic?: string | undefined;
  /** Topics starting with this (a filter's levels before its first wildcard). */
  topicPrefix?: string | undefined;
  after?: string | undefined;
  limit: number;
  newestFirst?: boolean;
}

/** LIKE with `%`, `_` and the escape itself escaped: the prefix matches literally. */
const likePrefix = (prefix: string) => `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export async function selectMessages(q: DbOrTx, m: MessageQuery): Promise<TelemetryMessagesTable[]> {
  let query = q.selectFrom('telemetry_messages').selectAll().where('device_id', '=', m.deviceId);
  if (m.from !== undefined) query = query.where('received_at', '>=', m.from);
  if (m.to !== undefined) query = query.where('received_at', '<', m.to);
  if (m.topic !== undefined) query = query.where('topic', '=', m.topic);
  if (m.topicPrefix) query = query.where(sql<boolean>`topic like ${likePrefix(m.topicPrefix)} escape '\\'`);
  if (m.after !== undefined) query = query.where('id', m.newestFirst ? '<' : '>', m.after);
  return query
    .orderBy('id', m.newestFirst ? 'desc' : 'asc')
    .limit(m.limit)
    .execute();
}
