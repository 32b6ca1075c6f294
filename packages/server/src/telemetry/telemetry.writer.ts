import type { Db, TelemetryMessagesTable } from '../store/index.ts';
import { insertMessages, nextMessageId } from './telemetry.store.ts';

export interface WriterSettings {
  /** A batch is written once it holds this many rows… */
  maxRows: number;
  /** …or this long after its first row arrived. */
  maxDelayMs: number;
  /** Rows waiting (batches not yet written) beyond which a new row is not stored (DESIGN principle 8). */
  maxQueuedRows: number;
  /**
   * Payload bytes (as published) waiting beyond which a new row is not stored, as for `maxQueuedRows`: a
   * few devices publishing large payloads must not fill the memory with rows under the row cap.
   */
  maxQueuedBytes: number;
}

export const defaultWriterSettings: WriterSettings = Object.freeze({
  maxRows: 200,
  maxDelayMs: 20,
  maxQueuedRows: 20_000,
  maxQueuedBytes: 64 * 1024 * 1024,
});

/** What the writer did so far (for the stage's counters and the tests). */
export interface WriterStats {
  stored: number;
  /** Rows not stored: the queue was full (rows or bytes). */
  dropped: number;
  /** Rows not stored: their batch failed. */
  failed: number;
  /** Rows waiting to be written. */
  queued: number;
  /** Payload bytes of the rows waiting to be written. */
  queuedBytes: number;
}

interface Batch {
  rows: TelemetryMessagesTable[];
  done: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export interface TelemetryWriter {
  /**
   * Queues a row (its id, in arrival order, given here); resolves once its batch is committed, rejects when
   * the batch failed. Undefined when the queue is full, in rows or in payload bytes (the row is not stored;
   * counted as dropped).
   */
  add(row: Omit<TelemetryMessagesTable, 'id'>): Promise<void> | undefined;
  /** Writes what is queued now; resolves when everything queued so far is written (or failed). */
  flush(): Promise<void>;
  stats(): WriterStats;
}

function newBatch(): Batch {
  let resolve: () => void = () => undefined;
  let reject: (err: unknown) => void = () => undefined;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A QoS 0 row's caller does not wait: a failed batch must not be an unhandled rejection.
  done.catch(() => undefined);
  return { rows: [], done, resolve, reject };
}

/**
 * Rows written in batches, one transaction each, one batch at a time (arrival order is kept and the store
 * sees at most one telemetry write per process).
 */
export function createTelemetryWriter(db: Db, overrides: Partial<WriterSettings> = {}): TelemetryWriter {
  const settings: WriterSettings = { ...defaultWriterSettings, ...overrides };
  const counts: WriterStats = { stored: 0, dropped: 0, failed: 0, queued: 0, queuedBytes: 0 };
  let current: Batch | undefined;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<void> = Promise.resolve();

  const write = async (batch: Batch) => {
    try {
      await db.transaction().execute((tx) => insertMessages(tx, batch.rows));
      counts.stored += batch.rows.length;
      batch.resolve();
    } catch (err) {
      counts.failed += batch.rows.length;
      batch.reject(err);
    } finally {
      counts.queued -= batch.rows.length;
      for (const row of batch.rows) counts.queuedBytes -= row.bytes;
    }
  };

  const cut = (): Promise<void> => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = current;
    current = undefined;
    if (batch) chain = chain.then(() => write(batch));
    return chain;
  };

  return {
    add(row) {
      const full =
        counts.queued >= settings.maxQueuedRows || counts.queuedBytes + row.bytes > settings.maxQueuedBytes;
      if (full) {
        counts.dropped++;
        return undefined;
      }
      current ??= newBatch();
      const batch = current;
      batch.rows.push({ id: nextMessageId(), ...row });
      counts.queued++;
      counts.queuedBytes += row.bytes;
      if (batch.rows.length >= settings.maxRows) void cut();
      else timer ??= setTimeout(() => void cut(), settings.maxDelayMs).unref();
      return batch.done;
    },
    flush: cut,
    stats: () => ({ ...counts }),
  };
}
