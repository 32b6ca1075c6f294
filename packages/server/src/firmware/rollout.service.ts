import type { FirmwareStatus } from '@bulwark/protocol';
import { advance } from './rollout.advance.ts';
import { abortRollout, approveRollout, pauseRollout, resumeRollout } from './rollout.control.ts';
import { createRollout } from './rollout.create.ts';
import { createRolloutContext, type RolloutServiceDeps } from './rollout.deps.ts';
import { getRollout, listRollouts, rolloutDevices, type RolloutDeviceFilter } from './rollout.read.ts';
import { deviceOnline, reportStatus } from './rollout.reports.ts';
import { runningIds } from './rollout.store.ts';
import type { NewRollout, Rollout } from './rollout.types.ts';

export type { RolloutServiceDeps } from './rollout.deps.ts';
export type { Rollout, RolloutDevice, NewRollout, PhaseSummary } from './rollout.types.ts';

/**
 * Staged rollouts: a release goes to the targeted devices in phases; each phase waits until its devices are
 * done and its soak time has passed (and, if asked, for an approval); a failure rate above the threshold
 * pauses the rollout by itself. Devices that fail are retried a bounded number of times. The rules are the
 * pure `nextSteps` (rollout.progress.ts); the use cases here load state and apply what it decides.
 */
export function createRolloutService(deps: RolloutServiceDeps) {
  const ctx = createRolloutContext(deps);
  return {
    create: (input: NewRollout, actor: string): Promise<Rollout> => createRollout(ctx, input, actor),
    get: (id: string) => getRollout(ctx, id),
    list: (filter: { status?: string | undefined; limit?: number | undefined } = {}) =>
      listRollouts(ctx, filter),
    devices: (id: string, filter: RolloutDeviceFilter = {}) => rolloutDevices(ctx, id, filter),
    pause: (id: string, actor: string, reason?: string) => pauseRollout(ctx, id, { actor, reason }),
    resume: (id: string, actor: string, options: { retryFailed?: boolean } = {}) =>
      resumeRollout(ctx, id, { actor, retryFailed: options.retryFailed }),
    approve: (id: string, actor: string) => approveRollout(ctx, id, actor),
    abort: (id: string, actor: string, reason?: string) => abortRollout(ctx, id, { actor, reason }),
    /** Advances every running rollout (called on an interval, and by tests). */
    async tick(): Promise<void> {
      for (const id of await runningIds(deps.db)) await ctx.exclusive(() => advance(ctx, id));
    },
    /** A device's report of one update step (MQTT `devices/{id}/firmware/status`). */
    report: (deviceId: string, status: FirmwareStatus) => reportStatus(ctx, deviceId, status),
    /** A device (re)connected and said what it runs (MQTT `devices/{id}/firmware/state`). */
    deviceOnline: (deviceId: string, installedTarget: string | null) =>
      deviceOnline(ctx, deviceId, installedTarget),
  };
}

export type RolloutService = ReturnType<typeof createRolloutService>;
