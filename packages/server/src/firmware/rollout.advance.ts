import { actorOf, subjectOf, type TxEmit } from '../events/index.ts';
import type { DbOrTx, FirmwareRolloutDevicesTable, FirmwareRolloutsTable } from '../store/index.ts';
import type { RolloutContext } from './rollout.deps.ts';
import type { RolloutSettings, RolloutStatus, RolloutDeviceStatus } from './rollout.plan.ts';
import {
  nextSteps,
  type AttemptFailure,
  type ProgressState,
  type RolloutAction,
} from './rollout.progress.ts';
import { deviceRows, rolloutRow, setDevice, setRollout } from './rollout.store.ts';

/** Applies what `nextSteps` decides: each state change is committed with its event (`events.atomically`). */

export const settingsOf = (r: FirmwareRolloutsTable) => JSON.parse(r.settings) as RolloutSettings;

/** Where a device's update stands: which rollout, device and image. */
export interface UpdateRef {
  rolloutId: string;
  deviceId: string;
  target: string;
}

/** Records a failed attempt and its `firmware.update_failed` event together. */
export async function recordFailure(ctx: RolloutContext, at: UpdateRef, failure: AttemptFailure) {
  const { deps } = ctx;
  await deps.events.atomically(async (tx, emit) => {
    await setDevice(tx, {
      rolloutId: at.rolloutId,
      deviceId: at.deviceId,
      now: deps.now(),
      changes: {
        status: failure.final ? 'failed' : 'pending',
        step: 'failed',
        reason: failure.reason,
        detail: failure.detail ?? null,
        next_attempt_at: failure.nextAttemptAt,
      },
    });
    emit({
      type: 'firmware.update_failed',
      actor: actorOf.device(at.deviceId),
      subject: subjectOf.device(at.deviceId),
      data: {
        target: at.target,
        reason: failure.reason,
        rolloutId: at.rolloutId,
        attempt: failure.attempt,
        ...(failure.detail ? { detail: failure.detail } : {}),
      },
    });
  });
}

/** Records a success and its `firmware.update_succeeded` event together. */
export async function recordSuccess(ctx: RolloutContext, at: UpdateRef & { attempt: number }) {
  const { deps } = ctx;
  await deps.events.atomically(async (tx, emit) => {
    await setDevice(tx, {
      rolloutId: at.rolloutId,
      deviceId: at.deviceId,
      now: deps.now(),
      changes: { status: 'succeeded', step: 'succeeded', reason: null, detail: null },
    });
    emit({
      type: 'firmware.update_succeeded',
      actor: actorOf.device(at.deviceId),
      subject: subjectOf.device(at.deviceId),
      data: { target: at.target, rolloutId: at.rolloutId, attempt: at.attempt },
    });
  });
}

/**
 * Sends the install command. A resend (the device reconnected) keeps the attempt and its start; a device that
 * does not get it receives it again when it next reports its state, or times out.
 */
export async function sendTo(
  ctx: RolloutContext,
  at: UpdateRef,
  device: { row: FirmwareRolloutDevicesTable; resend: boolean },
) {
  const { deps } = ctx;
  const { row: d, resend } = device;
  const attempt = resend ? d.attempts : d.attempts + 1;
  const t = deps.now();
  await setDevice(deps.db, {
    rolloutId: at.rolloutId,
    deviceId: at.deviceId,
    now: t,
    changes: {
      status: 'sent',
      attempts: attempt,
      sent_at: resend ? (d.sent_at ?? t) : t,
      next_attempt_at: null,
      ...(resend ? {} : { step: null, reason: null, detail: null }),
    },
  });
  try {
    await deps.send(at.deviceId, { type: 'install', target: at.target, rolloutId: at.rolloutId, attempt });
  } catch (err) {
    deps.onError?.(err);
  }
}

/** Starts a phase from a status (in the caller's transaction, with its event). */
export async function startPhaseIn(
  tx: DbOrTx,
  emit: TxEmit,
  start: { id: string; phase: number; from: RolloutStatus; settings: RolloutSettings; now: number },
): Promise<void> {
  const started = await setRollout(tx, {
    id: start.id,
    now: start.now,
    onlyIfStatus: [start.from],
    changes: {
      status: 'running',
      current_phase: start.phase,
      phase_started_at: start.now,
      phase_done_at: null,
      pause_reason: null,
      accepted_failures: 0,
    },
  });
  if (!started) return;
  const devices = (await deviceRows(tx, start.id, start.phase)).length;
  emit({
    type: 'rollout.phase_started',
    actor: 'system',
    subject: subjectOf.rollout(start.id),
    data: { phase: start.phase, percent: start.settings.phases[start.phase]?.percent ?? 100, devices },
  });
}

