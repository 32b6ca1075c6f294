import path from 'node:path';
import {
  DEVICE_TOPIC_ROOT,
  type FirmwareCommand,
  type FirmwareState,
  type FirmwareStatus,
} from '@bulwark/protocol';
import type { Device } from '../devices/index.ts';
import type { EventBus } from '../events/index.ts';
import type { SecretBox } from '../secrets/index.ts';
import type { Db, Tx } from '../store/index.ts';
import { createArtifactStore } from './artifact-store.ts';
import { createFleet } from './fleet.service.ts';
import { firmwareComplianceFacts } from './firmware.facts.ts';
import { referenceValuesFor } from './reference-values.ts';
import { createReleaseService } from './release.service.ts';
import type { NewRelease, Release } from './release.types.ts';
import { createRolloutService } from './rollout.service.ts';
import { createTufRepository, parseMetadata, type TufExpiry } from './tuf.repository.ts';
import * as tufStore from './tuf.store.ts';

export interface FirmwareSettings {
  maxArtifactSize: number;
  deviceTimeout: number;
  maxAge: number;
  rootExpiry: number;
  targetsExpiry: number;
  snapshotExpiry: number;
  timestampExpiry: number;
}

export interface FirmwareDeps {
  db: Db;
  box: Pick<SecretBox, 'seal' | 'open'>;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  now: () => number;
  /** `<data>/firmware`: artifacts live here (shared storage when several nodes share PostgreSQL). */
  dir: string;
  settings: FirmwareSettings;
  devices: {
    list(filter: { group?: string; status?: string; limit?: number; after?: string }): Promise<Device[]>;
    /** Ids of the devices in service (registered, active, disabled): the devices module's definition. */
    inServiceIds(): Promise<string[]>;
  };
  /** Which zone a device is in (the policy module's zones), for rollouts by zone. */
  zoneResolver?: (() => Promise<(device: Device) => string | null>) | undefined;
  /** Publishes to a device's own topics; set once the broker runs (commands wait for the next report otherwise). */
  send?: ((deviceId: string, topic: string, payload: string) => Promise<void>) | undefined;
  onError?: (err: unknown) => void;
  /**
   * A release with an SBOM was created (risk matches it against the advisories; firmware does not know risk).
   * Awaited before `releases.create` resolves.
   */
  onReleaseCreated?: ((release: Release, actor: string) => Promise<unknown>) | undefined;
  /** A draft is being discarded: what other modules keep about it goes in the same transaction (risk). */
  onReleaseDiscard?: ((tx: Tx, releaseId: string) => Promise<unknown>) | undefined;
}

/**
 * Firmware updates: releases (artifacts, SBOMs), the TUF repository that signs them for devices, staged
 * rollouts, and what the fleet runs (the risk module matches vulnerabilities against it).
 */
