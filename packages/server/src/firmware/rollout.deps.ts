import type { FirmwareCommand } from '@bulwark/protocol';
import type { Device } from '../devices/index.ts';
import type { EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import type { ReleaseService } from './release.service.ts';

export interface RolloutServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically'>;
  now: () => number;
  releases: Pick<ReleaseService, 'get'>;
  devices: {
    list(filter: { group?: string; status?: string; limit?: number; after?: string }): Promise<Device[]>;
  };
  /** True when the current signed targets metadata lists this image (devices would refuse it otherwise). */
  isSigned(targetPath: string, sha256: string): Promise<boolean>;
  /** Sends the install command to a device (MQTT, QoS 1); a device offline gets it again when it reports its state. */
  send(deviceId: string, command: FirmwareCommand): Promise<void>;
  /** False in a process without the broker (the CLI): commands are left for the server to send. */
  canSend(): boolean;
  /** A device sent a command that reports nothing for this long counts as a failed attempt. */
  deviceTimeoutMs: number;
  /** The zone of each device, for selectors by zone (absent: zone selectors are refused). */
  zoneResolver?: (() => Promise<(device: Device) => string | null>) | undefined;
  /** Called when sending or ticking fails in the background. */
  onError?: (err: unknown) => void;
}

/** What every rollout use case works with: the deps, and one-at-a-time execution in this process. */
export interface RolloutContext {
  deps: RolloutServiceDeps;
  /** One tick or report at a time in this process; conditional writes guard against other nodes. */
  exclusive<T>(work: () => Promise<T>): Promise<T>;
}

export function createRolloutContext(deps: RolloutServiceDeps): RolloutContext {
  let serial: Promise<unknown> = Promise.resolve();
  return {
    deps,
    exclusive<T>(work: () => Promise<T>): Promise<T> {
      const next = serial.then(work, work);
      serial = next.catch(() => undefined);
      return next;
    },
  };
}
