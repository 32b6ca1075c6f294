import type { Db, Tx } from '../store/index.ts';
import type { AuditEntry, EventType, SecurityEvent } from './event-types.ts';
import type { AuditLog } from './audit-log.ts';

export type EventHandler<T extends EventType = EventType> = (entry: AuditEntry<T>) => void;

/** Records an event as part of the surrounding change (see `atomically`). */
export type TxEmit = <T extends EventType>(event: SecurityEvent<T>) => void;

export interface EventBus {
  /** Persists the event (batched with others) and resolves once it is durable, then notifies subscribers. */
  emit<T extends EventType>(event: SecurityEvent<T>): Promise<AuditEntry>;
  /** Subscribes to every event, local or appended by another process sharing the store. */
  subscribe(handler: EventHandler): () => void;
  /** Subscribes to one event type or a list of them; the handler receives that type's data. */
  on<T extends EventType>(types: T | readonly T[] | ReadonlySet<T>, handler: EventHandler<T>): () => void;
  /**
   * A change and its events as one unit: `work` writes through `tx` and records its events with `emit`;
   * the events are committed with the change or not at all. Resolves with `work`'s result once the
   * events are durable in the audit log.
   */
  atomically<R>(work: (tx: Tx, emit: TxEmit) => Promise<R>): Promise<R>;
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
  log: Pick<AuditLog, 'append' | 'head' | 'readAfter'>;
  /** The store the changes of `atomically` are written to. */
  db?: Db;
  /** A subscriber threw, or the tail could not read the log. */
  onError?: (err: unknown, entry?: AuditEntry) => void;
}

export function createEventBus(deps: EventBusDeps): EventBus {
  const { log } = deps;
  const handlers = new Set<EventHandler>();
  let queue: Pending[] = [];
  // One writer/reader at a time in this process: the tail never sees a local batch before it is marked local.
  let serial: Promise<unknown> = Promise.resolve();
  let flushScheduled = false;
  let tailTimer: NodeJS.Timeout | undefined;
  let lastSeen = -1;
  const localSeqs = new Set<number>();

  const runSerial = <T>(work: () => Promise<T>): Promise<T> => {
    const next = serial.then(work, work);
    serial = next.catch(() => undefined);
    return next;
  };

  const dispatch = (entry: AuditEntry) => {
    for (const handler of handlers) {
      try {
        handler(entry);
      } catch (err) {
        deps.onError?.(err, entry);
      }
    }
  };

  const writeBatch = async () => {
    flushScheduled = false;
    const batch = queue;
    queue = [];
    if (batch.length === 0) return;
    try {
      const entries = await log.append(batch.map((p) => p.event));
      entries.forEach((entry, i) => {
        if (tailTimer) localSeqs.add(entry.seq);
        batch[i]?.resolve(entry);
        dispatch(entry);
      });
    } catch (err) {
      for (const p of batch) p.reject(err);
    }
  };

  const poll = async () => {
    if (lastSeen < 0) lastSeen = (await log.head()).seq;
    for (;;) {
      const entries = await log.readAfter(lastSeen, 500);
      for (const entry of entries) {
        lastSeen = entry.seq;
        if (localSeqs.delete(entry.seq)) continue;
        dispatch(entry);
      }
      if (entries.length < 500) return;
    }
  };

  const emit = <T extends EventType>(event: SecurityEvent<T>) =>
    new Promise<AuditEntry>((resolve, reject) => {
      queue.push({ event, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        void runSerial(writeBatch);
      }
    });

  return {
    emit,
    subscribe(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    on(types, handler) {
      const wanted: ReadonlySet<EventType> =
        typeof types === 'string' ? new Set([types]) : new Set(types as Iterable<EventType>);
      // The one place entries are narrowed by a runtime check of their type (the handler's declared types).
      const filtered: EventHandler = (entry) => {
        if (wanted.has(entry.type)) handler(entry as AuditEntry<never>);
      };
      handlers.add(filtered);
      return () => handlers.delete(filtered);
    },
    async atomically(work) {
      if (!deps.db) throw new Error('event bus: atomically needs the store');
      const recorded: SecurityEvent[] = [];
      const result = await deps.db.transaction().execute((tx) => work(tx, (event) => recorded.push(event)));
      await Promise.all(recorded.map((event) => emit(event)));
      return result;
    },
    startTail(intervalMs) {
      if (tailTimer) return;
      // A store that is down now leaves lastSeen unset; the first poll that reaches it starts from its head.
      runSerial(async () => {
        lastSeen = (await log.head()).seq;
      }).catch((err: unknown) => deps.onError?.(err));
      tailTimer = setInterval(() => {
        void runSerial(poll).catch((err: unknown) => deps.onError?.(err));
      }, intervalMs);
      tailTimer.unref();
    },
    async flush() {
      await runSerial(() => Promise.resolve());
    },
    async close() {
      if (tailTimer) clearInterval(tailTimer);
      tailTimer = undefined;
      await runSerial(() => Promise.resolve());
    },
  };
}
