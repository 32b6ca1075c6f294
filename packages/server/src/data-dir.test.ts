import {
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { testConfig, type Config } from './config/index.ts';
import {
  acquireServerLock,
  CA_CHAIN_FILE,
  LOCK_STALE_MS,
  openDataDir,
  SERVER_LOCK_FILE,
} from './data-dir.ts';
import { createLogger } from './logger.ts';
import { createPlatform } from './platform.ts';
import { createTestStore, testDialects, type TestStore } from './test-support/dialects.ts';

/**
 * The key check value and the lost-CA refusals on both dialects (the CLI's e2e tests cover SQLite files
 * and the messages a user sees: cli/startup.e2e.test.ts). On PostgreSQL the store outlives the data
 * directory, so these are the checks that protect it.
 */
describe.each(testDialects)('data directory checks on %s', (dialect) => {
  let db: TestStore | undefined;
  let dataDir: string;
  const now = () => Date.now();
  const config = (overrides: Record<string, unknown> = {}): Config =>
    testConfig({
      dataDir,
      logLevel: 'silent',
      ...(db?.location.url ? { 'database.url': db.location.url } : {}),
      ...overrides,
    });
  /** A new, empty PostgreSQL database (on SQLite the store is <data>/bulwark.db). */
  const newDatabase = async () => {
    if (dialect !== 'postgres') return;
    await db?.cleanup();
    db = await createTestStore(dialect);
    await db.store.close();
  };

  beforeEach(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-datadir-'));
    await newDatabase();
  });

  afterEach(async () => {
    await db?.cleanup().catch(() => undefined);
    db = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('binds a new store to its master key and refuses another key, or none, afterwards', async () => {
    const first = await openDataDir(config(), { create: true, now });
    const sealed = first.box.seal(Buffer.from('secret'), 'test');
    await first.store.close();

    const again = await openDataDir(config(), { create: false, now });
    expect(again.box.open(sealed, 'test').toString()).toBe('secret');
    await again.store.close();

    await expect(openDataDir(config({ masterKey: 'ab'.repeat(32) }), { create: true, now })).rejects.toThrow(
      /the master key from BULWARK_MASTER_KEY does not match the store .* \(its key check value differs\)/,
    );
    unlinkSync(path.join(dataDir, 'master.key'));
    // With the key file gone, even a creating command stops: a new key would orphan the data.
    await expect(openDataDir(config(), { create: true, now })).rejects.toThrow(/the master key is missing/);
  });

  it('refuses to make a new CA when the store holds certificates but lost its CA', async () => {
    const platform = await createPlatform(config(), { logger: createLogger('silent') });
    await platform.pki();
    await platform.store.db.deleteFrom('pki_material').execute();
    await platform.close();
    const again = await createPlatform(config(), { logger: createLogger('silent'), createDataDir: false });
    try {
      await expect(again.pki()).rejects.toThrow(/the store holds issued certificates but no CA/);
      expect(await again.store.db.selectFrom('pki_material').select('name').execute()).toEqual([]);
    } finally {
      await again.close();
    }
  });

  it('refuses a store without Bulwark data next to the CA chain of one that had it', async () => {
    const first = await openDataDir(config(), { create: true, now });
    await first.store.close();
    writeFileSync(path.join(dataDir, CA_CHAIN_FILE), '-----BEGIN CERTIFICATE-----\n');
    // The store is replaced by an empty one (another database, a deleted file).
    await newDatabase();
    if (dialect === 'sqlite') {
      rmSync(path.join(dataDir, 'bulwark.db'), { force: true });
      await expect(openDataDir(config(), { create: true, now })).rejects.toThrow(
        /has no store \(bulwark\.db\) but holds ca-chain\.pem/,
      );
    } else {
      await expect(openDataDir(config(), { create: true, now })).rejects.toThrow(
        /holds no Bulwark data, but .* holds ca-chain\.pem from a store that did/,
      );
    }
  });
});

describe('the server lock', () => {
  it('refuses while another host keeps its lock fresh, and takes it over once nobody touched it for 30 s', () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-lock-'));
    const file = path.join(dataDir, SERVER_LOCK_FILE);
    try {
      const other = { pid: 4242, host: 'gateway-2.invalid', startedAt: '2026-12-01T00:00:00.000Z' };
      writeFileSync(file, JSON.stringify(other));
      expect(() => acquireServerLock(dataDir)).toThrow(
        /is in use by a Bulwark server on host gateway-2\.invalid \(pid 4242, since 2026-12-01/,
      );
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(other);

      const old = new Date(Date.now() - LOCK_STALE_MS - 5000);
      utimesSync(file, old, old);
      const release = acquireServerLock(dataDir);
      expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid });
      release();
      expect(existsSync(file)).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
