import {
  deviceStates,
  deviceStatuses,
  effectiveState,
  type DeviceState,
  type DeviceStatus,
} from './device.types.ts';
import type { DeviceContext } from './device.context.ts';
import * as store from './device.store.ts';

const DAY = 86_400_000;

/** What the devices module states about the fleet for the compliance checks. */
export interface DeviceFleetFacts {
  total: number;
  byStatus: Record<DeviceStatus, number>;
  /** By effective state (quarantine shown over the statuses it restricts). */
  byState: Record<DeviceState, number>;
  /** Devices in service (registered, active, disabled) without a certificate that is not revoked. */
  withoutCertificate: number;
  /** Devices in service whose newest certificate expires within 30 days (or has expired). */
  certificatesExpiringIn30Days: number;
  /** Devices in service never seen on MQTT. */
  neverSeen: number;
  /** Devices in service last seen more than `notSeenDays` days ago. */
  notSeen: { days: number; count: number };
}

const inService: readonly DeviceStatus[] = ['registered', 'active', 'disabled'];

const zeros = <K extends string>(keys: readonly K[]) =>
  Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;

export async function deviceFacts(
  ctx: DeviceContext,
  options: { notSeenDays?: number | undefined } = {},
): Promise<DeviceFleetFacts> {
  const days = options.notSeenDays ?? 30;
  const t = ctx.now();
  const byStatus = zeros(deviceStatuses);
  const byState = zeros(deviceStates);
  let total = 0;
  for (const { status, quarantined, count } of await store.countByStatus(ctx.db)) {
    if (!(deviceStatuses as readonly string[]).includes(status)) continue;
    const s = status as DeviceStatus;
    byStatus[s] += count;
    byState[effectiveState(s, quarantined)] += count;
    total += count;
  }
  const count = (where: Parameters<typeof store.countWhere>[1]) =>
    store.countWhere(ctx.db, { statusIn: inService, ...where });
  const [withoutCertificate, expiring, neverSeen, notSeen] = await Promise.all([
    count({ withoutCertificate: true }),
    count({ certificateExpiringBefore: t + 30 * DAY }),
    count({ neverSeen: true }),
    count({ seenBefore: t - days * DAY }),
  ]);
  return {
    total,
    byStatus,
    byState,
    withoutCertificate,
    certificatesExpiringIn30Days: expiring,
    neverSeen,
    notSeen: { days, count: notSeen },
  };
}
