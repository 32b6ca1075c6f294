import { deviceIdOf, parseSubject } from '../events/index.ts';
import {
  deviceStates,
  deviceStatuses,
  effectiveState,
  type Device,
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

/** Devices in service: not yet enrolled, enrolled, or disabled (revoked devices are out for good). */
export const inService: readonly DeviceStatus[] = ['registered', 'active', 'disabled'];

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

/** A device as the compliance checks read it (the consumer's `DeviceFact`, stated here). */
export interface DeviceComplianceFact {
  id: string;
  group: string | null;
  status: DeviceStatus;
  quarantined: boolean;
  /** At least one MQTT session open now, as the server records it (device.follow keeps the count). */
  connected: boolean;
  lastSeenAt: number | null;
  createdAt: number;
  zone: string | null;
}

/** What the devices module states per device for the compliance checks (IEC 62443-3-3 SR 1.2, SR 2.8). */
export interface DeviceComplianceFacts {
  devices: DeviceComplianceFact[];
  /** Revoked devices that still hold an MQTT session, with their revoked certificates. */
  revokedButConnected: { deviceId: string; serials: string[] }[];
  /** Two connections claiming one identity (mqtt.identity_conflict) in the window, by client id. */
  identityConflicts: { clientId: string; deviceId: string | null; count: number; lastAt: number }[];
  conflictWindowMs: number;
}

const DEVICE_PAGE = 10_000;
const CONFLICT_PAGE = 500;
/** At most this many identity-conflict entries are read per run (each already stands for many takeovers). */
const CONFLICT_PAGES = 100;

async function allDevices(ctx: DeviceContext): Promise<Device[]> {
  const out: Device[] = [];
  let after: string | undefined;
  for (;;) {
    const rows = await store.listDeviceRows(ctx.db, { after, limit: DEVICE_PAGE });
    out.push(...rows.map(store.toDevice));
    if (rows.length < DEVICE_PAGE) return out;
    after = rows[rows.length - 1]?.id;
  }
}

/** The devices in service (see `inService`), with their attributes. */
export async function devicesInService(ctx: DeviceContext): Promise<Device[]> {
  return (await allDevices(ctx)).filter((d) => inService.includes(d.status));
}

/** The ids of the devices in service (see `inService`), sorted. */
export async function inServiceIds(ctx: DeviceContext): Promise<string[]> {
  const ids: string[] = [];
  for (const status of inService) {
    let after: string | undefined;
    for (;;) {
      const rows = await store.listDeviceRows(ctx.db, { status, after, limit: DEVICE_PAGE });
      ids.push(...rows.map((r) => r.id));
      if (rows.length < DEVICE_PAGE) break;
      after = rows[rows.length - 1]?.id;
    }
  }
  return ids.sort();
}

/** `mqtt.identity_conflict` entries of the window, by the client id they are about. */
async function identityConflicts(
  ctx: DeviceContext,
  windowMs: number,
): Promise<DeviceComplianceFacts['identityConflicts']> {
  const { audit } = ctx;
  // No audit log bound: "no conflicts" would be a pass on no data; the check becomes `error` instead.
  if (!audit) throw new Error('devices: no audit log bound to read identity conflicts from');
  const byClient = new Map<string, DeviceComplianceFacts['identityConflicts'][number]>();
  let after: number | undefined;
  for (let page = 0; page < CONFLICT_PAGES; page++) {
    const entries = await audit.query({
      type: 'mqtt.identity_conflict',
      from: ctx.now() - windowMs,
      after,
      limit: CONFLICT_PAGE,
    });
    for (const entry of entries) {
      const clientId = parseSubject(entry.subject)?.id ?? '';
      const seen = byClient.get(clientId);
      if (seen) {
        seen.count += 1;
        seen.lastAt = Math.max(seen.lastAt, entry.ts);
      } else {
        const deviceId = deviceIdOf(entry.subject) ?? null;
        byClient.set(clientId, { clientId, deviceId, count: 1, lastAt: entry.ts });
      }
    }
    if (entries.length < CONFLICT_PAGE) break;
    after = entries[entries.length - 1]?.seq;
  }
  return [...byClient.values()].sort((a, b) => a.clientId.localeCompare(b.clientId));
}

/** Revoked devices still connected, with the serials the pki revoked (from its door, when bound). */
async function revokedButConnected(ctx: DeviceContext, devices: readonly Device[]) {
  const certificatesOf = ctx.facts?.certificatesOf;
  const out: DeviceComplianceFacts['revokedButConnected'] = [];
  for (const d of devices) {
    if (d.status !== 'revoked' || !d.online) continue;
    const certs = certificatesOf ? await certificatesOf(d.id) : [];
    out.push({ deviceId: d.id, serials: certs.filter((c) => c.revokedAt !== null).map((c) => c.serial) });
  }
  return out;
}

/** Every device with its session state and zone, revoked devices still connected, identity conflicts. */
export async function deviceComplianceFacts(
  ctx: DeviceContext,
  options: { conflictWindowMs: number },
): Promise<DeviceComplianceFacts> {
  const { conflictWindowMs } = options;
  const [devices, zoneOf] = await Promise.all([
    allDevices(ctx),
    ctx.facts ? ctx.facts.zones() : Promise.resolve(() => null),
  ]);
  return {
    devices: devices.map((d) => ({
      id: d.id,
      group: d.group,
      status: d.status,
      quarantined: d.quarantinedAt !== null,
      connected: d.online,
      lastSeenAt: d.lastSeenAt,
      createdAt: d.createdAt,
      zone: zoneOf(d),
    })),
    revokedButConnected: await revokedButConnected(ctx, devices),
    identityConflicts: await identityConflicts(ctx, conflictWindowMs),
    conflictWindowMs,
  };
}
