import { jsonOfPayload } from '@bulwark/protocol';
import type { Subject, SubjectData } from '../events/index.ts';
import type { Db, RetainedMessagesTable } from '../store/index.ts';
import { filterMatches } from './core/index.ts';

export interface RetainedLimits {
  /** Retained messages one device may hold, and their bytes (payload + topic). */
  perDevice: number;
  bytesPerDevice: number;
  /** Retained messages the broker holds in all, and their bytes. */
  total: number;
  bytesTotal: number;
}

export interface RetainedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  /**
   * Set by privacy's publish stage (the packet's `classified`): the data schema the payload is the kept form
   * of, and the data subject it is about.
   */
  classified?: { readonly schema: string; readonly subject: string | null } | undefined;
}

interface Entry {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  deviceId: string;
  bytes: number;
  /** The data schema its payload was kept for (privacy), or null. */
  schema: string | null;
  /** The data subject it is about (privacy), or null. */
  subject: string | null;
  updatedAt: number;
}

/** What privacy's deliver stage asks about a retained message (its payload): see `classificationOf`. */
export interface RetainedClassification {
  readonly schema: string | null;
  readonly subject: string | null;
  readonly deviceId: string;
}

interface Usage {
  count: number;
  bytes: number;
}

export interface RetainedStoreDeps {
  db: Db;
  now: () => number;
  limits: RetainedLimits;
}

export type RetainVerdict = { ok: true; stored: Promise<void> } | { ok: false; reason: string };

const hasWildcard = (filter: string) => filter.includes('+') || filter.includes('#');

/**
 * The retained messages in memory and what each device and the broker hold: one per topic [MQTT-3.3.1-5],
 * each charged to the device that published it.
 */
function createRetainedIndex(limits: RetainedLimits) {
  const entries = new Map<string, Entry>();
  /** The entry a delivered payload belongs to (the core hands retained deliveries the entry's payload Buffer). */
  const byPayload = new WeakMap<Buffer, Entry>();
  const usage = new Map<string, Usage>();
  const total: Usage = { count: 0, bytes: 0 };

  function account(entry: Entry, sign: 1 | -1) {
    const u = usage.get(entry.deviceId) ?? { count: 0, bytes: 0 };
    u.count += sign;
    u.bytes += sign * entry.bytes;
    if (u.count <= 0) usage.delete(entry.deviceId);
    else usage.set(entry.deviceId, u);
    total.count += sign;
    total.bytes += sign * entry.bytes;
  }

  /** Retained messages whose topics match any of the filters (each message once). */
  function* match(filters: readonly string[]): Generator<RetainedMessage> {
    const seen = new Set<string>();
    for (const filter of filters) {
      if (!hasWildcard(filter)) {
        const e = entries.get(filter);
        if (e && !seen.has(e.topic)) {
          seen.add(e.topic);
          yield e;
        }
        continue;
      }
      for (const e of entries.values())
        if (!seen.has(e.topic) && filterMatches(filter, e.topic)) {
          seen.add(e.topic);
          yield e;
        }
    }
  }

  return {
    set(entry: Entry) {
      const previous = entries.get(entry.topic);
      if (previous) account(previous, -1);
      entries.set(entry.topic, entry);
      byPayload.set(entry.payload, entry);
      account(entry, 1);
    },
    /** Removes the entries that match; resolves with their topics. */
    removeWhere(matches: (entry: Entry) => boolean): string[] {
      const removed: string[] = [];
      for (const entry of [...entries.values()])
        if (matches(entry)) {
          account(entry, -1);
          entries.delete(entry.topic);
          removed.push(entry.topic);
        }
      return removed;
    },
    entryOf: (payload: Buffer): Entry | undefined => byPayload.get(payload),
    /** The entries held now (identities: an entry replaced later is another object). */
    snapshot: (): Set<Entry> => new Set(entries.values()),
    clear(topic: string) {
      const previous = entries.get(topic);
      if (!previous) return;
      account(previous, -1);
      entries.delete(topic);
    },
    reset() {
      entries.clear();
      usage.clear();
      total.count = 0;
      total.bytes = 0;
    },
    /** Why this device may not retain `bytes` more on `topic` (replacing what is there), or undefined. */
    overQuota(deviceId: string, topic: string, bytes: number): string | undefined {
      const previous = entries.get(topic);
      const own = previous?.deviceId === deviceId ? previous : undefined;
      const u = usage.get(deviceId) ?? { count: 0, bytes: 0 };
      const count = u.count + 1 - (own ? 1 : 0);
      const deviceBytes = u.bytes + bytes - (own?.bytes ?? 0);
      if (count > limits.perDevice) return `the device already holds ${limits.perDevice} retained messages`;
      if (deviceBytes > limits.bytesPerDevice)
        return `the device's retained messages would exceed ${limits.bytesPerDevice} bytes`;
      if (total.count + (previous ? 0 : 1) > limits.total)
        return `the broker already holds ${limits.total} retained messages`;
      if (total.bytes + bytes - (previous?.bytes ?? 0) > limits.bytesTotal)
        return `the broker's retained messages would exceed ${limits.bytesTotal} bytes`;
      return undefined;
    },
    match,
    usage(deviceId?: string): Usage {
      const u = deviceId === undefined ? total : usage.get(deviceId);
      return { count: u?.count ?? 0, bytes: u?.bytes ?? 0 };
    },
  };
}

