import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SecurityEvent } from '../events/index.ts';
import { recordingEvents } from './recording-events.fixture.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { cycloneDx, releaseInput } from '../test-support/firmware.ts';
import { createFirmware, type Firmware } from './index.ts';

const settings = {
  maxArtifactSize: 64 * 1024,
  deviceTimeout: 3_600_000,
  maxAge: 365 * 86_400_000,
  rootExpiry: 365 * 86_400_000,
  targetsExpiry: 90 * 86_400_000,
  snapshotExpiry: 7 * 86_400_000,
  timestampExpiry: 86_400_000,
};

const image = (size: number) => {
  const bytes = randomBytes(size);
  return { bytes, size, sha256: createHash('sha256').update(bytes).digest('hex') };
};

/** A stream that sends `bytes` in small chunks, then fails as a dropped connection does. */
function dropping(bytes: Buffer, after: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= after) {
        this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
        return;
      }
      const chunk = bytes.subarray(sent, Math.min(after, sent + 1024));
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

describe.each(testDialects)('firmware releases (%s)', (dialect) => {
  let t: TestStore;
  let dir: string;
  let firmware: Firmware;
  let events: SecurityEvent[];

  const leftovers = () => ({
    artifacts: readdirSync(path.join(dir, 'artifacts')),
    tmp: readdirSync(path.join(dir, 'tmp')),
  });

  beforeEach(async () => {
    t = await createTestStore(dialect);
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-releases-'));
    events = [];
    firmware = createFirmware({
      db: t.store.db,
      box: createSecretBox(randomBytes(32)),
      events: recordingEvents(t.store.db, events),
      now: Date.now,
      dir,
      settings,
      devices: { list: () => Promise.resolve([]), inServiceIds: () => Promise.resolve([]) },
    });
  });
  afterEach(async () => t.cleanup());

  it('creates a release with its metadata and SBOM, uploads the artifact streamed and hash-checked', async () => {
    const img = image(10_000);
    const sbom = cycloneDx(['pkg:npm/lodash@4.17.11', 'pkg:generic/busybox@1.36.1']);
    const created = await firmware.releases.create(
      releaseInput(img, { releaseNotes: 'fixes CVE-2019-10744', sbom }),
      'user:alice',
    );
    expect(created).toMatchObject({
      name: 'pump-fw',
      version: '1.0.0',
      status: 'draft',
      targetPath: 'pump-fw/1.0.0/pump-fw-1.0.0.bin',
      hasSbom: true,
      sbomComponents: 2,
      securityVersion: 1,
    });
    const ready = await firmware.releases.upload(created.id, Readable.from([img.bytes]), 'user:alice');
    expect(ready.status).toBe('ready');
    expect(leftovers()).toEqual({ artifacts: [img.sha256], tmp: [] });
    expect(JSON.parse(await firmware.releases.sbom('pump-fw@1.0.0'))).toMatchObject({
      bomFormat: 'CycloneDX',
    });
    expect((await firmware.releases.components(created.id)).map((c) => c.purl)).toEqual([
      'pkg:npm/lodash@4.17.11',
      'pkg:generic/busybox@1.36.1',
    ]);
    expect(events.map((e) => e.type)).toEqual(['firmware.release_created', 'firmware.release_uploaded']);
    await expect(
      firmware.releases.upload(created.id, Readable.from([img.bytes]), 'user:alice'),
    ).rejects.toMatchObject({ code: 'conflict' });
  });

  it.each([
    ['../../etc/passwd', 'name'],
    ['pump/fw', 'name'],
    ['..', 'name'],
    ['.hidden', 'name'],
  ])('refuses the name %s (path traversal) and creates nothing', async (name) => {
    await expect(firmware.releases.create(releaseInput(image(10), { name }), 'test')).rejects.toMatchObject({
      code: 'validation_failed',
    });
    expect(await firmware.releases.list()).toEqual([]);
  });

  it('refuses traversal in version and file name, bad semver, bad hash and past end of support', async () => {
    const img = image(10);
    for (const bad of [
      { version: '1.0.0/../../x' },
      { version: 'v1.0.0' },
      { version: '1.0' },
      { filename: '../shadow' },
      { filename: 'a/b.bin' },
      { sha256: 'xyz' },
      { hardwareIds: [] },
      { hardwareIds: ['pump v2'] },
      { securityVersion: -1 },
      { endOfSupport: '2001-01-01' },
      { endOfSupport: 'soon' },
    ])
      await expect(firmware.releases.create(releaseInput(img, bad), 'test')).rejects.toMatchObject({
        code: 'validation_failed',
      });
    expect(await firmware.releases.list()).toEqual([]);
    expect(events).toEqual([]);
  });

  it('refuses a release larger than the limit before anything is stored', async () => {
    await expect(
      firmware.releases.create(
        releaseInput({ size: settings.maxArtifactSize + 1, sha256: '0'.repeat(64) }),
        'test',
      ),
    ).rejects.toMatchObject({ code: 'payload_too_large' });
    expect(await firmware.releases.list()).toEqual([]);
  });

  it('refuses an upload longer than declared, keeps nothing and leaves the draft as it was', async () => {
    const img = image(4000);
    const created = await firmware.releases.create(releaseInput({ ...img, size: 3000 }), 'test');
    await expect(
      firmware.releases.upload(created.id, Readable.from([img.bytes]), 'test'),
    ).rejects.toMatchObject({
      code: 'payload_too_large',
    });
    expect(leftovers()).toEqual({ artifacts: [], tmp: [] });
    expect((await firmware.releases.get(created.id)).status).toBe('draft');
    expect(events.at(-1)).toMatchObject({
      type: 'firmware.upload_refused',
      data: { code: 'payload_too_large' },
    });
  });

  it('refuses a truncated upload and a dropped connection, keeping nothing', async () => {
    const img = image(5000);
    const created = await firmware.releases.create(releaseInput(img), 'test');
    await expect(
      firmware.releases.upload(created.id, Readable.from([img.bytes.subarray(0, 4000)]), 'test'),
    ).rejects.toMatchObject({
      code: 'upload_incomplete',
      message: expect.stringMatching(/4000 of 5000/) as string,
    });
    await expect(
      firmware.releases.upload(created.id, dropping(img.bytes, 2048), 'test'),
    ).rejects.toMatchObject({
      code: 'upload_incomplete',
    });
    expect(leftovers()).toEqual({ artifacts: [], tmp: [] });
    // The same draft still accepts the right bytes.
    expect((await firmware.releases.upload(created.id, Readable.from([img.bytes]), 'test')).status).toBe(
      'ready',
    );
  });

  it('refuses bytes whose SHA-256 differs from the declared one, keeping nothing', async () => {
    const img = image(2000);
    const created = await firmware.releases.create(releaseInput(img), 'test');
    const other = Buffer.from(img.bytes);
    other[0] = (other[0] ?? 0) ^ 1;
    await expect(firmware.releases.upload(created.id, Readable.from([other]), 'test')).rejects.toMatchObject({
      code: 'hash_mismatch',
    });
    expect(leftovers()).toEqual({ artifacts: [], tmp: [] });
  });

  it.each([
    ['not JSON', '{"bomFormat": '],
    ['SPDX instead of CycloneDX', { spdxVersion: 'SPDX-2.3', bomFormat: 'SPDX' }],
    ['an unknown spec version', { bomFormat: 'CycloneDX', specVersion: '0.9' }],
    [
      'a component without a name',
      { bomFormat: 'CycloneDX', specVersion: '1.5', components: [{ type: 'library' }] },
    ],
    [
      'an invalid package URL',
      {
        bomFormat: 'CycloneDX',
        specVersion: '1.5',
        components: [{ type: 'library', name: 'x', purl: 'npm/x@1' }],
      },
    ],
    ['an array', [1, 2]],
  ])('refuses a malformed SBOM (%s) and creates nothing', async (_what, sbom) => {
    await expect(firmware.releases.create(releaseInput(image(10), { sbom }), 'test')).rejects.toMatchObject({
      code: 'sbom_invalid',
    });
    expect(await firmware.releases.list()).toEqual([]);
  });

  it('retires a release and discards a draft; a name@version is unique', async () => {
    const img = image(100);
    const created = await firmware.releases.create(releaseInput(img), 'test');
    await expect(firmware.releases.create(releaseInput(img), 'test')).rejects.toMatchObject({
      code: 'conflict',
    });
    await expect(firmware.releases.retire(created.id, 'test')).rejects.toMatchObject({ code: 'conflict' });
    await firmware.releases.upload(created.id, Readable.from([img.bytes]), 'test');
    const retired = await firmware.releases.retire('pump-fw@1.0.0', 'test', 'bricks pumps');
    expect(retired.status).toBe('retired');
    expect(await firmware.releases.artifact(retired.targetPath, img.sha256)).toBeUndefined();
    const draft = await firmware.releases.create(releaseInput(img, { version: '1.0.1' }), 'test');
    await firmware.releases.discard(draft.id, 'test');
    expect((await firmware.releases.list()).map((r) => r.version)).toEqual(['1.0.0']);
  });
});
