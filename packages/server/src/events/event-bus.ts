import type { Db, Tx } from '../store/index.ts';
import type { AuditEntry, EventType, SecurityEvent } from './event-types.ts';
import type { AuditLog } from './audit-log.ts';
import { insertOutbox } from './outbox.ts';

export type EventHandler<T extends EventType = EventType> = (entry: AuditEntry<T>) => void;

/** Records an event as part of the surrounding change (see `atomically`). */
export type TxEmit = <T extends EventType>(event: SecurityEvent<T>) => void;

/**
 * The steps of `atomically`, for the crash test's seam: the change and its outbox rows are written but not
 * committed; they are committed but not relayed into the audit log; they are relayed.
 */
export const atomicSteps = ['written', 'committed', 'relayed'] as const;
export type AtomicStep = (typeof atomicSteps)[number];

export interface EventBus {
  /** Persists the event (batched with others) and resolves once it is durable, then notifies subscribers. */
  emit<T extends EventType>(event: SecurityEvent<T>): Promise<AuditEntry>;
  /** Subscribes to every event, local or appended by another process sharing the store. */
  subscribe(handler: EventHandler): () => void;
  /** Subscribes to one event type or a list of them; the handler receives that type's data. */
  on<T extends EventType>(types: T | readonly T[] | ReadonlySet<T>, handler: EventHandler<T>): () => void;
  /**
   * A change and its events as one unit: `work` writes through `tx` and records its events with `emit`;
   * the events are written to the outbox in the same transaction, so they are committed with the change or
   * not at all. Resolves with `work`'s result once the events are durable in the audit log.
   */
  atomically<R>(work: (tx: Tx, emit: TxEmit) => Promise<R>): Promise<R>;
  /**
   * Moves what the outbox holds into the audit log (events a crash left between their commit and the
   * relay) and notifies subscribers. Run once at start; the tail runs it on every poll.
   */
  drainOutbox(): Promise<void>;
  /** Follows the audit log for events written by other processes (CLI, other nodes). */
  startTail(intervalMs: number): void;
  /** Resolves when everything emitted so far is durable. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

interface Pending {
  event: SecurityEvent;
  resolve: (entry: AuditEntry) => void;
  reject: (err: unknown) => void;
}

export interface EventBusDeps {
  log: Pick<AuditLog, 'append' | 'head' | 'readAfter' | 'relayOutbox'> & { db?: Db };
  /** The store the changes of `atomically` are written to (by default the audit log's). */
  db?: Db;
  /** A subscriber threw, or the tail could not read the log. */
  onError?: (err: unknown, entry?: AuditEntry) => void;
  /** Test seam: called at each step of `atomically` (the crash test ends the process there). */
  onAtomicStep?: (step: AtomicStep) => void | Promise<void>;
  /**
   * A transaction that failed because another process held or moved the write lock (SQLite's BUSY, a
   * serialization failure): nothing was committed, so `atomically` runs its work again.
   */
  isBusy?: (err: unknown) => boolean;
}

const ATOMIC_ATTEMPTS = 10;

/** Subscribers, each called for every entry; one that throws never stops the others. */
function createHandlers(onError: EventBusDeps['onError']) {
  const handlers = new Set<EventHandler>();
  const dispatch = (entry: AuditEntry) => {
    for (const handler of handlers) {
      try {
        handler(entry);
      } catch (err) {
        onError?.(err, entry);
      }
    }
  };
  const add = (handler: EventHandler) => {
    handlers.add(handler);
    return () => handlers.delete(handler);
  };
  const on = <T extends EventType>(types: T | readonly T[] | ReadonlySet<T>, handler: EventHandler<T>) => {
    const wanted: ReadonlySet<EventType> =
      typeof types === 'string' ? new Set([types]) : new Set(types as Iterable<EventType>);
    // The one place entries are narrowed by a runtime check of their type (the handler's declared types).
    return add((entry) => {
      if (wanted.has(entry.type)) handler(entry as AuditEntry<never>);
    });
  };
  return { dispatch, add, on };
}

/**
 * The one writer/reader of this process: appends, relays and tail polls run one at a time, so the tail
 * never sees a local entry before it is marked local, and entries reach subscribers in log order.
 */
/** How long the first event of a batch waits for others before the batch is written (see `emit`). */
const GROUP_COMMIT_MS = 2;

