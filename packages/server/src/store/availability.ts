import type { PostgresPool, PostgresPoolClient, PostgresQueryResult } from 'kysely';
import type pg from 'pg';
import { BulwarkError } from '@bulwark/protocol';

export const storeStates = ['up', 'down'] as const;
export type StoreState = (typeof storeStates)[number];

export interface StoreHealth {
  state: StoreState;
  /** Epoch milliseconds of the last change of state. */
  since: number;
  /** Why the database was found unreachable (server-side only: it may name hosts). */
  reason?: string;
}

export type StoreHealthListener = (health: StoreHealth, previous: StoreHealth) => void;

/** How long a client waits for the store to answer before it calls the store unavailable. */
export const CONNECT_TIMEOUT_MS = 5_000;
/** The first retry after a failed probe; doubled each time up to {@link MAX_RETRY_DELAY_MS}. */
export const MIN_RETRY_DELAY_MS = 100;
export const MAX_RETRY_DELAY_MS = 5_000;
/** What a 503 tells the client (`Retry-After`, RFC 9110 §10.2.3). */
const RETRY_AFTER_S = 5;

// Node's socket errors for a database that is gone, restarting or unreachable.
const socketCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
// SQLSTATEs for "the server will not serve this connection" (PostgreSQL manual, Appendix A): admin_shutdown
// (pg_terminate_backend, a fast stop), crash_shutdown, cannot_connect_now (starting up or in recovery),
// too_many_connections. Class 08 (connection exception) is matched as a class.
const serverCodes = new Set(['57P01', '57P02', '57P03', '53300']);
// What pg and pg-pool say, without a code, when a connection ends under a query or cannot be made in time.
const lossMessages =
  /^Connection terminated|not queryable|timeout exceeded when trying to connect|Postgres connection has been discarded/;

/** True when `err` means the database cannot be reached (as opposed to a query it refused). */
export function isConnectionLoss(err: unknown, depth = 0): boolean {
  if (err instanceof BulwarkError) return err.code === 'unavailable';
  const e = err as { code?: unknown; message?: unknown; errors?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (socketCodes.has(code) || serverCodes.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  if (typeof e.message === 'string' && lossMessages.test(e.message)) return true;
  // Node's happy-eyeballs connect reports one error per address tried.
  if (Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every((x) => isConnectionLoss(x, depth + 1)))
    return true;
  // A wrapper (a failed migration) around a lost connection.
  const cause = (err as { cause?: unknown }).cause;
  return depth < 4 && cause !== undefined && cause !== err && isConnectionLoss(cause, depth + 1);
}

/** The error every interface shows for a store that is down: HTTP 503, CONNACK 3, CLI exit 1. */
export function unavailableError(cause: unknown): BulwarkError {
  return new BulwarkError('unavailable', 'the database is unreachable; retry shortly', {
    cause,
    details: { retryAfterS: RETRY_AFTER_S },
  });
}

const describe = (err: unknown) => {
  const e = err as { code?: unknown; message?: unknown } | null;
  const message = typeof e?.message === 'string' && e.message ? e.message : String(err);
  return typeof e?.code === 'string' ? `${e.code}: ${message}` : message;
};

export interface AvailabilityDeps {
  /** One round trip to the database on a connection of its own; rejects when it cannot be made. */
  probe: () => Promise<void>;
  now: () => number;
  minDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * Whether the database answers. A connection lost under a query (or an idle connection dropped by the
 * server) starts a probe; a failed probe marks the store down and probes again with exponential back-off
 * and jitter until the database answers, then marks it up. While down, work that needs the store fails at
 * once instead of each request waiting for a connection (no thundering herd when the database returns).
 */
export function createAvailability(deps: AvailabilityDeps) {
  const minDelay = deps.minDelayMs ?? MIN_RETRY_DELAY_MS;
  const maxDelay = deps.maxDelayMs ?? MAX_RETRY_DELAY_MS;
  let health: StoreHealth = { state: 'up', since: deps.now() };
  const listeners = new Set<StoreHealthListener>();
  let probing: Promise<void> | undefined;
  let closed = false;
  let wake: (() => void) | undefined;
  let sleepTimer: NodeJS.Timeout | undefined;

  const set = (next: StoreHealth) => {
    const previous = health;
    health = next;
    for (const listener of listeners) {
      try {
        listener(next, previous);
      } catch {
        // A listener's failure must not stop the others nor the probe loop.
      }
    }
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      sleepTimer = setTimeout(resolve, ms);
      sleepTimer.unref();
    });

  async function probeUntilUp(): Promise<void> {
    let delay = minDelay;
    while (!closed) {
      try {
        await deps.probe();
        if (health.state === 'down' && !closed) set({ state: 'up', since: deps.now() });
        return;
      } catch (err) {
        if (closed) return;
        if (health.state === 'up') set({ state: 'down', since: deps.now(), reason: describe(err) });
      }
      await sleep(delay / 2 + Math.random() * (delay / 2));
      delay = Math.min(maxDelay, delay * 2);
    }
  }

  return {
    health: (): StoreHealth => health,

    /** A connection was lost or could not be made: find out whether the database itself is gone. */
    suspect(): void {
      if (closed) return;
      probing ??= probeUntilUp().finally(() => (probing = undefined));
    },

    onChange(listener: StoreHealthListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    /** Stops probing (the store is closing). */
    async close(): Promise<void> {
      closed = true;
      if (sleepTimer) clearTimeout(sleepTimer);
      wake?.();
      listeners.clear();
      await probing;
    },
  };
}

export type Availability = ReturnType<typeof createAvailability>;

/**
 * The pool Kysely uses, guarded: every failure to reach the database becomes `unavailable` (and a probe),
 * and while the store is known down a connection is refused at once. pg emits `error` on an idle client
 * the server dropped (restart, `pg_terminate_backend`, idle timeout, failover), and on a checked-out
 * client too; an EventEmitter `error` without a listener ends the process, so both get one.
 */
export function guardPool(pool: pg.Pool, availability: Availability): PostgresPool {
  pool.on('error', () => availability.suspect());
  pool.on('connect', (client) => {
    client.on('error', () => availability.suspect());
  });
  const guarded = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const fail = (err: unknown): never => {
    if (!isConnectionLoss(err)) throw err;
    availability.suspect();
    throw err instanceof BulwarkError ? err : unavailableError(err);
  };
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    const query = (sqlOrCursor: unknown, parameters?: readonly unknown[]) => {
      if (typeof sqlOrCursor !== 'string')
        return client.query(sqlOrCursor as Parameters<typeof client.query>[0]) as unknown;
      return client
        .query(sqlOrCursor, parameters as unknown[])
        .then((r) => r as unknown as PostgresQueryResult<unknown>, fail);
    };
    return {
      query: query as PostgresPoolClient['query'],
      release: (destroy?: boolean) => client.release(destroy),
    };
  };
  return {
    async connect() {
      const health = availability.health();
      if (health.state === 'down') throw unavailableError(new Error(health.reason ?? 'database down'));
      const client = await pool.connect().catch(fail);
      let w = guarded.get(client);
      if (!w) guarded.set(client, (w = wrap(client)));
      return w;
    },
    end: () => pool.end(),
  };
}
