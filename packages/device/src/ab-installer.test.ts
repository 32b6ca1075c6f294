import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAbInstaller, type FirmwareImage } from './ab-installer.ts';
import { classifyTufError } from './firmware-updater.ts';

function image(
  dir: string,
  version: string,
  securityVersion: number,
): { file: string; image: FirmwareImage } {
  const bytes = randomBytes(2048);
  const file = join(dir, `${version}.bin`);
  writeFileSync(file, bytes);
  return {
    file,
    image: {
      target: `fw/${version}/fw.bin`,
      version,
      securityVersion,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      length: bytes.length,
    },
  };
}

describe('A/B installer', () => {
  it('writes the inactive slot, switches only after the boot check, and raises the security floor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-ab-'));
    const installer = createAbInstaller({
      dir: join(dir, 'slots'),
      factory: { version: '1.0.0', securityVersion: 1 },
    });
    expect(await installer.current()).toEqual({
      target: null,
      version: '1.0.0',
      securityVersion: 1,
      securityFloor: 1,
    });
    const v2 = image(dir, '2.0.0', 4);
    await installer.install(v2.file, v2.image);
    expect((await installer.current()).version).toBe('1.0.0'); // written, not active yet
    expect(readFileSync(join(dir, 'slots', 'slot-b.img')).equals(readFileSync(v2.file))).toBe(true);
    expect(await installer.activate()).toEqual({ ok: true });
    expect(await installer.current()).toMatchObject({
      version: '2.0.0',
      securityVersion: 4,
      securityFloor: 4,
    });
    const v3 = image(dir, '3.0.0', 4);
    await installer.install(v3.file, v3.image);
    expect(await installer.activate()).toEqual({ ok: true });
    expect(await installer.current()).toMatchObject({ version: '3.0.0', target: 'fw/3.0.0/fw.bin' });
  });

  it('rolls back when the boot check fails, and after a restart during the trial boot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-ab-'));
    let healthy = false;
    const installer = createAbInstaller({
      dir: join(dir, 'slots'),
      bootCheck: () => Promise.resolve(healthy ? undefined : 'no network after boot'),
    });
    const v2 = image(dir, '2.0.0', 2);
    await installer.install(v2.file, v2.image);
    const result = await installer.activate();
    expect(result).toMatchObject({ ok: false });
    expect(result.ok || result.detail).toMatch(/no network after boot; slot a is active again/);
    expect((await installer.current()).target).toBeNull();

    // Power lost while booting the new slot on trial: the next start comes back on the old slot.
    const state = JSON.parse(readFileSync(join(dir, 'slots', 'slots.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(join(dir, 'slots', 'slots.json'), JSON.stringify({ ...state, trial: 'b' }));
    const restarted = createAbInstaller({ dir: join(dir, 'slots') });
    expect((await restarted.current()).target).toBeNull();
    healthy = true;
    expect(await installer.activate()).toEqual({ ok: true });
    expect((await installer.current()).version).toBe('2.0.0');
  });

  it('refuses an image that does not read back as written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bulwark-ab-'));
    const installer = createAbInstaller({ dir: join(dir, 'slots') });
    const v2 = image(dir, '2.0.0', 2);
    await expect(installer.install(v2.file, { ...v2.image, sha256: '0'.repeat(64) })).rejects.toThrow(
      /does not verify after writing/,
    );
    expect(await installer.activate()).toMatchObject({ ok: false });
  });
});

describe('TUF error reasons', () => {
  class BadVersionError extends Error {}
  class ExpiredMetadataError extends Error {}
  class UnsignedMetadataError extends Error {}
  class LengthOrHashMismatchError extends Error {}
  it('names each attack', () => {
    expect(
      classifyTufError(
        new BadVersionError('New timestamp version 3 is less than current version 4'),
        'metadata',
      ),
    ).toBe('metadata_rollback');
    expect(classifyTufError(new ExpiredMetadataError('Final timestamp.json is expired'), 'metadata')).toBe(
      'metadata_expired',
    );
    expect(classifyTufError(new UnsignedMetadataError('timestamp was signed by 0/1 keys'), 'metadata')).toBe(
      'metadata_signature_invalid',
    );
    expect(classifyTufError(new LengthOrHashMismatchError('Expected hash a but got b'), 'target')).toBe(
      'artifact_modified',
    );
    expect(
      classifyTufError(
        new Error('Unable to load snapshot metadata error Error: Expected hash x but got y'),
        'metadata',
      ),
    ).toBe('metadata_invalid');
    expect(classifyTufError(Object.assign(new Error('connect ECONNREFUSED'), {}), 'metadata')).toBe(
      'download_failed',
    );
  });
});
