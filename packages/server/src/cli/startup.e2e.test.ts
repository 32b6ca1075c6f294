import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BULWARK_BIN } from '../test-support/server.ts';

/**
 * Issue 12, start-up and data safety, as a new user meets it: the real `bulwark` command in child
 * processes, against real data directories, real ports and a real second server.
 */
const exec = promisify(execFile);
const dirs: string[] = [];
const children: ChildProcess[] = [];
const env = { ...process.env, BULWARK_LOG_LEVEL: 'error', BULWARK_DEVICE_PORT: '0' };

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-startup-'));
  dirs.push(dir);
  return dir;
}

async function bulwark(args: string[]) {
  try {
    const { stdout, stderr } = await exec(process.execPath, [BULWARK_BIN, ...args], { env });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `bulwark serve` in the background; resolves once it is running, or with its exit if it stops first. */
function serve(args: string[]) {
  const child = spawn(
    process.execPath,
    [BULWARK_BIN, 'serve', '--bind', '127.0.0.1', '--https-port', '0', '--mqtt-port', '0', ...args],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  // A signal name when the process died of one (it should always exit by itself).
  const exited = new Promise<number | string | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal)),
  );
  return {
    child,
    exited,
    output: () => ({ stdout, stderr }),
    /** Running, or the exit code if it stopped before it got there. */
    started: Promise.race([
      (async () => {
        await expect.poll(() => stdout, { timeout: 60_000, interval: 100 }).toContain('is running');
        return 'running' as const;
      })(),
      exited,
    ]),
  };
}

/** A TCP port some other program holds for the whole test. */
async function busyPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const oneLine = (stderr: string) => stderr.trim().split('\n');

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
});

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('bulwark serve on ports already in use', () => {
  for (const listener of [
    { name: 'HTTPS', flag: '--https-port', pattern: /HTTPS \(API, EST\)/ },
    { name: 'MQTT', flag: '--mqtt-port', pattern: /MQTT over TLS/ },
  ]) {
    it(`exits non-zero with one line naming the busy ${listener.name} port`, async () => {
      const busy = await busyPort();
      try {
        const s = serve(['--data', tempDir(), listener.flag, String(busy.port)]);
        expect(await s.started).toBe(1);
        const { stdout, stderr } = s.output();
        expect(stdout).not.toContain('is running');
        const lines = oneLine(stderr);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(
          new RegExp(`^bulwark: cannot listen on port ${busy.port} on 127\\.0\\.0\\.1`),
        );
        expect(lines[0]).toMatch(listener.pattern);
        expect(lines[0]).toContain('already in use');
        expect(lines[0]).toContain(listener.flag);
      } finally {
        await busy.close();
      }
    });
  }
});

