import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import type { SecurityEvent } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { cycloneDx, releaseInput } from '../test-support/firmware.ts';
import { createFirmware, generateTufKey, privateKeyFromPem, signDocument, type Firmware } from './index.ts';
import { recordingEvents } from './recording-events.fixture.ts';

const DAY = 86_400_000;

/** The firmware module's compliance facts: TUF metadata, releases with what runs them, rollouts in progress. */
describe.each(testDialects)('firmware compliance facts (%s)', (dialect) => {
  let t: TestStore;
  let firmware: Firmware;
  let devices: DeviceService;
  let clock: number;

  beforeEach(async () => {
    t = await createTestStore(dialect);
    clock = Date.parse('2026-03-02T12:00:00Z');
    const emitter = recordingEvents(t.store.db, [] as SecurityEvent[]);
    devices = createDeviceService({ db: t.store.db, events: emitter, now: () => clock, tokenTtlMs: DAY });
    firmware = createFirmware({
      db: t.store.db,
      box: createSecretBox(randomBytes(32)),
      events: emitter,
      now: () => clock,
      dir: mkdtempSync(path.join(tmpdir(), 'bulwark-fw-facts-')),
      settings: {
        maxArtifactSize: 1 << 20,
        deviceTimeout: 60 * 60_000,
        maxAge: 365 * DAY,
        rootExpiry: 365 * DAY,
        targetsExpiry: 90 * DAY,
        snapshotExpiry: 7 * DAY,
        timestampExpiry: DAY,
      },
      devices,
    });
    for (const id of ['d0', 'd1', 'd2', 'gone']) await devices.add({ id, group: 'pumps' }, 'test');
    await t.store.db.updateTable('devices').set({ status: 'active' }).execute();
    await t.store.db.updateTable('devices').set({ status: 'revoked' }).where('id', '=', 'gone').execute();
  });
  afterEach(async () => t.cleanup());

  async function readyRelease(version: string, sbom?: unknown) {
    const bytes = randomBytes(128);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const input = releaseInput({ size: bytes.length, sha256 }, { version, endOfSupport: clock + 365 * DAY });
    const created = await firmware.releases.create(sbom === undefined ? input : { ...input, sbom }, 'test');
    return firmware.releases.upload(created.id, Readable.from([bytes]), 'test');
  }

  it('states nothing signed and no refresh before the TUF repository is initialized', async () => {
    expect(await firmware.complianceFacts()).toEqual({
      metadata: [],
      autoRefresh: false,
      releases: [],
      activeRollouts: [],
      devices: [],
    });
  });

  it('states metadata, releases with devices running them, rollouts in progress and device versions', async () => {
    const old = await readyRelease('1.0.0');
    clock += DAY;
    const current = await readyRelease('1.1.0', cycloneDx(['pkg:generic/zlib@1.2.13']));
    const root = privateKeyFromPem(generateTufKey().privatePem);
    const targets = privateKeyFromPem(generateTufKey().privatePem);
    const unsigned = await firmware.tuf.prepareInitialRoot(
      { rootKeys: [root.public], rootThreshold: 1, targetsKeys: [targets.public], targetsThreshold: 1 },
      'test',
    );
    await firmware.tuf.publish(signDocument(unsigned, [root]), 'test');
    await firmware.tuf.publish(signDocument(await firmware.tuf.prepareTargets('test'), [targets]), 'test');
    const state = (target: string | null, version: string | null) => ({
      hardwareId: 'pump-v2',
      target,
      version,
      securityVersion: 1,
      ts: clock,
    });
    await firmware.fleet.recordState('d0', state(old.targetPath, '1.0.0'));
    await firmware.fleet.recordState('d1', state(current.targetPath, '1.1.0'));
    await firmware.fleet.recordState('d2', state(null, '0.9.0-factory'));
    await firmware.fleet.recordState('gone', state(old.targetPath, '1.0.0'));
    firmware.connect(() => Promise.resolve());
    const rollout = await firmware.rollouts.create(
      {
        release: current.id,
        selector: { devices: ['d0'] },
        settings: {
          phases: [
            { percent: 10, soakMs: 60_000 },
            { percent: 100, soakMs: 0 },
          ],
        },
      },
      'test',
    );
    const done = await firmware.rollouts.create(
      {
        release: current.id,
        selector: { devices: ['d2'] },
        settings: { phases: [{ percent: 100, soakMs: 0 }] },
      },
      'test',
    );
    await firmware.rollouts.abort(done.id, 'test');

    const facts = await firmware.complianceFacts();
    expect(facts.metadata.map((m) => m.role)).toEqual(['root', 'targets', 'snapshot', 'timestamp']);
    expect(facts.metadata.find((m) => m.role === 'timestamp')).toMatchObject({
      version: 1,
      expiresAt: clock + DAY,
    });
    expect(facts.autoRefresh).toBe(true);
    expect(facts.releases).toEqual([
      { id: old.id, version: '1.0.0', createdAt: clock - DAY, hasSbom: false, devices: 1 },
      { id: current.id, version: '1.1.0', createdAt: clock, hasSbom: true, devices: 1 },
    ]);
    expect(facts.activeRollouts).toEqual([
      { id: rollout.id, release: current.id, status: 'running', phases: [{ percent: 10 }, { percent: 100 }] },
    ]);
    expect(facts.devices).toEqual([
      { deviceId: 'd0', version: '1.0.0', releaseId: old.id, releaseCreatedAt: clock - DAY },
      { deviceId: 'd1', version: '1.1.0', releaseId: current.id, releaseCreatedAt: clock },
      { deviceId: 'd2', version: '0.9.0-factory', releaseId: null, releaseCreatedAt: null },
    ]);
  });
});
