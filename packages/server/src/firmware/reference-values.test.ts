import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import type { SecurityEvent } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { releaseInput } from '../test-support/firmware.ts';
import { createFirmware, type Firmware } from './index.ts';
import { recordingEvents } from './recording-events.fixture.ts';

const settings = {
  maxArtifactSize: 64 * 1024,
  deviceTimeout: 3_600_000,
  maxAge: 365 * 86_400_000,
  rootExpiry: 365 * 86_400_000,
  targetsExpiry: 90 * 86_400_000,
  snapshotExpiry: 7 * 86_400_000,
  timestampExpiry: 86_400_000,
};

const digest = (bytes: number, fill: string) => fill.repeat(bytes * 2);
const golden = {
  sha256: { '0': digest(32, 'a'), '7': digest(32, 'b') },
  sha1: { '7': digest(20, 'c') },
};
const artifact = () => ({ size: 100, sha256: randomBytes(32).toString('hex') });

describe.each(testDialects)('firmware reference values (%s)', (dialect) => {
  let t: TestStore;
  let firmware: Firmware;
  let events: SecurityEvent[];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    events = [];
    firmware = createFirmware({
      db: t.store.db,
      box: createSecretBox(randomBytes(32)),
      events: recordingEvents(t.store.db, events),
      now: Date.now,
      dir: mkdtempSync(path.join(tmpdir(), 'bulwark-refvalues-')),
      settings,
      devices: { list: () => Promise.resolve([]), inServiceIds: () => Promise.resolve([]) },
    });
  });
  afterEach(async () => t.cleanup());

  it('records the golden PCR values with the release and shows them (null when none were given)', async () => {
    const created = await firmware.releases.create(
      releaseInput(artifact(), { referenceValues: golden }),
      'test',
    );
    expect(created.referenceValues).toEqual(golden);
    expect((await firmware.releases.get('pump-fw@1.0.0')).referenceValues).toEqual(golden);
    const plain = await firmware.releases.create(releaseInput(artifact(), { version: '1.0.1' }), 'test');
    expect(plain.referenceValues).toBeNull();
    // The API's release schema keeps them in the answer.
    expect(api.firmware.release.parse({ ...created, signed: false }).referenceValues).toEqual(golden);
  });

  it.each([
    [
      'a sha256 value of sha1 length',
      { sha256: { '7': digest(20, 'a') } },
      /referenceValues\.sha256\.7: .*64 hex/,
    ],
    ['an unknown bank', { md5: { '7': digest(16, 'a') } }, /referenceValues/],
    ['PCR 24', { sha256: { '24': digest(32, 'a') } }, /referenceValues\.sha256\.24: PCR index must be 0-23/],
    ['upper-case hex', { sha256: { '7': digest(32, 'A') } }, /lower-case hex/],
    ['no PCR at all', { sha256: {} }, /at least one PCR/],
    ['a list', [digest(32, 'a')], /referenceValues/],
  ])('refuses %s and stores nothing', async (_what, referenceValues, message) => {
    await expect(
      firmware.releases.create(releaseInput(artifact(), { referenceValues }), 'test'),
    ).rejects.toMatchObject({ code: 'validation_failed', message: expect.stringMatching(message) as string });
    expect(await firmware.releases.list()).toEqual([]);
    expect(events).toEqual([]);
  });

  it('answers, per device, the release it reports running with its values; nothing for an unknown release', async () => {
    const withValues = await firmware.releases.create(
      releaseInput(artifact(), { referenceValues: golden }),
      'test',
    );
    const without = await firmware.releases.create(releaseInput(artifact(), { version: '1.1.0' }), 'test');
    const report = (target: string, version: string) => ({
      hardwareId: 'pump-v2',
      target,
      version,
      securityVersion: 1,
      ts: Date.now(),
    });
    const t0 = Date.now();
    await t.store.db
      .insertInto('devices')
      .values(
        ['pump-1', 'pump-2', 'pump-3', 'pump-4'].map((id) => ({
          id,
          group_name: null,
          status: 'active',
          attributes: '{}',
          created_at: t0,
          updated_at: t0,
          enrolled_at: t0,
          revoked_at: null,
        })),
      )
      .execute();
    await firmware.fleet.recordState('pump-1', report(withValues.targetPath, '1.0.0'));
    await firmware.fleet.recordState('pump-2', report(without.targetPath, '1.1.0'));
    await firmware.fleet.recordState('pump-3', report('pump-fw/9.9.9/pump-fw-9.9.9.bin', '9.9.9'));
    expect(await firmware.referenceValuesFor('pump-1')).toEqual({ release: 'pump-fw@1.0.0', values: golden });
    expect(await firmware.referenceValuesFor('pump-2')).toEqual({ release: 'pump-fw@1.1.0', values: null });
    expect(await firmware.referenceValuesFor('pump-3')).toBeUndefined();
    expect(await firmware.referenceValuesFor('pump-4')).toBeUndefined();
  });
});

describe('the createRelease contract', () => {
  const body = {
    name: 'pump-fw',
    version: '1.0.0',
    hardwareIds: ['pump-v2'],
    securityVersion: 1,
    endOfSupport: '2030-12-31',
    size: 100,
    sha256: 'a'.repeat(64),
  };

  it('takes reference values of one bank only, and refuses a value not its bank digest size', () => {
    const one = { sha256: { '7': digest(32, 'b') } };
    expect(api.firmware.createRelease.body.parse({ ...body, referenceValues: one }).referenceValues).toEqual(
      one,
    );
    const bad = api.firmware.createRelease.body.safeParse({
      ...body,
      referenceValues: { sha384: { '0': digest(32, 'b') } },
    });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({ path: ['referenceValues', 'sha384', '0'] });
  });
});