export function createFirmware(deps: FirmwareDeps) {
  const { db, events, now, settings } = deps;
  let send = deps.send;
  const artifacts = createArtifactStore(path.join(deps.dir));
  const releases = createReleaseService({
    db,
    events,
    now,
    artifacts,
    maxArtifactSize: settings.maxArtifactSize,
    onDiscard: deps.onReleaseDiscard,
  });
  const expiry: TufExpiry = {
    root: settings.rootExpiry,
    targets: settings.targetsExpiry,
    snapshot: settings.snapshotExpiry,
    timestamp: settings.timestampExpiry,
  };
  const tuf = createTufRepository({
    db,
    box: deps.box,
    events,
    now,
    expiry,
    signableTargets: () => releases.signableTargets(),
  });

  /** True when the current targets metadata (valid under the current root) lists this image. */
  async function isSigned(targetPath: string, sha256: string): Promise<boolean> {
    const rootRow = await tufStore.latest(db, 'root');
    const targetsRow = await tufStore.latest(db, 'targets');
    if (!rootRow || !targetsRow) return false;
    const targets = parseMetadata('targets', targetsRow.body);
    try {
      parseMetadata('root', rootRow.body).verifyDelegate('targets', targets);
    } catch {
      return false;
    }
    return targets.signed.targets[targetPath]?.hashes.sha256 === sha256 && targetsRow.expires_at > now();
  }

  const rollouts = createRolloutService({
    db,
    events,
    now,
    releases,
    devices: deps.devices,
    isSigned,
    deviceTimeoutMs: settings.deviceTimeout,
    zoneResolver: deps.zoneResolver,
    onError: deps.onError,
    canSend: () => send !== undefined,
    async send(deviceId: string, command: FirmwareCommand) {
      if (!send) throw new Error('no broker to send the command with');
      await send(deviceId, `${DEVICE_TOPIC_ROOT}/${deviceId}/firmware/command`, JSON.stringify(command));
    },
  });
  const fleet = createFleet({ db, now, maxAgeMs: settings.maxAge });

  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let refreshedAt = 0;
  // Snapshot and timestamp are renewed at half-life; checking a few times per half-life is plenty.
  const refreshEveryMs = Math.min(60_000, settings.timestampExpiry / 8);
  // Temporary files of uploads whose owner is gone go at start; a node on another host is judged gone only
  // once its lease heartbeat is stale, so look again now and then (artifact-store.ts).
  let cleanedAt = 0;
  const cleanEveryMs = 10 * 60_000;

  return {
    artifacts,
    releases: {
      ...releases,
      /** Creates a release; an SBOM is matched against the advisories already imported. */
      async create(input: NewRelease, actor: string) {
        const release = await releases.create(input, actor);
        if (release.sbomComponents > 0) await deps.onReleaseCreated?.(release, actor);
        return release;
      },
    },
    tuf,
    rollouts,
    /** What the fleet runs: device reports, stale devices, deployments and SBOM components (read by risk). */
    fleet,
    isSigned,
    /**
     * The release a device reports running (`name@version`) and its reference PCR values (null when it
     * recorded none); undefined when the device reports no known release. Attestation's `referenceValuesFor`.
     */
    referenceValuesFor: (deviceId: string) => referenceValuesFor(db, deviceId),
    /** The compliance engine's `firmware` source: TUF metadata, releases, active rollouts, what devices run. */
    complianceFacts: () => firmwareComplianceFacts(db, () => deps.devices.inServiceIds()),

    /** Lets the rollouts reach devices (the broker exists only in `serve`). */
    connect(publish: (deviceId: string, topic: string, payload: string) => Promise<void>) {
      send = publish;
    },

    /**
     * A step of an update a device reported on `devices/{id}/firmware/status`, validated by the broker's
     * ingress router (malformed reports never get here: they change nothing).
     */
    async handleStatus(deviceId: string, status: FirmwareStatus): Promise<void> {
      await rollouts.report(deviceId, status);
    },

    /** What a device runs now, reported on `devices/{id}/firmware/state` at every connect (validated). */
    async handleState(deviceId: string, state: FirmwareState): Promise<void> {
      await fleet.recordState(deviceId, state);
      await rollouts.deviceOnline(deviceId, state.target);
    },

    /** Background work: rollouts advance, snapshot and timestamp stay fresh, stale uploads are removed. */
    start(intervalMs: number) {
      if (timer) return;
      const run = () => {
        running ??= (async () => {
          try {
            await rollouts.tick();
            if (now() - refreshedAt >= refreshEveryMs) {
              refreshedAt = now();
              await tuf.refresh();
            }
            if (now() - cleanedAt >= cleanEveryMs) {
              cleanedAt = now();
              await artifacts.cleanTemporary();
            }
          } catch (err) {
            deps.onError?.(err);
          } finally {
            running = undefined;
          }
        })();
        return running;
      };
      cleanedAt = now();
      void artifacts.cleanTemporary().catch((err: unknown) => deps.onError?.(err));
      void run();
      timer = setInterval(() => void run(), intervalMs);
      timer.unref();
    },
    /** Stops the background work and waits for a round in progress. */
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

export type Firmware = ReturnType<typeof createFirmware>;
