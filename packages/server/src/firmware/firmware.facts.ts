import type { Db } from '../store/index.ts';
import { settingsOf } from './rollout.advance.ts';
import { parseMetadata } from './tuf.metadata.ts';
import * as tufStore from './tuf.store.ts';
import { tufRoles } from './tuf.store.ts';

/**
 * The firmware module's compliance facts (the `firmware` source of the compliance engine; ETSI EN 303 645
 * 5.3, IEC 62443-4-2 CR 3.10, ISO/SAE 21434 §13 updates): the TUF metadata devices verify, the releases and
 * what devices run, and the rollouts in progress.
 */
export interface FirmwareComplianceFacts {
  /** Each TUF role's newest signed metadata. */
  metadata: { role: 'root' | 'targets' | 'snapshot' | 'timestamp'; version: number; expiresAt: number }[];
  /** The server re-signs snapshot and timestamp at half their lifetime (see `autoRefresh` below). */
  autoRefresh: boolean;
  releases: { id: string; version: string; createdAt: number; hasSbom: boolean; devices: number }[];
  /** Rollouts not finished (running, paused, waiting for approval) with their phases. */
  activeRollouts: { id: string; release: string; status: string; phases: { percent: number }[] }[];
  /** What each device in service reports it runs; releaseCreatedAt null when the version is no known release. */
  devices: { deviceId: string; version: string; releaseId: string | null; releaseCreatedAt: number | null }[];
}

const FINISHED = ['completed', 'aborted'] as const;

async function metadata(db: Db): Promise<FirmwareComplianceFacts['metadata']> {
  const out: FirmwareComplianceFacts['metadata'] = [];
  for (const role of tufRoles) {
    const row = await tufStore.latest(db, role);
    if (row) out.push({ role, version: row.version, expiresAt: Number(row.expires_at) });
  }
  return out;
}

/**
 * Whether snapshot and timestamp are renewed before they expire: the server's firmware loop (`start`, run by
 * `serve`) calls `tuf.refresh()` several times per half-life, which re-signs them with the online keys, but
 * only while the targets metadata verifies under the current root and both online keys are active (else it
 * re-signs nothing: tuf.online.ts `resign`). Stated from the store, so the CLI states what the server does.
 */
async function autoRefresh(db: Db): Promise<boolean> {
  const [rootRow, targetsRow, snapshotKeys, timestampKeys] = await Promise.all([
    tufStore.latest(db, 'root'),
    tufStore.latest(db, 'targets'),
    tufStore.keysFor(db, 'snapshot', 'active'),
    tufStore.keysFor(db, 'timestamp', 'active'),
  ]);
  if (!rootRow || !targetsRow || snapshotKeys.length === 0 || timestampKeys.length === 0) return false;
  try {
    parseMetadata('root', rootRow.body).verifyDelegate('targets', parseMetadata('targets', targetsRow.body));
    return true;
  } catch {
    return false;
  }
}

/** What the devices in service (the devices module says which, through its door) report they run. */
async function deviceStates(
  db: Db,
  inService: ReadonlySet<string>,
): Promise<FirmwareComplianceFacts['devices']> {
  const rows = await db
    .selectFrom('firmware_device_state as s')
    .leftJoin('firmware_releases as r', 'r.id', 's.release_id')
    .select(['s.device_id', 's.version', 's.release_id', 'r.version as release_version', 'r.created_at'])
    .orderBy('s.device_id')
    .execute();
  return rows
    .filter((r) => inService.has(r.device_id))
    .map((r) => ({
      deviceId: r.device_id,
      version: r.version ?? r.release_version ?? '',
      releaseId: r.created_at === null ? null : r.release_id,
      releaseCreatedAt: r.created_at === null ? null : Number(r.created_at),
    }));
}

async function releases(
  db: Db,
  devices: FirmwareComplianceFacts['devices'],
): Promise<FirmwareComplianceFacts['releases']> {
  const rows = await db
    .selectFrom('firmware_releases')
    .select(['id', 'version', 'created_at', 'sbom'])
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  const running = new Map<string, number>();
  for (const d of devices) if (d.releaseId) running.set(d.releaseId, (running.get(d.releaseId) ?? 0) + 1);
  return rows.map((r) => ({
    id: r.id,
    version: r.version,
    createdAt: Number(r.created_at),
    hasSbom: r.sbom !== null,
    devices: running.get(r.id) ?? 0,
  }));
}

async function activeRollouts(db: Db): Promise<FirmwareComplianceFacts['activeRollouts']> {
  const rows = await db
    .selectFrom('firmware_rollouts')
    .selectAll()
    .where('status', 'not in', FINISHED)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    release: r.release_id,
    status: r.status,
    phases: settingsOf(r).phases.map((p) => ({ percent: p.percent })),
  }));
}

export async function firmwareComplianceFacts(
  db: Db,
  inServiceIds: () => Promise<string[]>,
): Promise<FirmwareComplianceFacts> {
  const devices = await deviceStates(db, new Set(await inServiceIds()));
  const [meta, refresh, rels, rollouts] = await Promise.all([
    metadata(db),
    autoRefresh(db),
    releases(db, devices),
    activeRollouts(db),
  ]);
  return { metadata: meta, autoRefresh: refresh, releases: rels, activeRollouts: rollouts, devices };
}
