import type { Db, TelemetryMessagesTable } from '../store/index.ts';
import { insertMessages, nextMessageId } from './telemetry.store.ts';

export interface WriterSettings {
  /** A batch is written once it holds this many rows… */
  maxRows: number;
  /** …or this long after its first row arrived. */
  maxDelayMs: number;
  /** Rows waiting (batches not yet written) beyond which a new row is not stored (DESIGN principle 8). */
  maxQueuedRows: number;
}

export const defaultWriterSettings: WriterSettings = Object.freeze({
  maxRows: 200,
  maxDelayMs: 20,
  maxQueuedRows: 20_000,
});

/** What the writer did so far (for the stage's counters and the tests). */
export interface WriterStats {
  stored: number;
  /** Rows not stored: the queue was full. */
  dropped: number;
  /** Rows not stored: their batch failed. */
  failed: number;
  /** Rows waiting to be written. */
  queued: number;
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
   * the batch failed. Undefined when the queue is full (the row is not stored; counted as dropped).
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
export function createTelemetryWriter(
  db: Db,
  settings: WriterSettings = defaultWriterSettings,
): TelemetryWriter {
  const counts: WriterStats = { stored: 0, dropped: 0, failed: 0, queued: 0 };
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
      if (counts.queued >= settings.maxQueuedRows) {
        counts.dropped++;
        return undefined;
      }
      current ??= newBatch();
      const batch = current;
      batch.rows.push({ id: nextMessageId(), ...row });
      counts.queued++;
      if (batch.rows.length >= settings.maxRows) void cut();
      else timer ??= setTimeout(() => void cut(), settings.maxDelayMs).unref();
      return batch.done;
    },
    flush: cut,
    stats: () => ({ ...counts }),
  };
}
