import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDeviceService } from '../devices/index.ts';
import type { AuditEntry, EventBus, SecurityEvent } from '../events/index.ts';
import { createFirmware, type Firmware } from '../firmware/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { cycloneDx, releaseInput } from '../test-support/firmware.ts';
import { registerReads, registerWorld } from './register.fixture.ts';
import { createRisk, type Risk } from './index.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/osv', import.meta.url));
const DAY = 86_400_000;

/** The risk module's compliance facts: advisories known, the last import, advisories affecting what runs. */
describe.each(testDialects)('vulnerability compliance facts (%s)', (dialect) => {
  let t: TestStore;
  let firmware: Firmware;
  let risk: Risk;
  let clock: number;
  /** Events as the audit log would hold them (time of emission). */
  let logged: { event: SecurityEvent; ts: number }[];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    logged = [];
    clock = Date.parse('2026-01-01T00:00:00Z');
    const emitter: Pick<EventBus, 'emit' | 'atomically' | 'on'> = {
      emit: (event) => {
        logged.push({ event, ts: clock });
        return Promise.resolve({} as AuditEntry);
      },
      on: () => () => undefined,
      async atomically(work) {
        const batch: SecurityEvent[] = [];
        const result = await t.store.db.transaction().execute((tx) => work(tx, (e) => void batch.push(e)));
        for (const event of batch) logged.push({ event, ts: clock });
        return result;
      },
    };
    const devices = createDeviceService({
      db: t.store.db,
      events: emitter,
      now: () => clock,
      tokenTtlMs: DAY,
    });
    firmware = createFirmware({
      db: t.store.db,
      box: createSecretBox(randomBytes(32)),
      events: emitter,
      now: () => clock,
      dir: mkdtempSync(path.join(tmpdir(), 'bulwark-risk-facts-')),
      settings: {
        maxArtifactSize: 1024,
        deviceTimeout: DAY,
        maxAge: 180 * DAY,
        rootExpiry: 365 * DAY,
        targetsExpiry: 90 * DAY,
        snapshotExpiry: 7 * DAY,
        timestampExpiry: DAY,
      },
      devices,
      onReleaseCreated: (_release, actor) => risk.vulnerabilities.rematch(actor),
    });
    const audit = {
      latest: <T extends AuditEntry['type']>(type: T) => {
        const found = logged.filter((l) => l.event.type === type).at(-1);
        return Promise.resolve(found && ({ ...found.event, ts: found.ts } as unknown as AuditEntry<T>));
      },
    };
    risk = createRisk({
      ...{ db: t.store.db, events: emitter, now: () => clock, firmware, audit },
      register: registerReads(registerWorld(), firmware),
    });
    for (const id of ['dev-1', 'dev-2', 'dev-3']) await devices.add({ id, group: 'pumps' }, 'test');
  });
  afterEach(async () => t.cleanup());

  const release = (version: string, purls: string[]) =>
    firmware.releases.create(
      releaseInput(
        { size: 100, sha256: randomBytes(32).toString('hex') },
        { version, sbom: cycloneDx(purls), endOfSupport: clock + 400 * DAY },
      ),
      'test',
    );
  const runs = (deviceId: string, target: string) =>
    firmware.fleet.recordState(deviceId, {
      hardwareId: 'pump-v2',
      target,
      version: null,
      securityVersion: 1,
      ts: clock,
    });

  it('states no advisories and no import before the first import', async () => {
    expect(await risk.complianceFacts()).toEqual({ advisories: 0, lastImportAt: null, exposures: [] });
  });

  it('states the advisories, the newest import (even one that changed nothing) and the exposures', async () => {
    const old = await release('1.0.0', ['pkg:npm/lodash@4.17.11']);
    const mid = await release('1.1.0', ['pkg:npm/lodash@4.17.15']);
    await release('1.2.0', ['pkg:npm/lodash@4.17.11']); // affected, but no device runs it
    await runs('dev-1', old.targetPath);
    await runs('dev-2', mid.targetPath);
    await runs('dev-3', mid.targetPath);
    const importedAt = clock;
    await risk.vulnerabilities.importFrom(FIXTURES, 'test');

    expect(await risk.complianceFacts()).toEqual({
      advisories: 2,
      lastImportAt: importedAt,
      exposures: [
        {
          advisory: 'GHSA-35jh-r3h4-6jhm',
          severity: 'high',
          score: 7.2,
          releases: ['pump-fw@1.0.0', 'pump-fw@1.1.0'],
          devices: ['dev-1', 'dev-2', 'dev-3'],
        },
        {
          advisory: 'GHSA-jf85-cpcp-j695',
          severity: 'critical',
          score: 9.1,
          releases: ['pump-fw@1.0.0'],
          devices: ['dev-1'],
        },
      ],
    });

    clock += 10 * DAY;
    await risk.vulnerabilities.importFrom(FIXTURES, 'test'); // unchanged: the store keeps its times
    expect((await risk.complianceFacts()).lastImportAt).toBe(clock);
  });
});