/** Store writes one after another, in the order the broker accepted them. */
function createWriteQueue() {
  let writes: Promise<void> = Promise.resolve();
  return (write: () => Promise<unknown>): Promise<void> => {
    const next = writes.then(write).then(() => undefined);
    // The chain goes on after a failed write; the caller of this one sees the failure.
    writes = next.catch(() => undefined);
    return next;
  };
}

function upsert(db: Db, entry: Entry, now: number) {
  const row = {
    topic: entry.topic,
    device_id: entry.deviceId,
    qos: entry.qos,
    payload: entry.payload.toString('base64'),
    bytes: entry.bytes,
    updated_at: now,
    subject_id: entry.subject,
    data_schema: entry.schema,
  };
  return db
    .insertInto('retained_messages')
    .values(row)
    .onConflict((oc) =>
      oc.column('topic').doUpdateSet({
        device_id: row.device_id,
        qos: row.qos,
        payload: row.payload,
        bytes: row.bytes,
        updated_at: row.updated_at,
        subject_id: row.subject_id,
        data_schema: row.data_schema,
      }),
    )
    .execute();
}

function entryOf(r: RetainedMessagesTable): Entry {
  return {
    topic: r.topic,
    deviceId: r.device_id,
    qos: Number(r.qos) as 0 | 1 | 2,
    payload: Buffer.from(r.payload, 'base64'),
    bytes: Number(r.bytes),
    schema: r.data_schema ?? null,
    subject: r.subject_id ?? null,
    updatedAt: Number(r.updated_at),
  };
}

/** The payload as a JSON value when it is UTF-8 JSON, else null. */
const jsonOf = (payload: Buffer): unknown => jsonOfPayload(payload) ?? null;

/** Which rows and entries hold a data subject's messages: a person's by subject, a device's by publisher. */
function subjectFilter(subject: Subject) {
  if (subject.kind === 'person')
    return { column: 'subject_id' as const, id: subject.id, matches: (e: Entry) => e.subject === subject.id };
  if (subject.kind === 'device')
    return { column: 'device_id' as const, id: subject.id, matches: (e: Entry) => e.deviceId === subject.id };
  return undefined;
}

/**
 * The retained store's part in privacy: data-subject export and erasure (module `retained`), and retention
 * per data schema. Deletions go through the write queue (after the writes accepted before them) and leave
 * the in-memory index and its quotas as the store.
 */
function privacyOperations(r: {
  db: Db;
  index: ReturnType<typeof createRetainedIndex>;
  queue: ReturnType<typeof createWriteQueue>;
}) {
  const { db, index, queue } = r;
  const subjectData: SubjectData = {
    module: 'retained',
    async exportSubject(subject) {
      const filter = subjectFilter(subject);
      if (!filter) return [];
      const rows = await db
        .selectFrom('retained_messages')
        .selectAll()
        .where(filter.column, '=', filter.id)
        .orderBy('topic')
        .execute();
      return rows.map((row) => {
        const payload = Buffer.from(row.payload, 'base64');
        return {
          record: 'retained_message',
          topic: row.topic,
          deviceId: row.device_id,
          qos: Number(row.qos),
          updatedAt: Number(row.updated_at),
          dataSchema: row.data_schema ?? null,
          payload: jsonOf(payload),
          payloadBase64: row.payload,
        };
      });
    },
    async eraseSubject(subject) {
      const filter = subjectFilter(subject);
      if (!filter) return { erased: 0 };
      index.removeWhere(filter.matches);
      let erased = 0;
      await queue(async () => {
        const res = await db
          .deleteFrom('retained_messages')
          .where(filter.column, '=', filter.id)
          .executeTakeFirst();
        erased = Number(res.numDeletedRows);
      });
      return { erased };
    },
  };
  /** Deletes the retained messages kept for a data schema and last updated before `before`. */
  async function deleteForSchema(schema: string, before: number): Promise<number> {
    index.removeWhere((e) => e.schema === schema && e.updatedAt < before);
    let deleted = 0;
    await queue(async () => {
      const res = await db
        .deleteFrom('retained_messages')
        .where('data_schema', '=', schema)
        .where('updated_at', '<', before)
        .executeTakeFirst();
      deleted = Number(res.numDeletedRows);
    });
    return deleted;
  }
  return {
    subjectData,
    deleteForSchema,
    /** What privacy exports, erases and applies retention to here (its sources' `retained`). */
    privacySource: { ...subjectData, store: 'retained' as const, deleteForSchema },
  };
}

