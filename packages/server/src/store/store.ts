import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type MigrationProvider } from 'kysely';
import pg from 'pg';
import { BulwarkError } from '@bulwark/protocol';
import { redactDatabaseUrl } from '../config/index.ts';
import {
  CONNECT_TIMEOUT_MS,
  createAvailability,
  guardPool,
  isConnectionLoss,
  unavailableError,
  type Availability,
  type StoreHealth,
  type StoreHealthListener,
} from './availability.ts';
import { migrations } from './migrations.ts';
import type { Database, Db } from './schema.ts';

export const dialects = ['sqlite', 'postgres'] as const;
export type DialectName = (typeof dialects)[number];

export interface Store {
  readonly db: Db;
  readonly dialect: DialectName;
  /** A description safe to print (no password). */
  readonly location: string;
  /** Whether the database answers now (SQLite, in-process, always does). */
  health(): StoreHealth;
  /** One round trip to the database; throws `unavailable` when it does not answer. */
  ping(): Promise<void>;
  /** Called when the store goes down or comes back. */
  onHealthChange(listener: StoreHealthListener): () => void;
  /**
   * After deleting something that must not stay readable on disk (an erasure): SQLite moves the WAL into
   * the database file and truncates it (deleted content is already zeroed there: `secure_delete`); resolves
   * with false when a reader kept part of the WAL in use. PostgreSQL: nothing to do here (VACUUM reclaims
   * dead tuples; WAL archives and backups follow their own retention): true.
   */
  compact(): Promise<boolean>;
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** postgres://… selects PostgreSQL; otherwise SQLite in `sqliteFile` (or `:memory:`). */
  databaseUrl?: string | undefined;
  sqliteFile?: string;
  /** Probe back-off bounds (tests shorten them). */
  retryDelayMs?: { min: number; max: number };
}

const INT8_OID = 20;
const baseTypeParser = pg.types.getTypeParser.bind(pg.types) as (
  oid: number,
  format?: string,
) => (value: string) => unknown;
// bigint columns hold epoch milliseconds and sequence numbers, which fit a JS number.
const int8AsNumber = (oid: number, format?: string) =>
  oid === INT8_OID ? Number : baseTypeParser(oid, format);

/**
 * Opens the store and brings its schema up to date. SQLite runs in WAL mode with full fsync, so a
 * committed audit entry survives a crash or power loss before the action it records is answered.
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  let store: Store;
  if (options.databaseUrl) {
    const databaseUrl = options.databaseUrl;
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: 10,
      // A database that does not answer (host gone, failover) must fail a request, not hold it forever.
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      types: { getTypeParser: int8AsNumber } as unknown as pg.CustomTypesConfig,
    });
    const availability = createAvailability({
      probe: () => probe(databaseUrl),
      now: Date.now,
      minDelayMs: options.retryDelayMs?.min,
      maxDelayMs: options.retryDelayMs?.max,
    });
    store = makeStore(
      new Kysely<Database>({ dialect: new PostgresDialect({ pool: guardPool(pool, availability) }) }),
      { dialect: 'postgres', location: redactDatabaseUrl(options.databaseUrl) },
      availability,
    );
  } else {
    const file = options.sqliteFile ?? ':memory:';
    if (file !== ':memory:') {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      // Created 0600 before SQLite opens it; its -wal and -shm files take the same mode.
      closeSync(openSync(file, 'a', 0o600));
    }
    const sqlite = new SQLite(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma('busy_timeout = 5000');
    sqlite.pragma('foreign_keys = ON');
    // Deleted rows and freed pages are overwritten with zeros (an erased or crypto-shredded value must not
    // stay readable in the file); compact() then truncates the WAL, which holds older page images.
    sqlite.pragma('secure_delete = ON');
    store = makeStore(new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) }), {
      dialect: 'sqlite',
      location: file,
    });
  }
  try {
    await migrate(store.db);
  } catch (err) {
    await store.close();
    if (isConnectionLoss(err))
      throw new BulwarkError(
        'unavailable',
        `cannot reach the ${store.dialect} store at ${store.location} (${rootCause(err)}); retry shortly`,
        { cause: err },
      );
    throw new BulwarkError(
      'internal',
      `cannot prepare the ${store.dialect} store at ${store.location}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return store;
}

/**
 * `select 1` on a connection of its own, outside the pool: it measures whether the database answers, not
 * whether the pool has a free connection (a busy pool is not an outage). Bounded in time even when the
 * socket hangs.
 */
async function probe(connectionString: string): Promise<void> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: CONNECT_TIMEOUT_MS });
  client.on('error', () => undefined); // the answer is the rejected promise below
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.query('select 1')),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error('the database did not answer in time')),
          CONNECT_TIMEOUT_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await client.end().catch(() => undefined);
  }
}

/** The innermost cause's message (ECONNREFUSED, "the database system is starting up"…). */
function rootCause(err: unknown): string {
  let e = err;
  for (let i = 0; i < 5 && e instanceof Error && e.cause instanceof Error; i++) e = e.cause;
  if (!(e instanceof Error)) return 'no answer';
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
}

const alwaysUp: StoreHealth = { state: 'up', since: Date.now() };

/** `PRAGMA wal_checkpoint(TRUNCATE)`, a few times while a reader holds frames (busy), for SQLite. */
async function checkpoint(db: Db): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const { rows } = await sql<{ busy: number }>`PRAGMA wal_checkpoint(TRUNCATE)`.execute(db);
    if (rows[0]?.busy === 0) return true;
    await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
  }
  return false;
}

function makeStore(
  db: Db,
  where: { dialect: DialectName; location: string },
  availability?: Availability,
): Store {
  const { dialect, location } = where;
  return {
    db,
    dialect,
    location,
    health: () => availability?.health() ?? alwaysUp,
    async ping() {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          sql`select 1`.execute(db),
          new Promise((_, reject) => {
            timer = setTimeout(() => {
              availability?.suspect();
              reject(unavailableError(new Error('the database did not answer in time')));
            }, CONNECT_TIMEOUT_MS);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    onHealthChange: (listener) => availability?.onChange(listener) ?? (() => undefined),
    compact: () => (dialect === 'sqlite' ? checkpoint(db) : Promise.resolve(true)),
    async close() {
      await availability?.close();
      await db.destroy();
    },
  };
}

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

export async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    throw new Error(
      `migration ${failed?.migrationName ?? ''} failed: ${String((error as Error).message ?? error)}`,
      {
        cause: error,
      },
    );
  }
}

/** True when `err` is a primary-key or unique-constraint violation on either dialect. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/** True when SQLite could not take its write lock in time (another process holds it). */
export function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === '40001';
}
