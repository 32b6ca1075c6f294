import { BulwarkError } from '@bulwark/protocol';
import { subjectOf } from '../events/index.ts';
import { advance, settingsOf, startPhaseIn } from './rollout.advance.ts';
import type { RolloutContext } from './rollout.deps.ts';
import { getRollout } from './rollout.read.ts';
import { deviceRows, rolloutRow, setDevice, setRollout, skipPending, unfinished } from './rollout.store.ts';
import type { Rollout } from './rollout.types.ts';

/** What an operator does to a rollout: pause, resume, approve the next phase, abort. Each with its event. */

export async function pauseRollout(
  ctx: RolloutContext,
  id: string,
  by: { actor: string; reason?: string | undefined },
): Promise<Rollout> {
  const { deps } = ctx;
  return ctx.exclusive(async () => {
    const r = await rolloutRow(deps.db, id);
    await deps.events.atomically(async (tx, emit) => {
      const paused = await setRollout(tx, {
        id,
        changes: { status: 'paused', pause_reason: by.reason ?? `paused by ${by.actor}` },
        onlyIfStatus: ['running', 'waiting_approval'],
        now: deps.now(),
      });
      if (!paused)
        throw new BulwarkError(
          'conflict',
          `rollout ${id} is ${r.status}: only a running rollout can be paused`,
        );
      emit({
        type: 'rollout.paused',
        actor: by.actor,
        subject: subjectOf.rollout(id),
        data: { reason: by.reason ?? 'manual', phase: r.current_phase, automatic: false },
      });
    });
    return getRollout(ctx, id);
  });
}

/**
 * Resumes a paused rollout. The failures that tripped the gate count as accepted; with `retryFailed` the
 * failed devices of the current phase get fresh attempts instead.
 */
export async function resumeRollout(
  ctx: RolloutContext,
  id: string,
  by: { actor: string; retryFailed?: boolean | undefined },
): Promise<Rollout> {
  const { deps } = ctx;
  await ctx.exclusive(async () => {
    const r = await rolloutRow(deps.db, id);
    if (r.status !== 'paused') throw new BulwarkError('conflict', `rollout ${id} is ${r.status}, not paused`);
    const failed = (await deviceRows(deps.db, id, r.current_phase)).filter((d) => d.status === 'failed');
    await deps.events.atomically(async (tx, emit) => {
      const now = deps.now();
      if (by.retryFailed)
        for (const d of failed)
          await setDevice(tx, {
            rolloutId: id,
            deviceId: d.device_id,
            changes: { status: 'pending', attempts: 0, next_attempt_at: null },
            now,
          });
      const accepted = by.retryFailed ? 0 : failed.length;
      const changes = { status: 'running', pause_reason: null, accepted_failures: accepted };
      if (!(await setRollout(tx, { id, changes, onlyIfStatus: ['paused'], now })))
        throw new BulwarkError('conflict', `rollout ${id} changed state; try again`);
      emit({
        type: 'rollout.resumed',
        actor: by.actor,
        subject: subjectOf.rollout(id),
        data: { phase: r.current_phase },
      });
    });
    await advance(ctx, id);
  });
  return getRollout(ctx, id);
}

/** Lets a rollout waiting between phases go on to the next one. */
export async function approveRollout(ctx: RolloutContext, id: string, actor: string): Promise<Rollout> {
  const { deps } = ctx;
  await ctx.exclusive(async () => {
    const r = await rolloutRow(deps.db, id);
    if (r.status !== 'waiting_approval')
      throw new BulwarkError('conflict', `rollout ${id} is ${r.status}: nothing to approve`);
    await deps.events.atomically(async (tx, emit) => {
      emit({
        type: 'rollout.approved',
        actor,
        subject: subjectOf.rollout(id),
        data: { phase: r.current_phase },
      });
      await startPhaseIn(tx, emit, {
        id,
        phase: r.current_phase + 1,
        from: 'waiting_approval',
        settings: settingsOf(r),
        now: deps.now(),
      });
    });
    await advance(ctx, id);
  });
  return getRollout(ctx, id);
}

export async function abortRollout(
  ctx: RolloutContext,
  id: string,
  by: { actor: string; reason?: string | undefined },
): Promise<Rollout> {
  const { deps } = ctx;
  return ctx.exclusive(async () => {
    const r = await rolloutRow(deps.db, id);
    await deps.events.atomically(async (tx, emit) => {
      const now = deps.now();
      const changes = { status: 'aborted', pause_reason: by.reason ?? null };
      if (!(await setRollout(tx, { id, changes, onlyIfStatus: unfinished, now })))
        throw new BulwarkError('conflict', `rollout ${id} is already ${r.status}`);
      await skipPending(tx, id, now);
      emit({
        type: 'rollout.aborted',
        actor: by.actor,
        subject: subjectOf.rollout(id),
        data: by.reason ? { reason: by.reason } : {},
      });
    });
    return getRollout(ctx, id);
  });
}
