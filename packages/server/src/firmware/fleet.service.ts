import type { FirmwareState } from '@bulwark/protocol';
import type { Db } from '../store/index.ts';

/**
 * What the fleet runs (`firmware_device_state`, from each device's `firmware/state` report): recorded here, read
 * by rollouts (hardware), by devices (their firmware fact) and through the door by risk (exposure).
 */

export interface StaleDevice {
  deviceId: string;
  version: string | null;
  installedAt: number;
  endOfSupport: number | null;
  reason: 'older_than_max_age' | 'end_of_support_passed';
}

/** A device and the known release it runs. */
export interface Deployment {
  deviceId: string;
  group: string | null;
  release: { id: string; name: string; version: string };
}

export interface FleetDeps {
  db: Db;
  now: () => number;
  /** Devices whose installed image is older than this are reported as not updated. */
  maxAgeMs: number;
}

/** Records what a device says it runs (MQTT `devices/{id}/firmware/state`). */
async function recordState(deps: FleetDeps, deviceId: string, state: FirmwareState): Promise<void> {
  const { db } = deps;
  const t = deps.now();
  const release = state.target
    ? await db
        .selectFrom('firmware_releases')
        .select('id')
        .where('target_path', '=', state.target)
        .executeTakeFirst()
    : undefined;
  const existing = await db
    .selectFrom('firmware_device_state')
    .select(['target_path', 'installed_at'])
    .where('device_id', '=', deviceId)
    .executeTakeFirst();
  const row = {
    hardware_id: state.hardwareId,
    target_path: state.target,
    release_id: release?.id ?? null,
    version: state.version,
    security_version: state.securityVersion,
    reported_at: t,
    installed_at: existing && existing.target_path === state.target ? existing.installed_at : t,
  };
  if (existing)
    await db.updateTable('firmware_device_state').set(row).where('device_id', '=', deviceId).execute();
  else
    await db
      .insertInto('firmware_device_state')
      .values({ device_id: deviceId, ...row })
      .execute();
}

function staleReason(
  row: { installed_at: number; end_of_support: number | null },
  at: { now: number; maxAgeMs: number },
): StaleDevice['reason'] | undefined {
  if (row.end_of_support !== null && row.end_of_support <= at.now) return 'end_of_support_passed';
  if (at.now - row.installed_at > at.maxAgeMs) return 'older_than_max_age';
  return undefined;
}

/** Devices not updated within the maximum age, or whose image is past its end of support. */
async function stale(
  deps: FleetDeps,
  options: { maxAgeMs?: number | undefined; groupsIn?: readonly string[] | undefined } = {},
): Promise<StaleDevice[]> {
  const at = { now: deps.now(), maxAgeMs: options.maxAgeMs ?? deps.maxAgeMs };
  let query = deps.db
    .selectFrom('firmware_device_state as s')
    .innerJoin('devices as d', 'd.id', 's.device_id')
    .leftJoin('firmware_releases as r', 'r.id', 's.release_id')
    .select(['s.device_id', 's.version', 's.installed_at', 'r.end_of_support'])
    .where('d.status', '!=', 'revoked')
    .orderBy('s.installed_at')
    .orderBy('s.device_id');
  if (options.groupsIn) {
    if (options.groupsIn.length === 0) return [];
    query = query.where('d.group_name', 'in', options.groupsIn);
  }
  const out: StaleDevice[] = [];
  for (const r of await query.execute()) {
    const row = { installed_at: r.installed_at, end_of_support: r.end_of_support ?? null };
    const reason = staleReason(row, at);
    if (reason)
      out.push({
        deviceId: r.device_id,
        version: r.version,
        installedAt: r.installed_at,
        endOfSupport: row.end_of_support,
        reason,
      });
  }
  return out;
}

/**
 * Devices running a known release (revoked devices only with `includeRevoked`; only these groups with
 * `groupsIn`).
 */
async function deployments(
  deps: FleetDeps,
  filter: { groupsIn?: readonly string[] | undefined; includeRevoked?: boolean | undefined } = {},
): Promise<Deployment[]> {
  let query = deps.db
    .selectFrom('firmware_device_state as s')
    .innerJoin('firmware_releases as r', 'r.id', 's.release_id')
    .leftJoin('devices as d', 'd.id', 's.device_id')
    .select(['s.device_id', 'd.group_name', 'd.status', 'r.id', 'r.name', 'r.version']);
  if (filter.groupsIn) {
    if (filter.groupsIn.length === 0) return [];
    query = query.where('d.group_name', 'in', filter.groupsIn);
  }
  const rows = await query.execute();
  return rows
    .filter((r) => filter.includeRevoked === true || (r.status !== null && r.status !== 'revoked'))
    .map((r) => ({
      deviceId: r.device_id,
      group: r.group_name,
      release: { id: r.id, name: r.name, version: r.version },
    }));
}

export function createFleet(deps: FleetDeps) {
  return {
    recordState: (deviceId: string, state: FirmwareState) => recordState(deps, deviceId, state),
    /** What one device last reported it runs. */
    deviceState: (deviceId: string) =>
      deps.db
        .selectFrom('firmware_device_state')
        .selectAll()
        .where('device_id', '=', deviceId)
        .executeTakeFirst(),
    stale: (options: { maxAgeMs?: number | undefined; groupsIn?: readonly string[] | undefined } = {}) =>
      stale(deps, options),
    deployments: (
      filter: { groupsIn?: readonly string[] | undefined; includeRevoked?: boolean | undefined } = {},
    ) => deployments(deps, filter),
    /** The SBOM components of every release that name a package URL (for vulnerability matching). */
    async sbomComponents(): Promise<{ releaseId: string; purl: string; version: string | null }[]> {
      const rows = await deps.db
        .selectFrom('firmware_sbom_components')
        .select(['release_id', 'purl', 'version'])
        .where('purl', 'is not', null)
        .execute();
      return rows.map((c) => ({ releaseId: c.release_id, purl: c.purl ?? '', version: c.version }));
    },
  };
}

export type Fleet = ReturnType<typeof createFleet>;
