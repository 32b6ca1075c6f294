import { existsSync, mkdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { BulwarkError } from '@bulwark/protocol';
import type { Config } from './config/index.ts';
import { hasRootKey } from './pki/index.ts';
import {
  createMasterKey,
  createSecretBox,
  keyCheckValue,
  matchesKeyCheckValue,
  MASTER_KEY_FILE,
  readMasterKey,
  type SecretBox,
} from './secrets/index.ts';
import { getStoreMeta, openStore, putStoreMeta, type Store } from './store/index.ts';

// What a data directory holds (docs/configuration.md, "The data directory").
export const SQLITE_FILE = 'bulwark.db';
export const CA_CHAIN_FILE = 'ca-chain.pem';
export const AUDIT_HEAD_FILE = 'audit-head.json';
export const SERVER_LOCK_FILE = 'server.lock';
const KEY_CHECK = 'master_key_check';

export interface OpenDataDirOptions {
  /**
   * May a missing data directory, store and master key be created? Only `bulwark serve` and `bulwark init`
   * (and embedders) create; every other command needs existing data and says so instead of creating an
   * empty store somewhere a mistyped `--data` pointed.
   */
  create: boolean;
  now: () => number;
}

const fileSize = (file: string): number | undefined => {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
};

const restoreHint = (dir: string) =>
  `restore it from your backup, or point --data (BULWARK_DATA) at the directory that holds it; ${dir} is left as it is`;

/**
 * Opens the store and the master key of a data directory, refusing every combination that would lose or
 * orphan data: a store without its master key, a master key that does not match the store (checked with a
 * key check value kept in the store), and a store that disappeared from beside the CA chain and audit head
 * it wrote. Nothing is generated over existing data, and nothing is created unless `create`.
 */
export async function openDataDir(
  config: Pick<Config, 'dataDir' | 'masterKey' | 'database'>,
  options: OpenDataDirOptions,
): Promise<{ store: Store; box: SecretBox; created: boolean }> {
  const dir = path.resolve(config.dataDir);
  const sqliteFile = path.join(dir, SQLITE_FILE);
  const traces = [CA_CHAIN_FILE, AUDIT_HEAD_FILE].filter((f) => existsSync(path.join(dir, f)));
  const masterKey = readMasterKey(dir, config.masterKey);
  checkBeforeOpening({ dir, sqliteFile, traces, postgres: Boolean(config.database.url), masterKey, options });
  if (options.create) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const store = await openStore({ databaseUrl: config.database.url, sqliteFile });
  try {
    return { store, ...(await unlock({ dir, store, traces, masterKey, options })) };
  } catch (err) {
    await store.close();
    throw err;
  }
}

type MasterKey = ReturnType<typeof readMasterKey>;

/** Checked before the store is opened: opening (migrations, WAL) writes to it. */
function checkBeforeOpening(at: {
  dir: string;
  sqliteFile: string;
  traces: string[];
  postgres: boolean;
  masterKey: MasterKey;
  options: OpenDataDirOptions;
}): void {
  const { dir, traces, postgres, options } = at;
  const hasSqliteStore = !postgres && (fileSize(at.sqliteFile) ?? 0) > 0;
  if (!postgres && !hasSqliteStore) {
    if (traces.length > 0)
      throw new BulwarkError(
        'config_invalid',
        `${dir} has no store (${SQLITE_FILE}) but holds ${traces.join(' and ')} from one: the store was moved or deleted; ${restoreHint(dir)}. A new store and CA are not created over it`,
      );
    if (!options.create) throw noData(dir);
  }
  if (postgres && !options.create && !existsSync(dir)) throw noData(dir);
  if (hasSqliteStore && !at.masterKey) throw missingKey(dir, at.sqliteFile);
}

/** The secret box of an opened store: its key proven by the key check value, or set up for a new store. */
async function unlock(at: {
  dir: string;
  store: Store;
  traces: string[];
  masterKey: MasterKey;
  options: OpenDataDirOptions;
}): Promise<{ box: SecretBox; created: boolean }> {
  const { dir, store, options } = at;
  let { masterKey } = at;
  const stored = await getStoreMeta(store.db, KEY_CHECK);
  if (stored !== undefined) {
    if (!masterKey) throw missingKey(dir, store.location);
    const box = createSecretBox(masterKey.key);
    if (!matchesKeyCheckValue(box, stored)) throw wrongKey(masterKey.source, store.location);
    return { box, created: false };
  }
  // No key check value: a new store, or one from before key check values. The latter proves its key by
  // opening its root CA key; without a key, a root CA means the key was lost.
  let hasRoot: boolean;
  try {
    hasRoot = await hasRootKey({ db: store.db, box: masterKey && createSecretBox(masterKey.key) });
  } catch {
    throw wrongKey(masterKey?.source ?? '', store.location);
  }
  if (!hasRoot && at.traces.includes(CA_CHAIN_FILE)) throw lostStore(dir, [CA_CHAIN_FILE], store.location);
  if (!masterKey) {
    if (hasRoot) throw missingKey(dir, store.location);
    if (!options.create) throw noData(dir);
    masterKey = createMasterKey(dir);
  }
  const box = createSecretBox(masterKey.key);
  await putStoreMeta(store.db, { name: KEY_CHECK, value: keyCheckValue(box), now: options.now() });
  return { box, created: !hasRoot };
}

function noData(dir: string): BulwarkError {
  return new BulwarkError(
    'config_invalid',
    `no Bulwark data in ${dir}: give the right --data directory (or BULWARK_DATA), or create one there with \`bulwark init\` or \`bulwark serve\``,
  );
}

function missingKey(dir: string, store: string): BulwarkError {
  return new BulwarkError(
    'config_invalid',
    `the master key is missing: ${store} holds data sealed with it, but there is no ${path.join(dir, MASTER_KEY_FILE)} and BULWARK_MASTER_KEY is not set; ${restoreHint(dir)} (or set BULWARK_MASTER_KEY). A new key would not open the existing data, so none is generated`,
  );
}

function wrongKey(source: string, store: string): BulwarkError {
  return new BulwarkError(
    'config_invalid',
    `the master key from ${source} does not match the store ${store} (its key check value differs): use the key this store was created with (restore master.key from your backup or set BULWARK_MASTER_KEY); nothing was changed`,
  );
}

function lostStore(dir: string, traces: string[], store: string): BulwarkError {
  return new BulwarkError(
    'config_invalid',
    `the store ${store} holds no Bulwark data, but ${dir} holds ${traces.join(' and ')} from a store that did: ${restoreHint(dir)}. A new store and CA are not created over it`,
  );
}

interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    return typeof holder.pid === 'number' && typeof holder.host === 'string'
      ? { pid: holder.pid, host: holder.host, startedAt: String(holder.startedAt ?? '') }
      : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only checks that the process exists
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by another user
  }
}

