import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './atomic-write.ts';
import { openIdentityStore, type DeviceIdentity } from './identity-store.ts';
import { createTestCa, type TestCa } from './test-support/index.ts';

let ca: TestCa;
let root: string;
let dir: string;

beforeAll(async () => {
  ca = await createTestCa();
  root = await mkdtemp(join(tmpdir(), 'bulwark-store-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));
beforeEach(async () => {
  dir = join(await mkdtemp(join(root, 't-')), 'identity');
});

async function identity(deviceId = 'pump-17'): Promise<DeviceIdentity> {
  const { keyPem, certPem } = await ca.issueKeyAndCert({ subject: `CN=${deviceId}` });
  return { deviceId, serverUrl: 'https://bulwark.example:8443', keyPem, certPem, caPem: ca.certPem };
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe('identity store', () => {
  it('creates a private directory, a 0600 key and the public files', async () => {
    await openIdentityStore(dir).save(await identity());
    expect(await modeOf(dir)).toBe(0o700);
    expect(await modeOf(join(dir, 'key.pem'))).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['ca.pem', 'cert.pem', 'identity.json', 'key.pem']);
  });

  it('loads what it saved, and identity.json holds only the metadata', async () => {
    const saved = { ...(await identity()), mqttUrl: 'mqtts://localhost:18883' };
    const store = openIdentityStore(dir);
    expect(await store.exists()).toBe(false);
    await store.save(saved);
    expect(await store.exists()).toBe(true);
    expect(await store.load()).toEqual(saved);
    expect(JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8'))).toEqual({
      deviceId: 'pump-17',
      serverUrl: 'https://bulwark.example:8443',
      mqttUrl: 'mqtts://localhost:18883',
    });
  });

  it('says how to fix a missing identity', async () => {
    await expect(openIdentityStore(dir).load()).rejects.toMatchObject({
      code: 'not_found',
      message: expect.stringContaining('bulwark-agent enroll') as unknown,
    });
  });

  it('refuses a private key other users can read', async () => {
    const store = openIdentityStore(dir);
    await store.save(await identity());
    await chmod(join(dir, 'key.pem'), 0o644);
    await expect(store.load()).rejects.toThrow(/accessible by other users.*chmod 600/);
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const first = await identity();
    const other = await identity();
    await expect(openIdentityStore(dir).save({ ...first, keyPem: other.keyPem })).rejects.toThrow(
      /does not match/,
    );
  });

  it('replaces key and certificate together on renewal, atomically (new inode, no temp files)', async () => {
    const store = openIdentityStore(dir);
    await store.save(await identity());
    const before = await stat(join(dir, 'key.pem'));
    const renewed = await identity();
    await store.replaceCredentials({ keyPem: renewed.keyPem, certPem: renewed.certPem });
    const after = await stat(join(dir, 'key.pem'));
    expect(after.ino).not.toBe(before.ino); // renamed into place, never rewritten in place
    expect(after.mode & 0o777).toBe(0o600);
    expect(await store.load()).toMatchObject({ keyPem: renewed.keyPem, certPem: renewed.certPem });
    expect((await readdir(dir)).sort()).toEqual(['ca.pem', 'cert.pem', 'identity.json', 'key.pem']);
  });

  describe('after a power cut during renewal', () => {
    let store: ReturnType<typeof openIdentityStore>;
    let old: DeviceIdentity;
    let renewed: DeviceIdentity;
    beforeEach(async () => {
      store = openIdentityStore(dir);
      old = await identity();
      renewed = await identity();
      await store.save(old);
    });

    it('keeps the old pair when only the new key had been staged', async () => {
      await writeFile(join(dir, 'key.pem.next'), renewed.keyPem, { mode: 0o600 });
      await writeFile(join(dir, '.cert.pem.next.0123456789ab.tmp'), 'half a cert');
      expect(await store.load()).toMatchObject({ keyPem: old.keyPem, certPem: old.certPem });
      expect((await readdir(dir)).sort()).toEqual(['ca.pem', 'cert.pem', 'identity.json', 'key.pem']);
    });

    it('rolls forward when the new pair was staged completely', async () => {
      await writeFile(join(dir, 'key.pem.next'), renewed.keyPem, { mode: 0o600 });
      await writeFile(join(dir, 'cert.pem.next'), renewed.certPem);
      expect(await store.load()).toMatchObject({ keyPem: renewed.keyPem, certPem: renewed.certPem });
    });

    it('rolls forward when the key had already been moved into place', async () => {
      await writeFile(join(dir, 'key.pem'), renewed.keyPem, { mode: 0o600 });
      await writeFile(join(dir, 'cert.pem.next'), renewed.certPem);
      expect(await store.load()).toMatchObject({ keyPem: renewed.keyPem, certPem: renewed.certPem });
    });

    it('never rolls a stale renewal over a new enrollment', async () => {
      await writeFile(join(dir, 'key.pem.next'), renewed.keyPem, { mode: 0o600 });
      await writeFile(join(dir, 'cert.pem.next'), renewed.certPem);
      const fresh = await identity('pump-18');
      await store.save(fresh);
      expect(await store.load()).toMatchObject({ deviceId: 'pump-18', keyPem: fresh.keyPem });
    });
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file with the requested mode', async () => {
    const path = join(root, 'secret.pem');
    await writeFile(path, 'old', { mode: 0o644 });
    await writeFileAtomic(path, 'new', 0o600);
    expect(await readFile(path, 'utf8')).toBe('new');
    expect(await modeOf(path)).toBe(0o600);
  });

  it('leaves the target untouched and no temp file behind when the write cannot complete', async () => {
    const parent = await mkdtemp(join(root, 'atomic-'));
    // rename(2) cannot replace a non-empty directory, so the write fails at the last step.
    await mkdir(join(parent, 'busy'));
    await writeFile(join(parent, 'busy', 'inside'), 'kept');
    await expect(writeFileAtomic(join(parent, 'busy'), 'new', 0o600)).rejects.toThrow();
    expect(await readdir(parent)).toEqual(['busy']);
    expect(await readFile(join(parent, 'busy', 'inside'), 'utf8')).toBe('kept');
  });
});
