import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { baselineDocumentSchema, type Baseline } from '@bulwark/protocol';
import { checkIds, type MeasuredLevel } from '../compliance/index.ts';
import { createDeviceService, type DeviceService } from '../devices/index.ts';
import type { AuditEntry, EventBus, SecurityEvent } from '../events/index.ts';
import { createFirmware, type Firmware } from '../firmware/index.ts';
import { createRisk, type Risk, type RiskDeps, type RiskInventory } from '../risk/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import type { TestStore } from './dialects.ts';
import { cycloneDx, releaseInput } from './firmware.ts';
import { testTmpDir } from './tmp.ts';

const DAY = 86_400_000;

type InventoryDevice = Awaited<ReturnType<RiskInventory['devices']>>[number];
type OpenAlert = Awaited<ReturnType<RiskDeps['register']['openAlerts']>>[number];

/**
 * What the register reads from the other modules, as a test sets it: the inventory, the baseline, the latest
 * compliance run's level and statuses, the open alerts. Firmware (releases, deployments) stays real: the
 * register reads it through the firmware door the test builds.
 */
export interface RegisterWorld {
  devices: InventoryDevice[];
  zones: { name: string; securityLevel: number }[];
  conduits: { name: string; from: string; to: string }[];
  dataCategories: { category: string; schemas: string[] }[];
  releases: { name: string; version: string }[] | null;
  baseline: Baseline;
  measured: MeasuredLevel | null;
  alerts: OpenAlert[];
}

export function registerWorld(overrides: Partial<RegisterWorld> = {}): RegisterWorld {
  return {
    devices: [],
    zones: [],
    conduits: [],
    dataCategories: [],
    releases: null,
    baseline: baselineDocumentSchema.parse({ name: 'test' }),
    measured: null,
    alerts: [],
    ...overrides,
  };
}

/** The register's reads over a world the test changes; releases default to the firmware door's list. */
export function registerReads(
  world: RegisterWorld,
  firmware?: { releases: { list(filter: { limit: number }): Promise<{ name: string; version: string }[]> } },
): RiskDeps['register'] {
  const known = new Set<string>(checkIds);
  return {
    inventory: {
      devices: () => Promise.resolve(world.devices),
      zones: () => Promise.resolve(world.zones),
      conduits: () => Promise.resolve(world.conduits),
      dataCategories: () => Promise.resolve(world.dataCategories),
      releases: async () =>
        world.releases ?? (firmware ? await firmware.releases.list({ limit: 100_000 }) : []),
    },
    baseline: () => Promise.resolve(world.baseline),
    checkExists: (id) => known.has(id),
    measuredLevel: () => Promise.resolve(world.measured),
    openAlerts: () => Promise.resolve(world.alerts),
  };
}

/** A world whose inventory holds the devices as pumps (model PC-200) in zone `plant` (security level 2). */
export function plantWorld(deviceIds: string[] = ['dev-1', 'dev-2']): Partial<RegisterWorld> {
  return {
    devices: deviceIds.map((id) => ({ id, group: 'pumps', model: 'PC-200', zone: 'plant' })),
    zones: [{ name: 'plant', securityLevel: 2 }],
  };
}

export interface RiskTestbedOptions {
  /** The devices added (group `pumps`) before the test; dev-1 and dev-2 unless given. */
  deviceIds?: string[];
  /** What the register reads from the other modules (see `registerWorld`); nothing unless given. */
  world?: Partial<RegisterWorld>;
}

export interface RiskTestbed {
  devices: DeviceService;
  firmware: Firmware;
  risk: Risk;
  /** Every event emitted, in order; an `atomically` batch once its transaction committed (none if it threw). */
  events: SecurityEvent[];
  /** The same events with the clock's time when each was recorded, as the audit log would hold them. */
  logged: { event: SecurityEvent; ts: number }[];
  /** The time every service reads; a test moves it by setting `now`. */
  clock: { now: number };
  /** The register's world; a test changes it between calls. */
  world: RegisterWorld;
  /** The newest recorded event of a type, as an audit entry (risk's compliance facts read it). */
  audit: { latest<T extends AuditEntry['type']>(type: T): Promise<AuditEntry<T> | undefined> };
  /** Creates release `pump-fw@version` (hardware pump-v2) whose SBOM lists `purls`, supported 400 days. */
  release: (version: string, purls: string[]) => ReturnType<Firmware['releases']['create']>;
  /** Records that the device runs `target` (`version`), now. */
  runs: (
    deviceId: string,
    target: string | null,
    version?: string | null,
  ) => ReturnType<Firmware['fleet']['recordState']>;
}

/**
 * Risk over `store` as the platform wires it, for tests: the real device and firmware services (a release
 * with an SBOM is matched against the advisories, a discarded draft's matches go with it), the register
 * reading the test's `world`, events recorded instead of an event bus, and a clock the test sets. Starts on
 * 2026-01-01 with the devices added.
 */
export async function riskTestbed(store: TestStore, options: RiskTestbedOptions = {}): Promise<RiskTestbed> {
  const db = store.store.db;
  const events: SecurityEvent[] = [];
  const logged: { event: SecurityEvent; ts: number }[] = [];
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  const now = () => clock.now;
  const record = (event: SecurityEvent) => {
    events.push(event);
    logged.push({ event, ts: clock.now });
  };
  const emitter: Pick<EventBus, 'emit' | 'atomically' | 'on'> = {
    emit: (e) => {
      record(e);
      return Promise.resolve({} as AuditEntry);
    },
    on: () => () => undefined,
    async atomically(work) {
      const batch: SecurityEvent[] = [];
      const result = await db.transaction().execute((tx) => work(tx, (e) => void batch.push(e)));
      batch.forEach(record);
      return result;
    },
  };
  const audit: RiskTestbed['audit'] = {
    latest: <T extends AuditEntry['type']>(type: T) => {
      const found = logged.filter((l) => l.event.type === type).at(-1);
      return Promise.resolve(found && ({ ...found.event, ts: found.ts } as unknown as AuditEntry<T>));
    },
  };
  const devices = createDeviceService({ db, events: emitter, now, tokenTtlMs: DAY });
  const firmware = createFirmware({
    db,
    box: createSecretBox(randomBytes(32)),
    events: emitter,
    now,
    dir: mkdtempSync(path.join(testTmpDir(), 'bulwark-risk-firmware-')),
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
    onReleaseDiscard: (tx, releaseId) => risk.vulnerabilities.forgetRelease(tx, releaseId),
  });
  const world = registerWorld(options.world);
  const risk = createRisk({
    ...{ db, events: emitter, now, firmware, audit },
    register: registerReads(world, firmware),
  });
  for (const id of options.deviceIds ?? ['dev-1', 'dev-2']) await devices.add({ id, group: 'pumps' }, 'test');
  return {
    ...{ devices, firmware, risk, events, logged, clock, world, audit },
    release: (version, purls) =>
      firmware.releases.create(
        releaseInput(
          { size: 100, sha256: randomBytes(32).toString('hex') },
          { version, sbom: cycloneDx(purls), endOfSupport: clock.now + 400 * DAY },
        ),
        'test',
      ),
    runs: (deviceId, target, version = null) =>
      firmware.fleet.recordState(deviceId, {
        hardwareId: 'pump-v2',
        target,
        version,
        securityVersion: 1,
        ts: clock.now,
      }),
  };
}