function createWriter(deps: EventBusDeps, dispatch: (entry: AuditEntry) => void) {
  const { log } = deps;
  let serial: Promise<unknown> = Promise.resolve();
  let queue: Pending[] = [];
  let flushScheduled = false;
  let relayScheduled: Promise<void> | undefined;
  /** Seqs appended here while the tail runs, so the tail does not deliver them twice. */
  let localSeqs: Set<number> | undefined;

  const runSerial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = serial.then(work, work);
    serial = next.catch(() => undefined);
    return next;
  };

  const delivered = (entry: AuditEntry) => {
    localSeqs?.add(entry.seq);
    dispatch(entry);
  };

  const writeBatch = async () => {
    flushScheduled = false;
    const batch = queue;
    queue = [];
    if (batch.length === 0) return;
    try {
      const entries = await log.append(batch.map((p) => p.event));
      entries.forEach((entry, i) => {
        batch[i]?.resolve(entry);
        delivered(entry);
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  };

  const relayNow = async () => {
    for (const entry of await log.relayOutbox()) delivered(entry);
  };

  /** A relay that has not started yet covers every commit made before it starts: callers share it. */
  const relay = (): Promise<void> => {
    relayScheduled ??= runSerial(() => {
      relayScheduled = undefined;
      return relayNow();
    });
    return relayScheduled;
  };

  /** The batch about to be written (scheduled, not yet in the serial chain), for flush(). */
  let scheduled: Promise<void> | undefined;
  const emit = <T extends EventType>(event: SecurityEvent<T>) =>
    new Promise<AuditEntry>((resolve, reject) => {
      queue.push({ event, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        // Group commit: the batch is written GROUP_COMMIT_MS later, so the events emitted meanwhile (a
        // connection storm's CONNECTs, each handled in its own turn of the event loop) share one transaction
        // and one fsync. With SQLite a commit blocks the loop: without the wait, each would have its own.
        scheduled = new Promise<void>((r) => setTimeout(r, GROUP_COMMIT_MS)).then(() => {
          scheduled = undefined;
          return runSerial(writeBatch);
        });
      }
    });

  return {
    runSerial,
    emit,
    /** Resolves when everything emitted so far is written (or failed). */
    settled: async () => {
      await scheduled;
      await runSerial(() => Promise.resolve());
    },
    relay,
    relayNow,
    trackLocal(on: boolean) {
      localSeqs = on ? new Set() : undefined;
    },
    /** Whether the tail should skip an entry because it was delivered here already. */
    wasLocal: (seq: number) => localSeqs?.delete(seq) ?? false,
  };
}

type Writer = ReturnType<typeof createWriter>;

/** Follows the log for entries other processes appended (relaying outbox rows a crash left, first). */
function createTail(deps: EventBusDeps, writer: Writer, dispatch: (entry: AuditEntry) => void) {
  const { log } = deps;
  let timer: NodeJS.Timeout | undefined;
  let lastSeen = -1;
  const poll = async () => {
    await writer.relayNow();
    if (lastSeen < 0) lastSeen = (await log.head()).seq;
    for (;;) {
      const entries = await log.readAfter(lastSeen, 500);
      for (const entry of entries) {
        lastSeen = entry.seq;
        if (!writer.wasLocal(entry.seq)) dispatch(entry);
      }
      if (entries.length < 500) return;
    }
  };
  return {
    start(intervalMs: number) {
      if (timer) return;
      writer.trackLocal(true);
      // A store that is down now leaves lastSeen unset; the first poll that reaches it starts from its head.
      writer
        .runSerial(async () => {
          lastSeen = (await log.head()).seq;
        })
        .catch((err: unknown) => deps.onError?.(err));
      timer = setInterval(() => {
        void writer.runSerial(poll).catch((err: unknown) => deps.onError?.(err));
      }, intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      writer.trackLocal(false);
    },
  };
}

/** `work` and its recorded events in one transaction (the events into the outbox), then the relay. */
async function runAtomically<R>(
  deps: EventBusDeps,
  relay: () => Promise<void>,
  work: (tx: Tx, emit: TxEmit) => Promise<R>,
): Promise<R> {
  const db = deps.db ?? deps.log.db;
  if (!db) throw new Error('event bus: atomically needs the store');
  let recorded = 0;
  const attempt = () =>
    db.transaction().execute(async (tx) => {
      const events: SecurityEvent[] = [];
      const value = await work(tx, (event) => {
        events.push(event);
      });
      recorded = (await insertOutbox(tx, events)).length;
      await deps.onAtomicStep?.('written');
      return value;
    });
  let result: R;
  for (let n = 1; ; n++) {
    try {
      result = await attempt();
      break;
    } catch (err) {
      // A deferred SQLite transaction that read, then found another process had written, fails at once
      // (its snapshot is stale) and no busy timeout helps: it is run again from the start.
      if (n >= ATOMIC_ATTEMPTS || !deps.isBusy?.(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.min(100, n * 10 + Math.random() * 10)));
    }
  }
  if (recorded === 0) return result;
  await deps.onAtomicStep?.('committed');
  // Once the relay has run, the outbox holds none of this commit's rows: this relay or another node's
  // appended them (a row another relay is moving is waited for, see outbox.ts `claimOutbox`).
  await relay();
  await deps.onAtomicStep?.('relayed');
  return result;
}

export function createEventBus(deps: EventBusDeps): EventBus {
  const handlers = createHandlers(deps.onError);
  const writer = createWriter(deps, handlers.dispatch);
  const tail = createTail(deps, writer, handlers.dispatch);
  // Events a crash left in the outbox (committed with their change, never relayed) go first.
  writer.relay().catch((err: unknown) => deps.onError?.(err));
  return {
    emit: writer.emit,
    subscribe: handlers.add,
    on: handlers.on,
    atomically: (work) => runAtomically(deps, writer.relay, work),
    drainOutbox: writer.relay,
    startTail: (intervalMs) => tail.start(intervalMs),
    flush: () => writer.settled(),
    async close() {
      tail.stop();
      await writer.settled();
    },
  };
}
