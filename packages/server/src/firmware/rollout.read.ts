import type { FirmwareRolloutsTable } from '../store/index.ts';
import { settingsOf } from './rollout.advance.ts';
import type { RolloutContext } from './rollout.deps.ts';
import {
  rolloutDeviceStatuses,
  type RolloutDeviceStatus,
  type RolloutSelector,
  type RolloutStatus,
} from './rollout.plan.ts';
import { deviceRows, listRows, phaseCounts, rolloutRow } from './rollout.store.ts';
import { toRolloutDevice, type PhaseSummary, type Rollout, type RolloutDevice } from './rollout.types.ts';

/** What operators read about rollouts: the rollout with its phase counts, and its devices. */

export async function describeRollout(ctx: RolloutContext, r: FirmwareRolloutsTable): Promise<Rollout> {
  const { deps } = ctx;
  const settings = settingsOf(r);
  const release = await deps.releases.get(r.release_id);
  const counts = await phaseCounts(deps.db, r.id);
  const phases = settings.phases.map((p, phase): PhaseSummary => {
    const of = (...statuses: RolloutDeviceStatus[]) =>
      counts
        .filter((c) => c.phase === phase && statuses.includes(c.status as RolloutDeviceStatus))
        .reduce((sum, c) => sum + Number(c.n), 0);
    return {
      phase,
      percent: p.percent,
      soakMs: p.soakMs,
      devices: of(...rolloutDeviceStatuses),
      pending: of('pending'),
      inProgress: of('sent', 'in_progress'),
      succeeded: of('succeeded'),
      failed: of('failed'),
      skipped: of('skipped'),
    };
  });
  return {
    id: r.id,
    releaseId: r.release_id,
    release: { name: release.name, version: release.version, targetPath: release.targetPath },
    selector: JSON.parse(r.selector) as RolloutSelector,
    settings,
    status: r.status as RolloutStatus,
    currentPhase: r.current_phase,
    phaseStartedAt: r.phase_started_at,
    phaseDoneAt: r.phase_done_at,
    pauseReason: r.pause_reason,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    phases,
  };
}

export async function getRollout(ctx: RolloutContext, id: string): Promise<Rollout> {
  return describeRollout(ctx, await rolloutRow(ctx.deps.db, id));
}

export async function listRollouts(
  ctx: RolloutContext,
  filter: { status?: string | undefined; limit?: number | undefined } = {},
): Promise<Rollout[]> {
  return Promise.all((await listRows(ctx.deps.db, filter)).map((r) => describeRollout(ctx, r)));
}

export interface RolloutDeviceFilter {
  phase?: number | undefined;
  status?: string | undefined;
  /** Only devices of these groups (a user limited to groups). */
  groupsIn?: readonly string[] | undefined;
}

async function visibleIn(ctx: RolloutContext, groupsIn: readonly string[] | undefined) {
  if (!groupsIn) return () => true;
  const ids = new Set(
    groupsIn.length === 0
      ? []
      : (
          await ctx.deps.db.selectFrom('devices').select('id').where('group_name', 'in', groupsIn).execute()
        ).map((d) => d.id),
  );
  return (deviceId: string) => ids.has(deviceId);
}

export async function rolloutDevices(
  ctx: RolloutContext,
  id: string,
  filter: RolloutDeviceFilter = {},
): Promise<RolloutDevice[]> {
  await rolloutRow(ctx.deps.db, id);
  const visible = await visibleIn(ctx, filter.groupsIn);
  return (await deviceRows(ctx.deps.db, id))
    .filter((d) => visible(d.device_id))
    .filter((d) => filter.phase === undefined || d.phase === filter.phase)
    .filter((d) => filter.status === undefined || d.status === filter.status)
    .map(toRolloutDevice);
}
