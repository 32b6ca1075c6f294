import type { FirmwareStatus } from '@bulwark/protocol';
import {
  finalStatuses,
  gateTripped,
  inWindow,
  type RolloutDeviceStatus,
  type RolloutSettings,
  type RolloutStatus,
} from './rollout.plan.ts';

/**
 * Rollout progress as a pure function: `nextSteps(state, now)` says what a rollout does next from plain state
 * (its settings, its current phase and that phase's devices). The service loads the state, applies the actions
 * (writes, commands, events) and asks again after a new phase starts. No I/O here.
 */

/** One device of the current phase, as progress sees it. */
export interface ProgressDevice {
  deviceId: string;
  status: RolloutDeviceStatus;
  attempts: number;
  sentAt: number | null;
  nextAttemptAt: number | null;
}

export interface ProgressState {
  status: RolloutStatus;
  settings: RolloutSettings;
  /** The current phase (0-based). */
  phase: number;
  phaseDoneAt: number | null;
  /** Failures of the phase an operator accepted when resuming: the gate counts only new ones. */
  acceptedFailures: number;
  /** The release's status: only a `ready` release goes on. */
  releaseStatus: string;
  /** The devices of the current phase. */
  devices: ProgressDevice[];
  /** False in a process without the broker: commands wait for the server. */
  canSend: boolean;
  /** A device sent a command that reports nothing for this long counts as a failed attempt. */
  deviceTimeoutMs: number;
}

/** A failed attempt: retried after the delay while attempts remain, final otherwise. */
export interface AttemptFailure {
  reason: string;
  detail: string | undefined;
  /** The attempt that failed (the device's attempt counter). */
  attempt: number;
  final: boolean;
  nextAttemptAt: number | null;
}

export type RolloutAction =
  | ({ type: 'fail_attempt'; deviceId: string } & AttemptFailure)
  | { type: 'send'; deviceId: string; attempt: number }
  | {
      type: 'pause';
      /** Machine-readable reason (the event's). */
      reason: string;
      /** What the operator reads. */
      message: string;
      failureRate?: number;
      threshold?: number;
    }
  | { type: 'phase_done'; at: number }
  | { type: 'complete' }
  | { type: 'wait_approval' }
  | { type: 'start_phase'; phase: number };

export const isFinal = (status: string) => (finalStatuses as readonly string[]).includes(status);

/** The outcome of a failed attempt (`attempts` counts the attempt that failed). */
export function failedAttempt(
  device: { attempts: number },
  failure: { reason: string; detail?: string | undefined },
  context: { settings: Pick<RolloutSettings, 'maxRetries' | 'retryDelayMs'>; now: number },
): AttemptFailure {
  const final = device.attempts > context.settings.maxRetries;
  return {
    reason: failure.reason,
    detail: failure.detail,
    attempt: device.attempts,
    final,
    nextAttemptAt: final ? null : context.now + context.settings.retryDelayMs,
  };
}

/** Devices that went quiet after a command: each a failed attempt. */
function timeouts(state: ProgressState, devices: ProgressDevice[], now: number): RolloutAction[] {
  const actions: RolloutAction[] = [];
  for (const d of devices) {
    const waiting = d.status === 'sent' || d.status === 'in_progress';
    if (!waiting || (d.sentAt ?? now) + state.deviceTimeoutMs > now) continue;
    const failure = failedAttempt(
      d,
      { reason: 'timeout', detail: `no report within ${state.deviceTimeoutMs} ms` },
      { settings: state.settings, now },
    );
    actions.push({ type: 'fail_attempt', deviceId: d.deviceId, ...failure });
    d.status = failure.final ? 'failed' : 'pending';
    d.nextAttemptAt = failure.nextAttemptAt;
  }
  return actions;
}

