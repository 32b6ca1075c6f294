import { BulwarkError, jsonOfPayload } from '@bulwark/protocol';
import { isValidFilter } from '../policy/index.ts';
import type { DbOrTx, TelemetryMessagesTable } from '../store/index.ts';
import { filterMatches } from './telemetry.patterns.ts';
import { selectMessages, type MessageQuery } from './telemetry.store.ts';

/** A stored message as the API, the CLI and an export show it. */
export interface TelemetryMessage {
  id: string;
  topic: string;
  receivedAt: number;
  /** The payload as a JSON value when it is UTF-8 JSON, else null. */
  payload: unknown;
  payloadBase64: string;
  bytes: number;
}

export interface TelemetryQuery {
  deviceId: string;
  /** Received at or after (epoch ms). */
  from?: number | undefined;
  /** Received before (epoch ms). */
  to?: number | undefined;
  /** A topic or an MQTT filter. */
  topic?: string | undefined;
  /** The `next` of the previous page. */
  after?: string | undefined;
  limit?: number | undefined;
}

export interface TelemetryPage {
  items: TelemetryMessage[];
  next: string | null;
}

/** The payload as a JSON value when it is UTF-8 JSON, else null. */
const jsonOf = (payload: Buffer): unknown => jsonOfPayload(payload) ?? null;

export function toMessage(row: TelemetryMessagesTable): TelemetryMessage {
  return {
    id: row.id,
    topic: row.topic,
    receivedAt: Number(row.received_at),
    payload: jsonOf(Buffer.from(row.payload, 'base64')),
    payloadBase64: row.payload,
    bytes: Number(row.bytes),
  };
}

/** Rows scanned at most for one page when `topic` is a filter (a page may then hold fewer than `limit`). */
const SCAN_ROWS = 5000;

/** The levels of a filter before its first wildcard, as a topic prefix (`devices/p1/` of `devices/p1/+/x`). */
function literalPrefix(filter: string): string {
  const levels = filter.split('/');
  const wild = levels.findIndex((l) => l === '+' || l === '#');
  return levels.slice(0, wild).join('/') + (wild > 0 ? '/' : '');
}

/** One page of a device's stored messages in arrival order (keyset on the id). */
export async function queryMessages(db: DbOrTx, q: TelemetryQuery): Promise<TelemetryPage> {
  const limit = Math.min(Math.max(q.limit ?? 100, 1), 1000);
  const base: MessageQuery = { deviceId: q.deviceId, from: q.from, to: q.to, after: q.after, limit };
  const topic = q.topic;
  if (topic === undefined || !/[+#]/.test(topic)) {
    const rows = await selectMessages(db, { ...base, topic });
    return { items: rows.map(toMessage), next: rows.length === limit ? (rows.at(-1)?.id ?? null) : null };
  }
  if (!isValidFilter(topic))
    throw new BulwarkError('validation_failed', `"${topic}" is not a valid topic filter`);
  // A filter: rows narrowed by its literal prefix in SQL, matched here, up to SCAN_ROWS rows per page.
  const items: TelemetryMessage[] = [];
  let after = q.after;
  for (let scanned = 0; scanned < SCAN_ROWS && items.length < limit;) {
    const rows = await selectMessages(db, { ...base, after, topicPrefix: literalPrefix(topic) });
    for (const row of rows) {
      after = row.id;
      if (filterMatches(topic, row.topic)) items.push(toMessage(row));
      if (items.length === limit) break;
    }
    scanned += rows.length;
    if (rows.length < limit) return { items, next: items.length === limit ? (after ?? null) : null };
  }
  return { items, next: after ?? null };
}
