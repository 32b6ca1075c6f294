import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createArtifactStore } from './artifact-store.ts';

const hangingUpload = path.join(import.meta.dirname, 'fixtures', 'upload-and-hang.ts');
const children: ChildProcess[] = [];

/** Another process (a server node) with an upload in progress under `dir`, once its `.part` has bytes. */
async function uploaderProcess(dir: string): Promise<{ child: ChildProcess; part: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', hangingUpload, dir], { stdio: 'ignore' });
  children.push(child);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const tmp = path.join(dir, 'tmp');
    const part = existsSync(tmp) ? readdirSync(tmp).find((n) => n.endsWith('.part')) : undefined;
    if (part && statSync(path.join(dir, 'tmp', part)).size > 0) return { child, part };
    if (child.exitCode !== null) throw new Error(`the uploader exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('the uploader did not start its upload');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

afterEach(async () => {
  await Promise.all(children.splice(0).map(kill));
});

const tmpOf = (dir: string) => readdirSync(path.join(dir, 'tmp')).sort();
const image = (size: number) => {
  const bytes = randomBytes(size);
  return { bytes, size, sha256: createHash('sha256').update(bytes).digest('hex') };
};
const tenMinutesAgo = () => new Date(Date.now() - 10 * 60_000);

describe('artifact store: temporary files of uploads', () => {
  it('removes the partial upload of a crashed process at the next start, however recent, and the retry succeeds', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-artifacts-'));
    const { child, part } = await uploaderProcess(dir);
    const instance = part.split('.')[0];
    expect(tmpOf(dir)).toEqual([part, `${instance}.lease`].sort());
    await kill(child); // SIGKILL: no finally block runs, as in a crash or an OOM kill

    // The file is seconds old: an age rule (the old "older than an hour") would keep it.
    const restarted = createArtifactStore(dir);
    expect(await restarted.cleanTemporary()).toEqual({
      removed: [part, `${instance}.lease`].sort(),
      kept: [],
    });
    expect(tmpOf(dir)).toEqual([]);

    const img = image(64 * 1024);
    await restarted.put(Readable.from([img.bytes]), img);
    expect(readFileSync(path.join(dir, 'artifacts', img.sha256)).equals(img.bytes)).toBe(true);
    expect(tmpOf(dir)).toEqual([]);
  });

  it('keeps the upload of a live process sharing the directory, and removes it once that process is gone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-artifacts-'));
    const { child, part } = await uploaderProcess(dir);
    const other = createArtifactStore(dir);
    // Even with its lease's heartbeat long stale: on the same host the pid and its start time decide.
    const lease = `${part.split('.')[0]}.lease`;
    utimesSync(path.join(dir, 'tmp', lease), tenMinutesAgo(), tenMinutesAgo());
    expect(await other.cleanTemporary()).toEqual({ removed: [], kept: [part] });
    expect(tmpOf(dir)).toContain(part);
    await kill(child);
    expect((await other.cleanTemporary()).removed).toEqual([part, lease].sort());
  });

  it('judges a lease by pid and start time on this host (a reused pid is not the owner)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-artifacts-'));
    const store = createArtifactStore(dir);
    // A lease that names a running pid (ours) with another start time: the pid was reused.
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const reused = 'ab'.repeat(12);
    writeFileSync(
      path.join(dir, 'tmp', `${reused}.lease`),
      JSON.stringify({
        instance: reused,
        hostname: 'here',
        bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
        pidNamespace: readlinkSync('/proc/self/ns/pid'),
        pid: process.pid,
        startTicks: String(Number(startTicks) - 1),
      }),
    );
    writeFileSync(path.join(dir, 'tmp', `${reused}.${'01'.repeat(8)}.part`), 'partial');
    expect((await store.cleanTemporary()).removed).toEqual([
      `${reused}.${'01'.repeat(8)}.part`,
      `${reused}.lease`,
    ]);
  });

  it('trusts a node on another host while its lease heartbeat is fresh, and removes orphans without a lease', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-artifacts-'));
    const store = createArtifactStore(dir);
    const remote = 'cd'.repeat(12);
    const remotePart = `${remote}.${'02'.repeat(8)}.part`;
    writeFileSync(
      path.join(dir, 'tmp', `${remote}.lease`),
      JSON.stringify({
        instance: remote,
        hostname: 'node-b',
        bootId: '00000000-0000-4000-8000-000000000000',
        pidNamespace: 'pid:[4026531836]',
        pid: 1234,
        startTicks: '5678',
      }),
    );
    writeFileSync(path.join(dir, 'tmp', remotePart), 'partial');
    const orphan = `${'ef'.repeat(12)}.${'03'.repeat(8)}.part`; // its lease is gone: its owner ended or died
    writeFileSync(path.join(dir, 'tmp', orphan), 'partial');
    const legacyFresh = `${'12'.repeat(12)}.part`;
    const legacyOld = `${'34'.repeat(12)}.part`;
    writeFileSync(path.join(dir, 'tmp', legacyFresh), 'partial');
    writeFileSync(path.join(dir, 'tmp', legacyOld), 'partial');
    utimesSync(
      path.join(dir, 'tmp', legacyOld),
      new Date(Date.now() - 2 * 3_600_000),
      new Date(Date.now() - 2 * 3_600_000),
    );
    writeFileSync(path.join(dir, 'tmp', 'notes.txt'), 'not ours to judge');

    expect(await store.cleanTemporary()).toEqual({
      removed: [legacyOld, orphan].sort(),
      kept: [legacyFresh, remotePart].sort(),
    });
    // The remote node stops renewing its lease (it crashed and has not come back).
    utimesSync(path.join(dir, 'tmp', `${remote}.lease`), tenMinutesAgo(), tenMinutesAgo());
    expect((await store.cleanTemporary()).removed).toEqual([remotePart, `${remote}.lease`]);
    expect(tmpOf(dir)).toEqual([legacyFresh, 'notes.txt'].sort());
  });
});
