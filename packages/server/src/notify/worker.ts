import type { AuditLog, EventBus, SecurityEvent } from '../events/index.ts';
import { subjectOf } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { channelStore, type ChannelRow } from './channel.store.ts';
import type { ChannelFilter, ChannelKind, ChannelStats, NotificationEntry } from './channel.types.ts';
import { compileFilter } from './filter.ts';
import { errorText, makeTransport, type Transport, type TransportDeps } from './transport.ts';

/** Exponential back-off: retryBase, 2×, 4×, … capped at retryMax. Deterministic: one node per channel. */
export function retryDelay(attempts: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** Math.min(Math.max(attempts - 1, 0), 40));
}

const BATCH = 200;

/** What this node knows of one channel between rounds. */
interface Runtime {
  busy: boolean;
  key?: string | undefined;
  transport?: Transport | undefined;
  matches?: ((entry: NotificationEntry) => boolean) | undefined;
  failingSince?: number | undefined;
  delivered: number;
  failures: number;
  leased: boolean;
}

export interface WorkerDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  audit: Pick<AuditLog, 'readAfter' | 'head'>;
  transport: TransportDeps;
  now: () => number;
  nodeId: string;
  leaseMs: number;
  retryBase: number;
  retryMax: number;
  pollInterval: number;
  onError?: ((err: unknown, channel?: string) => void) | undefined;
}

/** The worker's state, shared by the functions below. */
interface Worker extends WorkerDeps {
  runtimes: Map<string, Runtime>;
  inflight: Set<Promise<void>>;
  stopping: boolean;
  /** Whether this instance ever took a lease (and so has leases to hand back). */
  delivering: boolean;
}

/** Rebuilds the transport and filter when the channel changed since they were made. */
function prepare(w: Worker, row: ChannelRow, rt: Runtime) {
  const key = `${row.updated_at}|${row.target}|${row.format}|${row.settings}|${row.filter}|${row.secret_sealed}`;
  if (rt.key !== key || !rt.transport || !rt.matches) {
    rt.transport?.close();
    rt.transport = undefined;
    rt.matches = compileFilter(JSON.parse(row.filter) as ChannelFilter);
    rt.transport = makeTransport(row, w.transport);
    rt.key = key;
  }
  return { transport: rt.transport, matches: rt.matches };
}

async function emitSafely(w: Worker, event: SecurityEvent) {
  try {
    await w.events.emit(event);
  } catch (err) {
    w.onError?.(err);
  }
}

interface Failure {
  row: ChannelRow;
  rt: Runtime;
  attempts: number;
  cursor: number;
  /** The first entry not delivered. */
  pendingSeq: number;
  err: unknown;
}

async function recordFailure(w: Worker, f: Failure): Promise<void> {
  const next = f.attempts + 1;
  const error = errorText(f.err);
  f.rt.failures += 1;
  const t = w.now();
  const kept = await channelStore.updateLeased(
    w.db,
    { id: f.row.id, owner: w.nodeId },
    {
      cursor: f.cursor,
      attempts: next,
      next_attempt_at: t + retryDelay(next, w.retryBase, w.retryMax),
      last_error: error,
    },
  );
  if (kept && next === 1) {
    f.rt.failingSince = t;
    await emitSafely(w, {
      type: 'notification.channel_failing',
      actor: 'system',
      subject: subjectOf.channel(f.row.id),
      data: { name: f.row.name, error, pendingFromSeq: f.pendingSeq },
    });
  }
}

/** Takes or renews the lease when less than half of it is left; false when another node holds it. */
async function keepLease(w: Worker, id: string, lease: { until: number }): Promise<boolean> {
  if (lease.until - w.now() >= w.leaseMs / 2) return true;
  if (!(await channelStore.claimLease(w.db, { id, owner: w.nodeId, now: w.now(), leaseMs: w.leaseMs })))
    return false;
  lease.until = w.now() + w.leaseMs;
  return true;
}

