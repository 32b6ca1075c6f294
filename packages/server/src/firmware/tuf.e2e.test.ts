import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAbInstaller, createFirmwareUpdater, MtlsFetcher } from '@bulwark/device';
import { tufPaths } from '@bulwark/protocol';
import { httpsRequest } from '../test-support/clients.ts';
import { initTuf, publishTargets, shipRelease, type OfflineKeys } from '../test-support/firmware.ts';
import { enrollInProcess, startTestServer, type TestServer } from '../test-support/server.ts';
import { generateTufKey, privateKeyFromPem, signDocument } from './index.ts';

/** The TUF repository served over HTTPS to enrolled devices, checked with tuf-js itself. */
describe('TUF repository', () => {
  let s: TestServer;
  let ca: string;
  let keys: OfflineKeys;
  let device: { id: string; key: string; cert: string };
  let rootKey: ReturnType<typeof privateKeyFromPem>;

  beforeAll(async () => {
    s = await startTestServer();
    ca = readFileSync(s.caFile, 'utf8');
    keys = await initTuf(s.platform);
    device = await enrollInProcess(s, 'tuf-dev-1');
  });
  afterAll(async () => s?.stop());

  const freshClientDir = (root: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-tuf-client-'));
    mkdirSync(path.join(dir, 'metadata'));
    mkdirSync(path.join(dir, 'targets'));
    writeFileSync(path.join(dir, 'metadata', 'root.json'), root);
    return dir;
  };

  it('serves metadata only to enrolled devices (client certificate)', async () => {
    // The main listener asks for no client certificate: it points devices at the device listener.
    const main = await httpsRequest(`${s.httpsUrl}${tufPaths.metadata}timestamp.json`, { ca });
    expect(main.status).toBe(308);
    expect(main.headers.location).toBe(`${s.deviceUrl}${tufPaths.metadata}timestamp.json`);
    const anonymous = await httpsRequest(`${s.deviceUrl}${tufPaths.metadata}timestamp.json`, { ca });
    expect(anonymous.status).toBe(401);
    expect(JSON.parse(anonymous.body)).toMatchObject({ code: 'unauthenticated' });
    const ok = await httpsRequest(`${s.deviceUrl}${tufPaths.metadata}timestamp.json`, {
      ca,
      key: device.key,
      cert: device.cert,
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ signed: { _type: 'timestamp' } });
  });

  it('verifies with a tuf-js Updater used directly, and the target downloads with its hash checked', async () => {
    const { release, image } = await shipRelease(s.platform, keys, { version: '1.1.0' });
    const root = (await s.platform.firmware.tuf.file('1.root.json')) ?? '';
    const dir = freshClientDir(root);
    const updater = new Updater({
      metadataDir: path.join(dir, 'metadata'),
      metadataBaseUrl: `${s.httpsUrl}${tufPaths.metadata}`,
      targetDir: path.join(dir, 'targets'),
      targetBaseUrl: `${s.httpsUrl}${tufPaths.targets}`,
      fetcher: new MtlsFetcher({ ca, key: device.key, cert: device.cert }),
    });
    await updater.refresh();
    const info = await updater.getTargetInfo(release.targetPath);
    expect(info?.hashes.sha256).toBe(image.sha256);
    expect(info?.custom).toMatchObject({ version: '1.1.0', securityVersion: 1, hardwareIds: ['pump-v2'] });
    const file = await updater.downloadTarget(info!, path.join(dir, 'targets', 'image.bin'));
    expect(readFileSync(file).equals(image.bytes)).toBe(true);
    // Canonical JSON on the wire: keys sorted, no whitespace.
    const timestamp = (await s.platform.firmware.tuf.file('timestamp.json')) ?? '';
    expect(timestamp).not.toMatch(/\s/);
  });

  it('refuses targets metadata without a threshold of targets signatures, and unknown targets', async () => {
    const unsigned = await s.platform.firmware.tuf.prepareTargets('test');
    const stranger = privateKeyFromPem(generateTufKey().privatePem);
    await expect(
      s.platform.firmware.tuf.publish(signDocument(unsigned, [stranger]), 'test'),
    ).rejects.toMatchObject({ code: 'signature_invalid' });
    const tampered = JSON.parse(unsigned) as { signed: { targets: Record<string, unknown> } };
    tampered.signed.targets['evil/1.0.0/evil.bin'] = { length: 1, hashes: { sha256: '0'.repeat(64) } };
    await expect(
      s.platform.firmware.tuf.publish(signDocument(tampered, [keys.targets]), 'test'),
    ).rejects.toMatchObject({ code: 'validation_failed' });
    const refusals = (await s.platform.audit.readAfter(0, 10_000)).filter(
      (e) => e.type === 'firmware.tuf_metadata_refused',
    );
    expect(refusals.length).toBeGreaterThanOrEqual(2);
  });

  it('updates a device end to end through the SDK updater with the A/B installer', async () => {
    const { release } = await shipRelease(s.platform, keys, { version: '1.2.0', securityVersion: 2 });
    await publishTargets(s.platform, keys);
    const dir = mkdtempSync(path.join(tmpdir(), 'bulwark-updater-'));
    const installer = createAbInstaller({
      dir: path.join(dir, 'slots'),
      factory: { version: '1.0.0', securityVersion: 1 },
    });
    const steps: string[] = [];
    const updater = createFirmwareUpdater({
      dir,
      serverUrl: s.httpsUrl,
      tls: { ca, key: device.key, cert: device.cert },
      hardwareId: 'pump-v2',
      installer,
      report: (st) => {
        steps.push(st.step);
      },
    });
    const result = await updater.update({ type: 'install', target: release.targetPath });
    expect(result).toMatchObject({ ok: true });
    expect(steps).toEqual(['available', 'downloading', 'verifying', 'installing', 'rebooting', 'succeeded']);
    expect(await installer.current()).toMatchObject({
      version: '1.2.0',
      securityVersion: 2,
      target: release.targetPath,
    });
  });
  it('rotates the root key: the new root is signed by the old and the new key, and clients follow', async () => {
    const root1 = (await s.platform.firmware.tuf.file('1.root.json')) ?? '';
    const newRoot = privateKeyFromPem(generateTufKey().privatePem);
    const unsigned = await s.platform.firmware.tuf.prepareRootChange(
      { role: 'root', keys: [newRoot.public] },
      'test',
    );
    // Only the new key: the current root's threshold is not met.
    await expect(
      s.platform.firmware.tuf.publish(signDocument(unsigned, [newRoot]), 'test'),
    ).rejects.toMatchObject({ code: 'signature_invalid' });
    // Only the old key: the new root's own threshold is not met.
    await expect(
      s.platform.firmware.tuf.publish(signDocument(unsigned, [keys.root]), 'test'),
    ).rejects.toMatchObject({ code: 'signature_invalid' });
    const published = await s.platform.firmware.tuf.publish(
      signDocument(unsigned, [keys.root, newRoot]),
      'test',
    );
    rootKey = newRoot;
    expect(published).toEqual({ role: 'root', version: 2 });

    // Rotate the timestamp key too (signed by the new root key alone now).
    const ts = await s.platform.firmware.tuf.prepareRootChange({ role: 'timestamp' }, 'test');
    await s.platform.firmware.tuf.publish(signDocument(ts, [newRoot]), 'test');
    // And the snapshot key.
    const snapshotBefore = (await s.platform.firmware.tuf.status()).roles.snapshot;
    const sn = await s.platform.firmware.tuf.prepareRootChange({ role: 'snapshot' }, 'test');
    await s.platform.firmware.tuf.publish(signDocument(sn, [newRoot]), 'test');
    const status = await s.platform.firmware.tuf.status();
    expect(status.roles.snapshot?.keyids).not.toEqual(snapshotBefore?.keyids);
    expect(status.roles.snapshot?.version).toBeGreaterThan(snapshotBefore?.version ?? 0);
    expect(status.roles.root?.version).toBe(4);
    expect(status.targetsValid).toBe(true);

    // A client that trusted root 1 walks 2.root.json and 3.root.json and still verifies everything.
    const dir = freshClientDir(root1);
    const updater = new Updater({
      metadataDir: path.join(dir, 'metadata'),
      metadataBaseUrl: `${s.httpsUrl}${tufPaths.metadata}`,
      targetBaseUrl: `${s.httpsUrl}${tufPaths.targets}`,
      fetcher: new MtlsFetcher({ ca, key: device.key, cert: device.cert }),
    });
    await updater.refresh();
    expect(
      JSON.parse(readFileSync(path.join(dir, 'metadata', 'root.json'), 'utf8')) as {
        signed: { version: number };
      },
    ).toMatchObject({ signed: { version: 4 } });
  });

  it('rotates the targets key: old targets stop verifying until signed with the new key', async () => {
    await expect(
      s.platform.firmware.tuf.prepareRootChange({ role: 'targets' }, 'test'),
    ).rejects.toMatchObject({
      code: 'validation_failed',
    });
    const newTargets = privateKeyFromPem(generateTufKey().privatePem);
    const unsigned = await s.platform.firmware.tuf.prepareRootChange(
      { role: 'targets', keys: [newTargets.public] },
      'test',
    );
    await s.platform.firmware.tuf.publish(signDocument(unsigned, [rootKey]), 'test');
    expect((await s.platform.firmware.tuf.status()).targetsValid).toBe(false);
    const [latest] = await s.platform.firmware.releases.list({ status: 'ready', limit: 1 });
    expect(await s.platform.firmware.isSigned(latest!.targetPath, latest!.sha256)).toBe(false);
    // The old targets key no longer counts.
    await expect(publishTargets(s.platform, keys)).rejects.toMatchObject({ code: 'signature_invalid' });
    await publishTargets(s.platform, { targets: newTargets });
    expect((await s.platform.firmware.tuf.status()).targetsValid).toBe(true);
    expect(await s.platform.firmware.isSigned(latest!.targetPath, latest!.sha256)).toBe(true);
  });
});