describe('one server per data directory', () => {
  it('refuses a second server with one line naming the first, and takes over the lock of a killed one', async () => {
    const dataDir = tempDir();
    const first = serve(['--data', dataDir]);
    expect(await first.started).toBe('running');
    const lock = JSON.parse(readFileSync(path.join(dataDir, 'server.lock'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(first.child.pid);

    const second = serve(['--data', dataDir]);
    expect(await second.started).toBe(1);
    const lines = oneLine(second.output().stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^bulwark: .*${dataDir} is in use by another Bulwark server \\(pid ${first.child.pid},`),
    );
    // The refused server changed nothing: the first still holds the lock and answers commands.
    expect(JSON.parse(readFileSync(path.join(dataDir, 'server.lock'), 'utf8'))).toEqual(lock);
    expect((await bulwark(['device', 'add', 'lock-1', '--data', dataDir])).code).toBe(0);

    // kill -9 leaves the lock behind; its pid is gone, so the next server takes it over.
    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(path.join(dataDir, 'server.lock'))).toBe(true);
    const third = serve(['--data', dataDir]);
    expect(await third.started).toBe('running');
    expect((JSON.parse(readFileSync(path.join(dataDir, 'server.lock'), 'utf8')) as { pid: number }).pid).toBe(
      third.child.pid,
    );
    // A clean stop releases it.
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(existsSync(path.join(dataDir, 'server.lock'))).toBe(false);
  });
});

describe('data directory safety', () => {
  /** A data directory as a user has it after `bulwark init`, with one device. */
  async function initialized(): Promise<string> {
    const dataDir = tempDir();
    const init = await bulwark(['init', '--data', dataDir]);
    expect(init.code).toBe(0);
    expect(init.stdout).toContain(`Created a Bulwark data directory in ${dataDir}`);
    expect((await bulwark(['device', 'add', 'safe-1', '--data', dataDir])).code).toBe(0);
    return dataDir;
  }

  it('without master.key, every command stops with one clear line and the store stays byte for byte the same', async () => {
    const dataDir = await initialized();
    const store = path.join(dataDir, 'bulwark.db');
    renameSync(path.join(dataDir, 'master.key'), path.join(dataDir, 'master.key.bak'));
    const before = sha256(store);
    for (const args of [
      ['device', 'list'],
      ['device', 'add', 'safe-2'],
      ['audit-log', 'verify'],
      ['pki', 'ca-chain'],
      ['init'],
      ['serve', '--bind', '127.0.0.1', '--https-port', '0', '--mqtt-port', '0'],
    ]) {
      const r = await bulwark([...args, '--data', dataDir]);
      expect(r.code, args.join(' ')).toBe(1);
      const lines = oneLine(r.stderr);
      expect(lines, args.join(' ')).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^bulwark: the master key is missing: .*bulwark\.db holds data sealed with it/,
      );
      expect(lines[0]).toContain('set BULWARK_MASTER_KEY');
      expect(lines[0]).toContain('none is generated');
    }
    expect(sha256(store)).toBe(before);
    expect(existsSync(path.join(dataDir, 'master.key'))).toBe(false); // never regenerated
    expect(existsSync(path.join(dataDir, 'bulwark.db-wal'))).toBe(false);

    // Put back, everything is as it was.
    renameSync(path.join(dataDir, 'master.key.bak'), path.join(dataDir, 'master.key'));
    const list = await bulwark(['device', 'list', '--data', dataDir]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/safe-1/);
  });

  it('refuses a master key that does not match the store, from the file or from BULWARK_MASTER_KEY', async () => {
    const dataDir = await initialized();
    const keyFile = path.join(dataDir, 'master.key');
    const original = readFileSync(keyFile, 'utf8');
    writeFileSync(keyFile, 'ab'.repeat(32) + '\n', { mode: 0o600 });
    const wrong = await bulwark(['device', 'list', '--data', dataDir]);
    expect(wrong.code).toBe(1);
    expect(oneLine(wrong.stderr)).toHaveLength(1);
    expect(wrong.stderr).toMatch(
      /^bulwark: the master key from .*master\.key does not match the store .*bulwark\.db \(its key check value differs\)/,
    );
    writeFileSync(keyFile, original, { mode: 0o600 });
    const { stderr } = await exec(process.execPath, [BULWARK_BIN, 'device', 'list', '--data', dataDir], {
      env: { ...env, BULWARK_MASTER_KEY: 'cd'.repeat(32) },
    }).catch((e: { stderr: string }) => e);
    expect(stderr).toMatch(/^bulwark: the master key from BULWARK_MASTER_KEY does not match the store/);
    expect((await bulwark(['device', 'list', '--data', dataDir])).stdout).toMatch(/safe-1/);
  });

  it('refuses a data directory whose store is gone but whose CA chain is still there, and creates nothing', async () => {
    const dataDir = await initialized();
    const moved = path.join(tempDir(), 'bulwark.db');
    renameSync(path.join(dataDir, 'bulwark.db'), moved);
    for (const f of ['bulwark.db-wal', 'bulwark.db-shm']) rmSync(path.join(dataDir, f), { force: true });
    for (const args of [['device', 'list'], ['init'], ['serve', '--https-port', '0', '--mqtt-port', '0']]) {
      const r = await bulwark([...args, '--data', dataDir]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toMatch(
        new RegExp(`^bulwark: ${dataDir} has no store \\(bulwark\\.db\\) but holds ca-chain\\.pem`),
      );
      expect(existsSync(path.join(dataDir, 'bulwark.db'))).toBe(false);
    }
  });

  it('a read-only command given a --data path without Bulwark data says so instead of creating a store', async () => {
    const missing = path.join(tempDir(), 'no', 'such', 'dir');
    // The common options work before the command too, as a user types them.
    const r = await bulwark(['--data', missing, 'device', 'list']);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toEqual([
      `bulwark: no Bulwark data in ${missing}: give the right --data directory (or BULWARK_DATA), or create one there with \`bulwark init\` or \`bulwark serve\``,
    ]);
    expect(existsSync(missing)).toBe(false);
    // An existing but empty directory (a typo that happens to exist) is left empty too.
    const empty = tempDir();
    expect((await bulwark(['device', 'add', 'x-1', '--data', empty])).code).toBe(1);
    expect(readdirSync(empty)).toEqual([]);
    // `init` creates it.
    expect((await bulwark(['init', '--data', missing])).code).toBe(0);
    expect(readdirSync(missing)).toEqual(
      expect.arrayContaining(['bulwark.db', 'ca-chain.pem', 'master.key']),
    );
    expect((await bulwark(['device', 'list', '--data', missing])).stdout.trim()).toBe('(none)');
  });
});
