import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A PostgreSQL server of the test's own, for tests that stop and start the database: the shared cluster
 * (BULWARK_TEST_DATABASE_URL) serves other suites at the same time and must never be restarted. initdb
 * refuses to run as root, so the server runs as the `postgres` OS user in a temporary directory it owns.
 */
export interface PrivatePostgres {
  url: string;
  port: number;
  /** `pg_ctl stop -m fast`: every session is terminated, then the server exits. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and removes its directory. */
  destroy(): Promise<void>;
}

function binDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : undefined;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Why a private server cannot run here, or undefined when it can. Under CI a missing one is an error. */
export function privatePostgresUnavailable(): string | undefined {
  const why = !binDir()
    ? 'PostgreSQL server binaries (initdb) are not installed'
    : !isRoot
      ? 'tests do not run as root (a private PostgreSQL runs as the postgres OS user)'
      : undefined;
  if (why && !binDir() && process.env.CI) throw new Error(`${why}: required in CI`);
  return why;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

const asPostgres = (bin: string, args: string[]) =>
  run('runuser', ['-u', 'postgres', '--', bin, ...args], { timeout: 120_000 });

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  if (!bin) throw new Error('PostgreSQL server binaries are not installed');
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-pg-'));
  const data = path.join(dir, 'data');
  const pwfile = path.join(dir, 'pw');
  const password = 'bulwark-test';
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  chownSync(dir, uidOf('postgres'), gidOf('postgres'));
  chownSync(pwfile, uidOf('postgres'), gidOf('postgres'));
  await asPostgres(path.join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=scram-sha-256',
    `--pwfile=${pwfile}`,
    '--no-sync',
  ]);
  const port = await freePort();
  const pgCtl = path.join(bin, 'pg_ctl');
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
  const start = () =>
    asPostgres(pgCtl, [
      '-D',
      data,
      '-l',
      path.join(dir, 'log'),
      '-o',
      options,
      '-w',
      '-t',
      '60',
      'start',
    ]).then(() => undefined);
  const stop = () =>
    asPostgres(pgCtl, ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']).then(() => undefined);
  await start();
  let running = true;
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    port,
    async stop() {
      await stop();
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async destroy() {
      if (running) await stop().catch(() => undefined);
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function idOf(flag: '-u' | '-g', user: string): number {
  return Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
}
const uidOf = (user: string) => idOf('-u', user);
const gidOf = (user: string) => idOf('-g', user);