/**
 * Retained messages, one per topic [MQTT-3.3.1-5], kept in the store so they survive a restart and held in
 * memory for delivery. Each is charged to the device that published it, against a per-device and a total
 * quota (count and bytes; Principle 8: bounded before it is allocated). A zero-byte payload clears the topic
 * and frees the quota [MQTT-3.3.1-10], [MQTT-3.3.1-11]. Writes go to the store one after another, in the
 * order the broker accepted them, so the last retained message of a topic is the one that stays.
 */
export function createRetainedStore(deps: RetainedStoreDeps) {
  const { db, now, limits } = deps;
  const index = createRetainedIndex(limits);
  const queue = createWriteQueue();

  return {
    /** Reads every retained message from the store (at start, before the broker accepts connections). */
    async load(): Promise<number> {
      const rows = await db.selectFrom('retained_messages').selectAll().execute();
      index.reset();
      for (const r of rows) index.set(entryOf(r));
      return rows.length;
    },

    /**
     * A retained PUBLISH the device was allowed to make: kept (or, with an empty payload, cleared) at once in
     * memory, and in the store when `stored` settles; refused when it would go over a quota.
     */
    retain(deviceId: string, message: RetainedMessage): RetainVerdict {
      const { topic, payload, qos, classified } = message;
      if (payload.length === 0) {
        index.clear(topic);
        return {
          ok: true,
          stored: queue(() => db.deleteFrom('retained_messages').where('topic', '=', topic).execute()),
        };
      }
      const bytes = payload.length + Buffer.byteLength(topic);
      const reason = index.overQuota(deviceId, topic, bytes);
      if (reason) return { ok: false, reason };
      const at = now();
      // A copy: the parser's buffer may be a slice of a larger read.
      const entry: Entry = {
        topic,
        deviceId,
        qos,
        payload: Buffer.from(payload),
        bytes,
        schema: classified?.schema ?? null,
        subject: classified?.subject ?? null,
        updatedAt: at,
      };
      index.set(entry);
      return { ok: true, stored: queue(() => upsert(db, entry, at)) };
    },

    /**
     * The retained messages matching any of the filters: the core asks on SUBSCRIBE (each then still passes
     * the subscriber's delivery stages). Storing is the retain stage's, where the publisher's quota is known.
     */
    match: (filters: readonly string[]) => index.match(filters),

    /**
     * Forgets the retained messages another process deleted from the store (an erasure or a retention run by
     * the CLI): those held when called whose topic the store no longer has once every write accepted before
     * is done. A message retained meanwhile is another entry, kept. Resolves with how many were forgotten.
     */
    forgetDeleted(): Promise<number> {
      const held = index.snapshot();
      let forgotten = 0;
      return queue(async () => {
        if (held.size === 0) return;
        const rows = await db.selectFrom('retained_messages').select('topic').execute();
        const stored = new Set(rows.map((r) => r.topic));
        forgotten = index.removeWhere((e) => held.has(e) && !stored.has(e.topic)).length;
      }).then(() => forgotten);
    },

    /** What one device, or the broker in all, holds. */
    usage: (deviceId?: string) => index.usage(deviceId),

    /** The schema, subject and publisher of a retained message, by the payload the core delivers (privacy). */
    classificationOf: (payload: Buffer): RetainedClassification | undefined => index.entryOf(payload),

    ...privacyOperations({ db, index, queue }),
  };
}

export type RetainedStore = ReturnType<typeof createRetainedStore>;
