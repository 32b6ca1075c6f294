import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { testPostgresUrl } from '../test-support/dialects.ts';
import {
  privatePostgresUnavailable,
  startPrivatePostgres,
  type PrivatePostgres,
} from '../test-support/private-postgres.ts';
import { isConnectionLoss, isUniqueViolation, openStore, type Store, type StoreHealth } from './index.ts';
import { waitFor } from '../test-support/wait.ts';

const retryDelayMs = { min: 50, max: 500 };

const until = <T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false) =>
  waitFor(what, probe, { timeoutMs: 60_000, intervalMs: 50, retryErrors: true });

// A table of the test's own: what is written while the database is away must not appear.
const prepare = (store: Store) =>
  sql`create table if not exists probe_rows (id text primary key)`.execute(store.db);
const count = async (store: Store) =>
  Number((await sql<{ n: number }>`select count(*) as n from probe_rows`.execute(store.db)).rows[0]?.n);
const addRow = (store: Store, id: string) =>
  sql`insert into probe_rows (id) values (${id})`.execute(store.db);

async function expectUnavailable(work: Promise<unknown>) {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BulwarkError);
  expect((err as BulwarkError).code).toBe('unavailable');
}

const skipPrivate = privatePostgresUnavailable();
if (skipPrivate) console.warn(`[bulwark tests] PostgreSQL restart test skipped: ${skipPrivate}`);

describe.skipIf(skipPrivate !== undefined)('store across a PostgreSQL restart (private server)', () => {
  let server: PrivatePostgres;
  let store: Store;
  const changes: StoreHealth[] = [];
  beforeAll(async () => {
    server = await startPrivatePostgres();
    store = await openStore({ databaseUrl: server.url, retryDelayMs });
    await prepare(store);
    store.onHealthChange((h) => changes.push(h));
  }, 180_000);
  afterAll(async () => {
    await store?.close();
    await server?.destroy();
  }, 120_000);

  it('fails work with `unavailable` while the database is down, then serves again by itself', async () => {
    await addRow(store, 'before');
    // Idle pooled connections the server will drop, and one busy in a transaction when it stops.
    await Promise.all(Array.from({ length: 4 }, () => count(store)));
    const inFlight = store.db
      .transaction()
      .execute(async (trx) => {
        await sql`select pg_sleep(30)`.execute(trx);
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    await until('the transaction to run', async () => {
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      try {
        const r = await c.query("select 1 from pg_stat_activity where query like 'select pg_sleep%'");
        return r.rowCount ? true : undefined;
      } finally {
        await c.end();
      }
    });
    await server.stop();

    const lost = await inFlight;
    expect(lost).toBeInstanceOf(BulwarkError);
    expect((lost as BulwarkError).code).toBe('unavailable');
    await expectUnavailable(count(store));
    await expectUnavailable(addRow(store, 'during'));
    await expectUnavailable(store.ping());
    // A process starting now (the CLI, another node) is told the same.
    await expectUnavailable(openStore({ databaseUrl: server.url }));
    await until('the store to be reported down', () => store.health().state === 'down' || undefined);
    expect(store.health().reason).toBeTruthy();

    await server.start();
    await until('the store to come back', () => store.health().state === 'up' || undefined);
    await store.ping();
    await addRow(store, 'after');
    expect(await count(store)).toBe(2);
    expect(changes.map((h) => h.state)).toEqual(['down', 'up']);
  }, 180_000);
});

describe.skipIf(!testPostgresUrl)('store when its PostgreSQL connections are terminated', () => {
  let admin: pg.Client;
  let store: Store;
  let name: string;
  beforeAll(async () => {
    name = `bulwark_test_${randomBytes(6).toString('hex')}`;
    admin = new pg.Client({ connectionString: testPostgresUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(testPostgresUrl!);
    url.pathname = `/${name}`;
    store = await openStore({ databaseUrl: url.toString(), retryDelayMs });
    await prepare(store);
  });
  afterAll(async () => {
    await store?.close();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  });

  // Only this test's own database: the shared cluster serves other suites at the same time.
  const terminateOurs = () =>
    admin.query(
      'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
      [name],
    );

  it('survives pg_terminate_backend of idle and busy connections and goes on serving', async () => {
    await Promise.all(Array.from({ length: 4 }, () => count(store)));
    const busy = sql`select pg_sleep(30)`.execute(store.db).then(
      () => undefined,
      (e: unknown) => e,
    );
    await until('the busy query to run', async () => {
      const r = await admin.query(
        "select 1 from pg_stat_activity where datname = $1 and query like 'select pg_sleep%'",
        [name],
      );
      return r.rowCount ? true : undefined;
    });
    const terminated = await terminateOurs();
    expect(terminated.rowCount).toBeGreaterThanOrEqual(2);
    const lost = await busy;
    expect((lost as BulwarkError).code).toBe('unavailable');
    // New connections are made as needed: the store answers again without a restart.
    await until('a query to succeed', async () => (await count(store)) >= 0 || undefined);
    await addRow(store, 'after-terminate');
    expect(await count(store)).toBe(1);
    await until('the store to be up', () => store.health().state === 'up' || undefined);
  }, 120_000);
});

describe.skipIf(!testPostgresUrl)('what counts as the database being unreachable', () => {
  it('a refused connection does; a query the database refused (a unique violation, bad SQL) does not', async () => {
    const refused = await new pg.Client({
      connectionString: 'postgres://x:y@127.0.0.1:1/db',
      connectionTimeoutMillis: 5000,
    })
      .connect()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isConnectionLoss(refused)).toBe(true);
    expect(isConnectionLoss(new Error('migration failed', { cause: refused }))).toBe(true);

    const c = new pg.Client({ connectionString: testPostgresUrl });
    await c.connect();
    try {
      await c.query('create temporary table t (id int primary key)');
      await c.query('insert into t values (1)');
      const duplicate = await c.query('insert into t values (1)').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isUniqueViolation(duplicate)).toBe(true);
      expect(isConnectionLoss(duplicate)).toBe(false);
      const bad = await c.query('select from nowhere').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isConnectionLoss(bad)).toBe(false);
    } finally {
      await c.end();
    }
  });
});