/** After a delivery that ended a run of failures: how long the channel failed (estimated after a restart). */
async function recovered(w: Worker, run: Pick<Run, 'row' | 'rt' | 'attempts'>) {
  const { row, rt, attempts } = run;
  let failedForMs = 0;
  if (rt.failingSince !== undefined) failedForMs = w.now() - rt.failingSince;
  else for (let i = 1; i <= attempts; i++) failedForMs += retryDelay(i, w.retryBase, w.retryMax);
  rt.failingSince = undefined;
  await emitSafely(w, {
    type: 'notification.channel_recovered',
    actor: 'system',
    subject: subjectOf.channel(row.id),
    data: { name: row.name, failedForMs, attempts },
  });
}

interface Run {
  row: ChannelRow;
  rt: Runtime;
  lease: { until: number };
  transport: Transport;
  matches: (entry: NotificationEntry) => boolean;
  cursor: number;
  attempts: number;
}

/** One batch of entries after the cursor; false when the run ends (failure, lease lost, caught up). */
async function deliverBatch(w: Worker, run: Run): Promise<boolean> {
  const { row, rt } = run;
  const entries = await w.audit.readAfter(run.cursor, BATCH);
  let skipped = run.cursor;
  for (const entry of entries) {
    if (w.stopping) break;
    if (!run.matches(entry)) {
      skipped = entry.seq;
      continue;
    }
    if (!(await keepLease(w, row.id, run.lease))) return (rt.leased = false);
    try {
      await run.transport.deliver(entry);
    } catch (err) {
      await recordFailure(w, {
        row,
        rt,
        attempts: run.attempts,
        cursor: skipped,
        pendingSeq: entry.seq,
        err,
      });
      return false;
    }
    const kept = await channelStore.updateLeased(
      w.db,
      { id: row.id, owner: w.nodeId },
      {
        cursor: entry.seq,
        attempts: 0,
        next_attempt_at: null,
        last_delivered_at: w.now(),
      },
    );
    if (!kept) return false; // deleted, disabled and taken over, or lease lost: the next holder goes on
    run.cursor = skipped = entry.seq;
    rt.delivered += 1;
    if (run.attempts > 0) {
      await recovered(w, run);
      run.attempts = 0;
    }
  }
  if (skipped > run.cursor) {
    if (!(await channelStore.updateLeased(w.db, { id: row.id, owner: w.nodeId }, { cursor: skipped })))
      return false;
    run.cursor = skipped;
  }
  return entries.length === BATCH;
}

/** Delivers what the channel has not had yet, in order, until caught up, a failure, or the lease is lost. */
async function runChannel(w: Worker, seen: ChannelRow, rt: Runtime): Promise<void> {
  const lease = { until: seen.lease_owner === w.nodeId ? (seen.lease_until ?? 0) : 0 };
  // Renewed only when less than half the lease is left: no write per round for a channel this node holds.
  if (!(await keepLease(w, seen.id, lease))) {
    rt.leased = false;
    return;
  }
  rt.leased = true;
  w.delivering = true;
  // Read again under the lease: the previous holder may have moved the cursor since the round began.
  const row = await channelStore.byId(w.db, seen.id);
  if (!row) return;
  let prepared: ReturnType<typeof prepare>;
  try {
    prepared = prepare(w, row, rt);
  } catch (err) {
    await recordFailure(w, {
      row,
      rt,
      attempts: row.attempts,
      cursor: row.cursor,
      pendingSeq: row.cursor + 1,
      err,
    });
    return;
  }
  const run: Run = { row, rt, lease, ...prepared, cursor: row.cursor, attempts: row.attempts };
  while (!w.stopping && (await deliverBatch(w, run)));
}

function runtimeFor(w: Worker, id: string): Runtime {
  let rt = w.runtimes.get(id);
  if (!rt) {
    rt = { busy: false, delivered: 0, failures: 0, leased: false };
    w.runtimes.set(id, rt);
  }
  return rt;
}

