import type { FirmwareStatus } from '@bulwark/protocol';
import { actorOf, subjectOf } from '../events/index.ts';
import { advance, recordFailure, recordSuccess, sendTo, settingsOf } from './rollout.advance.ts';
import type { RolloutContext } from './rollout.deps.ts';
import { failedAttempt, reportOutcome } from './rollout.progress.ts';
import { activeRows, rolloutRow, setDevice } from './rollout.store.ts';

/** What devices tell the rollouts: update steps (`firmware/status`) and what they run (`firmware/state`). */

/** A report outside any rollout (an update the device was given another way) is only recorded. */
async function reportOutsideRollout(ctx: RolloutContext, deviceId: string, status: FirmwareStatus) {
  const common = { actor: actorOf.device(deviceId), subject: subjectOf.device(deviceId) };
  if (status.step === 'succeeded')
    await ctx.deps.events.emit({
      type: 'firmware.update_succeeded',
      ...common,
      data: { target: status.target },
    });
  else if (status.step === 'failed')
    await ctx.deps.events.emit({
      type: 'firmware.update_failed',
      ...common,
      data: {
        target: status.target,
        reason: status.reason ?? 'internal',
        ...(status.detail ? { detail: status.detail } : {}),
      },
    });
}

async function reportInRollout(
  ctx: RolloutContext,
  deviceId: string,
  status: FirmwareStatus & { rolloutId: string },
) {
  const { deps } = ctx;
  const [d] = await activeRows(deps.db, deviceId, status.rolloutId);
  if (!d) return; // unknown, or the rollout is over
  const r = await rolloutRow(deps.db, d.rollout_id);
  const release = await deps.releases.get(r.release_id);
  const outcome = reportOutcome(d, status, release.targetPath);
  const at = { rolloutId: r.id, deviceId, target: release.targetPath };
  if (outcome.type === 'ignore') return;
  if (outcome.type === 'step') {
    await setDevice(deps.db, {
      rolloutId: r.id,
      deviceId,
      changes: { status: 'in_progress', step: outcome.step },
      now: deps.now(),
    });
    return;
  }
  if (outcome.type === 'succeeded') await recordSuccess(ctx, { ...at, attempt: d.attempts });
  else await recordFailure(ctx, at, failedAttempt(d, outcome, { settings: settingsOf(r), now: deps.now() }));
  await advance(ctx, r.id);
}

/** A device's report of one update step (MQTT `devices/{id}/firmware/status`). */
export async function reportStatus(
  ctx: RolloutContext,
  deviceId: string,
  status: FirmwareStatus,
): Promise<void> {
  await ctx.exclusive(async () => {
    const { rolloutId } = status;
    if (rolloutId) await reportInRollout(ctx, deviceId, { ...status, rolloutId });
    else await reportOutsideRollout(ctx, deviceId, status);
  });
}

/**
 * A device (re)connected and said what it runs: a command it may have missed while offline is sent again;
 * if it already runs the rollout's image, that counts as success.
 */
export async function deviceOnline(ctx: RolloutContext, deviceId: string, installedTarget: string | null) {
  const { deps } = ctx;
  await ctx.exclusive(async () => {
    for (const d of await activeRows(deps.db, deviceId)) {
      const r = await rolloutRow(deps.db, d.rollout_id);
      if (r.status !== 'running' || (d.status !== 'sent' && d.status !== 'in_progress')) continue;
      const release = await deps.releases.get(r.release_id);
      const at = { rolloutId: r.id, deviceId, target: release.targetPath };
      if (installedTarget === release.targetPath) {
        await recordSuccess(ctx, { ...at, attempt: d.attempts });
        await advance(ctx, r.id);
      } else if (d.status === 'sent') {
        await sendTo(ctx, at, { row: d, resend: true });
      }
    }
  });
}
