import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createAbInstaller,
  createFirmwareUpdater,
  type FirmwareUpdater,
  type Installer,
} from '@bulwark/device';
import type { FirmwareStatus } from '@bulwark/protocol';
import { createSecretBox, loadMasterKey } from '../secrets/index.ts';
import { initTuf, shipRelease, type OfflineKeys } from '../test-support/firmware.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { generateTufKey, privateKeyFromPem, signDocument } from './index.ts';

const TIMESTAMP_EXPIRY_MS = 4000;

/**
 * Each attack TUF defends against, tried against the real server with the device SDK's updater: each is
 * refused with its reason, and the device keeps running the image it had.
 */
describe('firmware update attacks', () => {
  let s: TestServer;
  let keys: OfflineKeys;
  let installer: Installer;
  let updater: FirmwareUpdater;
  let reports: FirmwareStatus[];
  let installedTarget: string;
  let dir: string;

  const timestampRows = () =>
    s.platform.store.db
      .selectFrom('tuf_metadata')
      .selectAll()
      .where('role', '=', 'timestamp')
      .orderBy('version', 'desc')
      .execute();

  /** Runs an update that must be refused with `reason`, leaving the running image as it was. */
  async function refused(target: string, reason: string) {
    const before = await installer.current();
    const slots = readFileSync(path.join(dir, 'slots', 'slots.json'), 'utf8');
    reports = [];
    const result = await updater.update({ type: 'install', target, rolloutId: 'r-1', attempt: 1 });
    expect(result).toMatchObject({ ok: false, reason });
    expect(reports.at(-1)).toMatchObject({ step: 'failed', reason, rolloutId: 'r-1', attempt: 1 });
    expect(reports.map((r) => r.step)).not.toContain('installing');
    expect(await installer.current()).toEqual(before);
    expect(readFileSync(path.join(dir, 'slots', 'slots.json'), 'utf8')).toBe(slots);
    return result;
  }

  beforeAll(async () => {
    s = await startTestServer({
      'firmware.timestampExpiry': TIMESTAMP_EXPIRY_MS,
      'firmware.rolloutInterval': '1h',
    });
    keys = await initTuf(s.platform);
    const device = await enrollInProcess(s, 'victim-1');
    dir = mkdtempSync(path.join(tmpdir(), 'bulwark-attack-'));
    installer = createAbInstaller({
      dir: path.join(dir, 'slots'),
      factory: { version: '1.0.0', securityVersion: 1 },
    });
    updater = createFirmwareUpdater({
      dir,
      serverUrl: s.httpsUrl,
      tls: { ca: readFileSync(s.caFile, 'utf8'), key: device.key, cert: device.cert },
      hardwareId: 'pump-v2',
      installer,
      report: (status) => {
        reports.push(status);
      },
    });
    // The device runs 1.1.0 (security version 2), installed and verified through TUF.
    const { release } = await shipRelease(s.platform, keys, { version: '1.1.0', securityVersion: 2 });
    reports = [];
    expect(await updater.update({ type: 'install', target: release.targetPath })).toMatchObject({ ok: true });
    installedTarget = release.targetPath;
  });
  afterAll(async () => s?.stop());
  beforeEach(async () => {
    await s.platform.firmware.tuf.refresh(); // fresh timestamp for every case but the freeze attack
    expect((await installer.current()).target).toBe(installedTarget);
  });

  it('refuses a modified artifact (arbitrary software)', async () => {
    const { release, image } = await shipRelease(s.platform, keys, { version: '1.2.0', securityVersion: 2 });
    const stored = path.join(s.dataDir, 'firmware', 'artifacts', image.sha256);
    const tampered = Buffer.from(image.bytes);
    tampered[100] = (tampered[100] ?? 0) ^ 0xff; // same length, one byte changed
    writeFileSync(stored, tampered);
    const result = await refused(release.targetPath, 'artifact_modified');
    expect(result.ok || result.detail).toMatch(/hash/i);
    writeFileSync(stored, image.bytes);
  });

  it('refuses a target that is not in the signed targets metadata', async () => {
    const { release } = await shipRelease(s.platform, undefined, { version: '1.3.0', securityVersion: 3 });
    expect(await s.platform.firmware.isSigned(release.targetPath, release.sha256)).toBe(false);
    await refused(release.targetPath, 'target_not_signed');
    await refused('pump-fw/6.6.6/pump-fw-6.6.6.bin', 'target_not_signed');
  });

  it('refuses an image with a lower security version (anti-rollback)', async () => {
    const { release } = await shipRelease(s.platform, keys, { version: '1.4.0', securityVersion: 1 });
    const result = await refused(release.targetPath, 'security_version_lower');
    expect(result.ok || result.detail).toMatch(/security version 1, lower than the installed 2/);
  });

  it('refuses an image built for other hardware', async () => {
    const { release } = await shipRelease(s.platform, keys, {
      version: '1.5.0',
      securityVersion: 2,
      hardwareIds: ['valve-v1'],
    });
    await refused(release.targetPath, 'hardware_mismatch');
  });

  it('refuses rolled-back metadata (an older timestamp served after a newer one was seen)', async () => {
    const { release } = await shipRelease(s.platform, keys, {
      version: '1.6.0',
      securityVersion: 2,
      hardwareIds: ['x'],
    });
    await refused(release.targetPath, 'hardware_mismatch'); // the device now trusts the newest timestamp
    const [newest] = await timestampRows();
    await s.platform.store.db
      .deleteFrom('tuf_metadata')
      .where('role', '=', 'timestamp')
      .where('version', '=', newest!.version)
      .execute();
    const result = await refused(release.targetPath, 'metadata_rollback');
    expect(result.ok || result.detail).toMatch(/less than current version/);
    await s.platform.store.db.insertInto('tuf_metadata').values(newest!).execute();
  });

  it('refuses metadata signed by a key the root does not name', async () => {
    const [newest] = await timestampRows();
    const forged = JSON.parse(newest!.body) as { signed: { version: number; expires: string } };
    forged.signed.version += 1;
    const attacker = privateKeyFromPem(generateTufKey().privatePem);
    const body = signDocument({ signed: forged.signed, signatures: [] }, [attacker]);
    await s.platform.store.db
      .insertInto('tuf_metadata')
      .values({ ...newest!, version: forged.signed.version, body })
      .execute();
    const result = await refused(installedTarget.replace('1.1.0', '1.2.0'), 'metadata_signature_invalid');
    expect(result.ok || result.detail).toMatch(/signed by 0\/1/);
    await s.platform.store.db
      .deleteFrom('tuf_metadata')
      .where('role', '=', 'timestamp')
      .where('version', '=', forged.signed.version)
      .execute();
  });

  it('refuses metadata signed by a revoked (rotated-out) key', async () => {
    const box = createSecretBox(loadMasterKey(s.dataDir, undefined));
    const old = await s.platform.store.db
      .selectFrom('tuf_keys')
      .selectAll()
      .where('role', '=', 'timestamp')
      .where('status', '=', 'active')
      .executeTakeFirstOrThrow();
    const oldKey = privateKeyFromPem(box.open(old.sealed_key, `tuf/${old.keyid}`).toString('utf8'));
    const rotation = await s.platform.firmware.tuf.prepareRootChange({ role: 'timestamp' }, 'test');
    await s.platform.firmware.tuf.publish(signDocument(rotation, [keys.root]), 'test');
    expect(
      (
        await s.platform.store.db
          .selectFrom('tuf_keys')
          .select('status')
          .where('keyid', '=', old.keyid)
          .executeTakeFirst()
      )?.status,
    ).toBe('retired');
    // Someone holding the old timestamp key signs a newer timestamp.
    const [newest] = await timestampRows();
    const forged = JSON.parse(newest!.body) as { signed: { version: number } };
    forged.signed.version += 1;
    await s.platform.store.db
      .insertInto('tuf_metadata')
      .values({
        ...newest!,
        version: forged.signed.version,
        body: signDocument({ signed: forged.signed, signatures: [] }, [oldKey]),
      })
      .execute();
    await refused(installedTarget.replace('1.1.0', '1.2.0'), 'metadata_signature_invalid');
    await s.platform.store.db
      .deleteFrom('tuf_metadata')
      .where('role', '=', 'timestamp')
      .where('version', '=', forged.signed.version)
      .execute();
  });

  it('rolls back to the previous slot when the new image fails its boot check', async () => {
    const failing = createAbInstaller({
      dir: path.join(dir, 'slots'),
      factory: { version: '1.0.0', securityVersion: 1 },
      bootCheck: () => Promise.resolve('self-test failed: watchdog not fed'),
    });
    const device = await enrollInProcess(s, 'victim-2');
    const broken = createFirmwareUpdater({
      dir,
      serverUrl: s.httpsUrl,
      tls: { ca: readFileSync(s.caFile, 'utf8'), key: device.key, cert: device.cert },
      hardwareId: 'pump-v2',
      installer: failing,
      report: (status) => {
        reports.push(status);
      },
    });
    const { release } = await shipRelease(s.platform, keys, { version: '1.7.0', securityVersion: 2 });
    const before = await failing.current();
    reports = [];
    const result = await broken.update({ type: 'install', target: release.targetPath });
    expect(result).toMatchObject({ ok: false, reason: 'boot_check_failed' });
    expect(reports.map((r) => r.step)).toEqual([
      'available',
      'downloading',
      'verifying',
      'installing',
      'rebooting',
      'failed',
    ]);
    expect(await failing.current()).toEqual(before);
  });

  it('refuses expired metadata (freeze attack: the repository stops refreshing)', async () => {
    const { release } = await shipRelease(s.platform, keys, { version: '1.8.0', securityVersion: 2 });
    // No refresh from now on: the timestamp expires.
    await new Promise((r) => setTimeout(r, TIMESTAMP_EXPIRY_MS + 500));
    const result = await refused(release.targetPath, 'metadata_expired');
    expect(result.ok || result.detail).toMatch(/expired/);
    // Once the server refreshes, the same update goes through.
    await s.platform.firmware.tuf.refresh();
    expect(await updater.update({ type: 'install', target: release.targetPath })).toMatchObject({ ok: true });
    expect(await installer.current()).toMatchObject({ version: '1.8.0' });
    installedTarget = release.targetPath;
  });
});
