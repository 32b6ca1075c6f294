import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { openStore, type DialectName, type Store } from '../store/index.ts';
import { testTmpDir } from './tmp.ts';

/**
 * Every store suite runs against each dialect (as Kysely's own test setup does). PostgreSQL comes from
 * BULWARK_TEST_DATABASE_URL (a role allowed to create databases); `.ci/run` starts one. Under CI a missing
 * PostgreSQL is an error, never a silent skip.
 */
export const testPostgresUrl = process.env.BULWARK_TEST_DATABASE_URL;

if (!testPostgresUrl && process.env.CI) {
  throw new Error('BULWARK_TEST_DATABASE_URL must point at a PostgreSQL server in CI (see .ci/run)');
}

export const testDialects: DialectName[] = testPostgresUrl ? ['sqlite', 'postgres'] : ['sqlite'];
if (!testPostgresUrl) {
  console.warn('[bulwark tests] BULWARK_TEST_DATABASE_URL is not set: store suites run on SQLite only');
}

export interface TestStore {
  store: Store;
  /** Opens a second, independent connection to the same database (another "process"). */
  openAnother(): Promise<Store>;
  /** A URL or file path for tools outside the store (raw SQL tampering). */
  location: { dialect: DialectName; url?: string; file?: string };
  cleanup(): Promise<void>;
}

export async function createTestStore(dialect: DialectName): Promise<TestStore> {
  if (dialect === 'sqlite') {
    const dir = mkdtempSync(path.join(testTmpDir(), 'bulwark-store-'));
    const file = path.join(dir, 'test.db');
    const store = await openStore({ sqliteFile: file });
    const others: Store[] = [];
    return {
      store,
      async openAnother() {
        const s = await openStore({ sqliteFile: file });
        others.push(s);
        return s;
      },
      location: { dialect, file },
      async cleanup() {
        for (const s of others) await s.close();
        await store.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (!testPostgresUrl) throw new Error('PostgreSQL not configured');
  const name = `bulwark_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: testPostgresUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(testPostgresUrl);
  url.pathname = `/${name}`;
  const store = await openStore({ databaseUrl: url.toString() });
  const others: Store[] = [];
  return {
    store,
    async openAnother() {
      const s = await openStore({ databaseUrl: url.toString() });
      others.push(s);
      return s;
    },
    location: { dialect, url: url.toString() },
    async cleanup() {
      for (const s of others) await s.close();
      await store.close();
      const c = new pg.Client({ connectionString: testPostgresUrl });
      await c.connect();
      try {
        // A server process of another role (autovacuum) on the database makes FORCE fail for a moment:
        // try again, and leave the database behind rather than fail the test over its clean-up.
        for (let attempt = 1; ; attempt++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
            break;
          } catch (err) {
            if (attempt === 10) {
              console.warn(`[bulwark tests] could not drop ${name}: ${(err as Error).message}`);
              break;
            }
            await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}