interface Round {
  rollout: FirmwareRolloutsTable;
  settings: RolloutSettings;
  target: string;
  rows: FirmwareRolloutDevicesTable[];
}

/** A conditional move of a running rollout to another status, with its event when it applied. */
async function moveRunning(
  ctx: RolloutContext,
  round: Round,
  move: {
    changes: Partial<FirmwareRolloutsTable>;
    event: (tx: DbOrTx, emit: TxEmit) => Promise<void> | void;
  },
) {
  const { deps } = ctx;
  await deps.events.atomically(async (tx, emit) => {
    const id = round.rollout.id;
    if (await setRollout(tx, { id, changes: move.changes, onlyIfStatus: ['running'], now: deps.now() }))
      await move.event(tx, emit);
  });
}

async function completed(tx: DbOrTx, emit: TxEmit, id: string) {
  const all = await deviceRows(tx, id);
  const count = (s: RolloutDeviceStatus) => all.filter((d) => d.status === s).length;
  emit({
    type: 'rollout.completed',
    actor: 'system',
    subject: subjectOf.rollout(id),
    data: { succeeded: count('succeeded'), failed: count('failed'), skipped: count('skipped') },
  });
}

async function applyAction(ctx: RolloutContext, round: Round, action: RolloutAction): Promise<void> {
  const id = round.rollout.id;
  const phase = round.rollout.current_phase;
  const subject = subjectOf.rollout(id);
  const at = (deviceId: string) => ({ rolloutId: id, deviceId, target: round.target });
  switch (action.type) {
    case 'fail_attempt':
      return recordFailure(ctx, at(action.deviceId), action);
    case 'send': {
      const row = round.rows.find((d) => d.device_id === action.deviceId);
      if (row) await sendTo(ctx, at(action.deviceId), { row, resend: false });
      return;
    }
    case 'pause': {
      const { reason, failureRate, threshold } = action;
      return moveRunning(ctx, round, {
        changes: { status: 'paused', pause_reason: action.message },
        event: (_tx, emit) =>
          emit({
            type: 'rollout.paused',
            actor: 'system',
            subject,
            data: {
              reason,
              phase,
              automatic: true,
              ...(failureRate !== undefined ? { failureRate } : {}),
              ...(threshold !== undefined ? { threshold } : {}),
            },
          }),
      });
    }
    case 'phase_done':
      await setRollout(ctx.deps.db, {
        id,
        changes: { phase_done_at: action.at },
        onlyIfStatus: ['running'],
        now: ctx.deps.now(),
      });
      return;
    case 'complete':
      return moveRunning(ctx, round, {
        changes: { status: 'completed' },
        event: (tx, emit) => completed(tx, emit, id),
      });
    case 'wait_approval':
      return moveRunning(ctx, round, {
        changes: { status: 'waiting_approval' },
        event: (_tx, emit) =>
          emit({ type: 'rollout.waiting_approval', actor: 'system', subject, data: { phase } }),
      });
    case 'start_phase':
      return ctx.deps.events.atomically((tx, emit) =>
        startPhaseIn(tx, emit, {
          id,
          phase: action.phase,
          from: 'running',
          settings: round.settings,
          now: ctx.deps.now(),
        }),
      );
  }
}

function progressState(ctx: RolloutContext, round: Round, releaseStatus: string): ProgressState {
  const r = round.rollout;
  return {
    status: r.status as RolloutStatus,
    settings: round.settings,
    phase: r.current_phase,
    phaseDoneAt: r.phase_done_at,
    acceptedFailures: r.accepted_failures,
    releaseStatus,
    devices: round.rows.map((d) => ({
      deviceId: d.device_id,
      status: d.status as RolloutDeviceStatus,
      attempts: d.attempts,
      sentAt: d.sent_at,
      nextAttemptAt: d.next_attempt_at,
    })),
    canSend: ctx.deps.canSend(),
    deviceTimeoutMs: ctx.deps.deviceTimeoutMs,
  };
}

/** Advances one rollout as far as it can go now (through as many phases as are done). */
export async function advance(ctx: RolloutContext, id: string): Promise<void> {
  const { deps } = ctx;
  for (let guard = 0; guard < 25; guard++) {
    const rollout = await rolloutRow(deps.db, id);
    if (rollout.status !== 'running') return;
    const release = await deps.releases.get(rollout.release_id);
    const round: Round = {
      rollout,
      settings: settingsOf(rollout),
      target: release.targetPath,
      rows: await deviceRows(deps.db, id, rollout.current_phase),
    };
    const actions = nextSteps(progressState(ctx, round, release.status), deps.now());
    for (const action of actions) await applyAction(ctx, round, action);
    if (actions.at(-1)?.type !== 'start_phase') return;
  }
}
