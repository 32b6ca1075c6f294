import { randomUUID } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';
import type { Device } from '../devices/index.ts';
import { subjectOf } from '../events/index.ts';
import { advance } from './rollout.advance.ts';
import type { RolloutContext, RolloutServiceDeps } from './rollout.deps.ts';
import { assignPhases, checkSettings, type RolloutSelector, type RolloutSettings } from './rollout.plan.ts';
import { getRollout } from './rollout.read.ts';
import { busyDevices, insertRollout } from './rollout.store.ts';
import type { NewRollout, Rollout } from './rollout.types.ts';
import type { Release } from './release.types.ts';

const defaults = { failureThreshold: 10, maxRetries: 2, retryDelayMs: 60_000, requireApproval: false };
const PAGE = 1000;

function hasSelector(selector: RolloutSelector): boolean {
  return (
    selector.all === true ||
    (selector.groups?.length ?? 0) > 0 ||
    (selector.zones?.length ?? 0) > 0 ||
    (selector.devices?.length ?? 0) > 0 ||
    Object.keys(selector.attributes ?? {}).length > 0
  );
}

/** Every active device (of the groups named), page by page. */
async function activeDevices(deps: RolloutServiceDeps, groups: string[] | undefined): Promise<Device[]> {
  const found: Device[] = [];
  for (const group of groups?.length ? groups : [undefined]) {
    let after: string | undefined;
    for (;;) {
      const page = await deps.devices.list({
        status: 'active',
        limit: PAGE,
        ...(group ? { group } : {}),
        ...(after ? { after } : {}),
      });
      found.push(...page);
      if (page.length < PAGE) break;
      after = page[page.length - 1]?.id;
    }
  }
  return found;
}

async function zoneFilter(deps: RolloutServiceDeps, zones: string[] | undefined) {
  if (!zones?.length) return () => true;
  if (!deps.zoneResolver) throw new BulwarkError('validation_failed', 'zones are not available here');
  const zoneOf = await deps.zoneResolver();
  const wanted = new Set(zones);
  return (d: Device) => wanted.has(zoneOf(d) ?? '');
}

/** The active devices a selector names (its parts combine: AND). */
export async function resolveDevices(deps: RolloutServiceDeps, selector: RolloutSelector): Promise<string[]> {
  if (!hasSelector(selector))
    throw new BulwarkError(
      'validation_failed',
      'name the devices: all, groups, zones, device ids and/or attributes',
    );
  const found = await activeDevices(deps, selector.groups);
  const ids = selector.devices ? new Set(selector.devices) : undefined;
  const attributes = Object.entries(selector.attributes ?? {});
  const inZone = await zoneFilter(deps, selector.zones);
  const matches = found
    .filter((d) => !ids || ids.has(d.id))
    .filter((d) => attributes.every(([k, v]) => d.attributes[k] === v))
    .filter(inZone);
  return [...new Set(matches.map((d) => d.id))];
}

async function rolloutRelease(deps: RolloutServiceDeps, ref: string): Promise<Release> {
  const release = await deps.releases.get(ref);
  if (release.status !== 'ready')
    throw new BulwarkError('conflict', `release ${release.name}@${release.version} is ${release.status}`);
  if (!(await deps.isSigned(release.targetPath, release.sha256)))
    throw new BulwarkError(
      'conflict',
      `release ${release.name}@${release.version} is not in the signed targets metadata yet: sign and publish targets first`,
    );
  return release;
}

/**
 * Why a device is skipped: one already in another unfinished rollout (one update at a time per device), or
 * one known from its state reports to be other hardware (it would refuse the image; not a failure).
 */
async function skipReasons(deps: RolloutServiceDeps, release: Release) {
  const busy = await busyDevices(deps.db);
  const fits = new Set(release.hardwareIds);
  const states = await deps.db
    .selectFrom('firmware_device_state')
    .select(['device_id', 'hardware_id'])
    .execute();
  const otherHardware = new Set(states.filter((d) => !fits.has(d.hardware_id)).map((d) => d.device_id));
  return (deviceId: string) =>
    busy.has(deviceId) ? 'in_another_rollout' : otherHardware.has(deviceId) ? 'hardware_mismatch' : null;
}

interface Plan {
  id: string;
  release: Release;
  input: NewRollout;
  settings: RolloutSettings;
  deviceIds: string[];
  skipReason: (deviceId: string) => string | null;
}

/** The rollout, its device plan, and its two events, in one transaction. */
async function store(ctx: RolloutContext, plan: Plan, actor: string): Promise<void> {
  const { deps } = ctx;
  const { id, release, settings } = plan;
  const t = deps.now();
  const phases = assignPhases(id, plan.deviceIds, settings.phases);
  const rollout = {
    id,
    release_id: release.id,
    selector: JSON.stringify(plan.input.selector),
    settings: JSON.stringify(settings),
    status: 'running',
    current_phase: 0,
    phase_started_at: t,
    phase_done_at: null,
    pause_reason: null,
    accepted_failures: 0,
    created_by: actor,
    created_at: t,
    updated_at: t,
  };
  const devices = phases.map((p) => ({
    rollout_id: id,
    device_id: p.deviceId,
    phase: p.phase,
    position: p.position,
    status: plan.skipReason(p.deviceId) ? 'skipped' : 'pending',
    step: null,
    attempts: 0,
    reason: plan.skipReason(p.deviceId),
    detail: null,
    sent_at: null,
    next_attempt_at: null,
    updated_at: t,
  }));
  await deps.events.atomically(async (tx, emit) => {
    await insertRollout(tx, rollout, devices);
    const subject = subjectOf.rollout(id);
    emit({
      type: 'rollout.created',
      actor,
      subject,
      data: {
        releaseId: release.id,
        target: release.targetPath,
        devices: plan.deviceIds.length,
        phases: settings.phases.map((p) => p.percent),
      },
    });
    emit({
      type: 'rollout.phase_started',
      actor: 'system',
      subject,
      data: {
        phase: 0,
        percent: settings.phases[0]?.percent ?? 100,
        devices: phases.filter((p) => p.phase === 0).length,
      },
    });
  });
}

/** Starts a rollout of a ready, signed release to the devices its selector names. */
export async function createRollout(ctx: RolloutContext, input: NewRollout, actor: string): Promise<Rollout> {
  const { deps } = ctx;
  const release = await rolloutRelease(deps, input.release);
  const settings = checkSettings({ ...defaults, maintenanceWindow: null, ...input.settings });
  const deviceIds = await resolveDevices(deps, input.selector);
  if (deviceIds.length === 0)
    throw new BulwarkError('validation_failed', 'the selector matches no active device');
  const id = randomUUID();
  const skipReason = await skipReasons(deps, release);
  await store(ctx, { id, release, input, settings, deviceIds, skipReason }, actor);
  await ctx.exclusive(() => advance(ctx, id));
  return getRollout(ctx, id);
}