/** A running server touches its lock this often; a lock untouched for LOCK_STALE_MS has no live holder. */
const LOCK_HEARTBEAT_MS = 10_000;
export const LOCK_STALE_MS = 30_000;

/**
 * Takes `<data>/server.lock` for a server process, so that a second server on the same data directory
 * refuses to start instead of sharing its store, node identity and files. The lock names its holder's pid
 * and host, and the holder touches it every 10 s. A lock is stale, and taken over, when nobody touched it
 * for 30 s (a crash anywhere, a container recreated with another host name, a reused pid), or at once when
 * its holder was on this host and that process is gone (kill -9) or is this very process (a restarted
 * container gets the same pid). Returns the release function (also run at process exit).
 */
export function acquireServerLock(dataDir: string): () => void {
  const dir = path.resolve(dataDir);
  const file = path.join(dir, SERVER_LOCK_FILE);
  const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      // 'wx': create only if absent, atomically, so two servers starting together cannot both win.
      writeFileSync(file, JSON.stringify(me) + '\n', { flag: 'wx', mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    const touched = fileMtime(file);
    const fresh = touched !== undefined && Date.now() - touched < LOCK_STALE_MS;
    const sameHost = holder?.host === me.host;
    const gone = sameHost && (holder.pid === me.pid || !isRunning(holder.pid));
    if (holder && fresh && !gone) {
      throw new BulwarkError(
        'conflict',
        sameHost
          ? `${dir} is in use by another Bulwark server (pid ${holder.pid}, since ${holder.startedAt}): stop it first, or give this one another --data directory`
          : `${dir} is in use by a Bulwark server on host ${holder.host} (pid ${holder.pid}, since ${holder.startedAt}); if it is gone, its lock ${file} goes stale ${LOCK_STALE_MS / 1000} s after it stopped`,
      );
    }
    // Stale, or unreadable (a writer died mid-write): remove it and try again once.
    if (attempt > 0)
      throw new BulwarkError(
        'conflict',
        `cannot take the server lock ${file}: another process keeps taking it`,
      );
    rmSync(file, { force: true });
  }
  const heartbeat = setInterval(() => {
    try {
      const now = new Date();
      utimesSync(file, now, now);
    } catch {
      // Removed by hand: the next server takes a new lock; nothing to keep up here.
    }
  }, LOCK_HEARTBEAT_MS).unref();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(heartbeat);
    process.removeListener('exit', release);
    if (readHolder(file)?.pid === me.pid) rmSync(file, { force: true });
  };
  process.on('exit', release);
  return release;
}

function fileMtime(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}