/** The failure gate: a pause when too much of the phase failed. */
function gate(state: ProgressState, devices: ProgressDevice[]): RolloutAction | undefined {
  const failed = devices.filter((d) => d.status === 'failed').length;
  // Skipped devices (in another rollout, wrong hardware) were never tried: they do not dilute the rate.
  const tried = devices.filter((d) => d.status !== 'skipped').length;
  const threshold = state.settings.failureThreshold;
  if (!gateTripped({ failed, accepted: state.acceptedFailures, phaseSize: tried, threshold }))
    return undefined;
  const rate = Math.round((failed / Math.max(1, tried)) * 1000) / 10;
  return {
    type: 'pause',
    reason: 'failure_threshold',
    message: `failure rate ${rate}% in phase ${state.phase + 1} is above the threshold of ${threshold}%`,
    failureRate: rate,
    threshold,
  };
}

/** Commands for the devices due one (inside the maintenance window, after any retry delay). */
function sends(state: ProgressState, devices: ProgressDevice[], now: number): RolloutAction[] {
  if (!state.canSend || !inWindow(state.settings.maintenanceWindow, now)) return [];
  const actions: RolloutAction[] = [];
  for (const d of devices) {
    if (d.status !== 'pending' || (d.nextAttemptAt ?? 0) > now) continue;
    actions.push({ type: 'send', deviceId: d.deviceId, attempt: d.attempts + 1 });
    d.status = 'sent';
  }
  return actions;
}

/** Once every device of the phase is done and the soak time passed: the next phase, approval, or the end. */
function afterPhase(state: ProgressState, now: number): RolloutAction[] {
  const actions: RolloutAction[] = [];
  let doneAt = state.phaseDoneAt;
  if (doneAt === null) {
    doneAt = now;
    actions.push({ type: 'phase_done', at: now });
  }
  const { phases, requireApproval } = state.settings;
  if (now - doneAt < (phases[state.phase]?.soakMs ?? 0)) return actions;
  if (state.phase >= phases.length - 1) actions.push({ type: 'complete' });
  else if (requireApproval) actions.push({ type: 'wait_approval' });
  else actions.push({ type: 'start_phase', phase: state.phase + 1 });
  return actions;
}

/**
 * What a running rollout does now, in order: time out quiet devices, pause on a tripped gate or a release
 * that is no longer ready, send due commands, and once the phase is done and soaked, go on. A rollout that
 * is not running does nothing. After `start_phase`, ask again with the new phase's state.
 */
export function nextSteps(state: ProgressState, now: number): RolloutAction[] {
  if (state.status !== 'running') return [];
  const devices = state.devices.map((d) => ({ ...d }));
  const actions = timeouts(state, devices, now);
  const tripped = gate(state, devices);
  if (tripped) return [...actions, tripped];
  if (state.releaseStatus !== 'ready')
    return [
      ...actions,
      {
        type: 'pause',
        reason: `release_${state.releaseStatus}`,
        message: `release is ${state.releaseStatus}`,
      },
    ];
  actions.push(...sends(state, devices, now));
  if (!devices.every((d) => isFinal(d.status))) return actions;
  return [...actions, ...afterPhase(state, now)];
}

/** What a device's report of one update step does to its rollout entry. */
export type ReportOutcome =
  | { type: 'ignore' }
  | { type: 'succeeded' }
  | { type: 'failed'; reason: string; detail: string | undefined }
  | { type: 'step'; step: string };

/**
 * A report counts only for the device's current attempt at the rollout's image; late, duplicate and unknown
 * reports change nothing. Intermediate steps change no gate and finish no phase.
 */
export function reportOutcome(
  device: { status: string; attempts: number } | undefined,
  report: FirmwareStatus,
  targetPath: string,
): ReportOutcome {
  if (!device || isFinal(device.status) || device.status === 'pending') return { type: 'ignore' };
  if (report.attempt !== undefined && report.attempt !== device.attempts) return { type: 'ignore' };
  if (report.target !== targetPath) return { type: 'ignore' };
  if (report.step === 'succeeded') return { type: 'succeeded' };
  if (report.step === 'failed')
    return { type: 'failed', reason: report.reason ?? 'internal', detail: report.detail };
  return { type: 'step', step: report.step };
}