/** Is the channel due: behind the head, not in back-off, not leased by another node? */
function due(w: Worker, row: ChannelRow, at: { rt: Runtime; head: number }): boolean {
  const { rt, head } = at;
  const t = w.now();
  if (row.cursor >= head) return false;
  if (row.next_attempt_at !== null && row.next_attempt_at > t) return false;
  if (row.lease_owner !== null && row.lease_owner !== w.nodeId && (row.lease_until ?? 0) >= t) {
    rt.leased = false;
    return false;
  }
  return true;
}

function forget(rt: Runtime) {
  rt.transport?.close();
  rt.transport = undefined;
  rt.key = undefined;
}

/** One round: start a delivery run for each channel that is behind, not in back-off and not leased elsewhere. */
async function round(w: Worker): Promise<void> {
  try {
    const rows = await channelStore.listEnabled(w.db);
    const head = (await w.audit.head()).seq;
    const present = new Set<string>();
    for (const row of rows) {
      present.add(row.id);
      const rt = runtimeFor(w, row.id);
      if (rt.busy || w.stopping || !due(w, row, { rt, head })) continue;
      rt.busy = true;
      const run = runChannel(w, row, rt)
        .catch((err: unknown) => w.onError?.(err, row.name))
        .finally(() => {
          rt.busy = false;
          w.inflight.delete(run);
        });
      w.inflight.add(run);
    }
    for (const [id, rt] of w.runtimes) {
      if (present.has(id) || rt.busy) continue;
      forget(rt);
      rt.leased = false;
    }
  } catch (err) {
    w.onError?.(err);
  }
}

function stats(w: Worker, rows: ChannelRow[], head: number): ChannelStats[] {
  return rows.map((row) => {
    const rt = w.runtimes.get(row.id);
    return {
      id: row.id,
      name: row.name,
      kind: row.kind as ChannelKind,
      enabled: row.enabled === 1,
      cursor: row.cursor,
      head,
      lag: Math.max(0, head - row.cursor),
      delivered: rt?.delivered ?? 0,
      failures: rt?.failures ?? 0,
      attempts: row.attempts,
      failing: row.attempts > 0,
      lastError: row.last_error,
      lastDeliveredAt: row.last_delivered_at,
      leased: row.lease_owner === w.nodeId && (row.lease_until ?? 0) > w.now(),
    };
  });
}

/**
 * The delivery worker: each channel follows the audit log with a cursor, so nothing is queued besides the
 * log itself and what was not delivered before a crash is delivered after it. Failures are retried with
 * back-off, never skipped; one node per channel delivers, by a lease in the channel's row.
 */
export function createDeliveryWorker(deps: WorkerDeps) {
  const w: Worker = { ...deps, runtimes: new Map(), inflight: new Set(), stopping: false, delivering: false };
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let started = false;

  function tick(): Promise<void> {
    if (w.stopping) return Promise.resolve();
    ticking ??= round(w).finally(() => (ticking = undefined));
    return ticking;
  }

  return {
    /** Per-channel figures for Prometheus. */
    async stats(): Promise<ChannelStats[]> {
      const head = (await w.audit.head()).seq;
      return stats(w, await channelStore.list(w.db), head);
    },

    /** Runs one round now (tests; the timer does the same). Resolves when its deliveries are done. */
    async runOnce(): Promise<void> {
      await tick();
      await Promise.allSettled([...w.inflight]);
    },

    /** Starts the worker on its own timer: it never blocks the broker or the event bus. */
    start(): void {
      if (started) return;
      started = true;
      timer = setInterval(() => void tick(), w.pollInterval);
      timer.unref();
      void tick();
    },

    /** Stops the worker, waits for attempts in flight, closes connections and hands its leases back. */
    async stop(): Promise<void> {
      started = false;
      w.stopping = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      await ticking; // a round under way starts nothing more once stopping is set
      await Promise.allSettled([...w.inflight]);
      for (const rt of w.runtimes.values()) forget(rt);
      // Only a node that delivered holds leases (the CLI shares the server's node id but never delivers).
      if (w.delivering) {
        w.delivering = false;
        await channelStore.releaseLeases(w.db, w.nodeId).catch((err: unknown) => w.onError?.(err));
      }
      w.stopping = false;
    },
  };
}
