import { randomUUID } from 'node:crypto';
import { BulwarkError, type FirmwareCommand, type FirmwareStatus } from '@bulwark/protocol';
import type { Device } from '../devices/index.ts';
import type { EventBus } from '../events/index.ts';
import type { Db, DbOrTx, FirmwareRolloutDevicesTable, FirmwareRolloutsTable } from '../store/index.ts';
import type { ReleaseService } from './release.service.ts';
import type { Release } from './release.types.ts';
import {
  assignPhases,
  checkSettings,
  finalStatuses,
  gateTripped,
  inWindow,
  rolloutDeviceStatuses,
  type RolloutDeviceStatus,
  type RolloutSelector,
  type RolloutSettings,
  type RolloutStatus,
} from './rollout.plan.ts';

export interface RolloutServiceDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  releases: Pick<ReleaseService, 'get'>;
  devices: {
    list(filter: { group?: string; status?: string; limit?: number; after?: string }): Promise<Device[]>;
  };
  /** True when the current signed targets metadata lists this image (devices would refuse it otherwise). */
  isSigned(targetPath: string, sha256: string): Promise<boolean>;
  /** Sends the install command to a device (MQTT, QoS 1); a device offline gets it again when it reports its state. */
  send(deviceId: string, command: FirmwareCommand): Promise<void>;
  /** False in a process without the broker (the CLI): commands are left for the server to send. */
  canSend(): boolean;
  /** A device sent a command that reports nothing for this long counts as a failed attempt. */
  deviceTimeoutMs: number;
  /** The zone of each device, for selectors by zone (absent: zone selectors are refused). */
  zoneResolver?: (() => Promise<(device: Device) => string | null>) | undefined;
  /** Called when sending or ticking fails in the background. */
  onError?: (err: unknown) => void;
}

export interface PhaseSummary {
  phase: number;
  percent: number;
  soakMs: number;
  devices: number;
  pending: number;
  inProgress: number;
  succeeded: number;
  failed: number;
  skipped: number;
}

export interface Rollout {
  id: string;
  releaseId: string;
  release: { name: string; version: string; targetPath: string };
  selector: RolloutSelector;
  settings: RolloutSettings;
  status: RolloutStatus;
  currentPhase: number;
  phaseStartedAt: number;
  phaseDoneAt: number | null;
  pauseReason: string | null;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
  phases: PhaseSummary[];
}

export interface RolloutDevice {
  deviceId: string;
  phase: number;
  status: RolloutDeviceStatus;
  step: string | null;
  attempts: number;
  reason: string | null;
  detail: string | null;
  updatedAt: number;
}

export interface NewRollout {
  release: string;
  selector: RolloutSelector;
  settings: Partial<RolloutSettings> & Pick<RolloutSettings, 'phases'>;
}

const defaults = { failureThreshold: 10, maxRetries: 2, retryDelayMs: 60_000, requireApproval: false };

const toDevice = (r: FirmwareRolloutDevicesTable): RolloutDevice => ({
  deviceId: r.device_id,
  phase: r.phase,
  status: r.status as RolloutDeviceStatus,
  step: r.step,
  attempts: r.attempts,
  reason: r.reason,
  detail: r.detail,
  updatedAt: r.updated_at,
});

const isFinal = (status: string) => (finalStatuses as readonly string[]).includes(status);

/**
 * Staged rollouts: a release goes to the targeted devices in phases; each phase waits until its devices are
 * done and its soak time has passed (and, if asked, for an approval); a failure rate above the threshold
 * pauses the rollout by itself. Devices that fail are retried a bounded number of times.
 */
export function createRolloutService(deps: RolloutServiceDeps) {
  const { db, events, now } = deps;
  // One tick or report at a time in this process; conditional writes guard against other nodes.
  let serial: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const next = serial.then(work, work);
    serial = next.catch(() => undefined);
    return next;
  };

  async function row(q: DbOrTx, id: string): Promise<FirmwareRolloutsTable> {
    const r =
      typeof id === 'string' && id.length <= 64
        ? await q.selectFrom('firmware_rollouts').selectAll().where('id', '=', id).executeTakeFirst()
        : undefined;
    if (!r) throw new BulwarkError('not_found', `rollout ${id} does not exist`);
    return r;
  }

  async function deviceRows(
    q: DbOrTx,
    rolloutId: string,
    phase?: number,
  ): Promise<FirmwareRolloutDevicesTable[]> {
    let query = q
      .selectFrom('firmware_rollout_devices')
      .selectAll()
      .where('rollout_id', '=', rolloutId)
      .orderBy('position');
    if (phase !== undefined) query = query.where('phase', '=', phase);
    return query.execute();
  }

  async function describe(r: FirmwareRolloutsTable): Promise<Rollout> {
    const settings = JSON.parse(r.settings) as RolloutSettings;
    const release = await deps.releases.get(r.release_id);
    const counts = await db
      .selectFrom('firmware_rollout_devices')
      .select(['phase', 'status', (eb) => eb.fn.countAll<number>().as('n')])
      .where('rollout_id', '=', r.id)
      .groupBy(['phase', 'status'])
      .execute();
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

  async function resolveDevices(selector: RolloutSelector): Promise<string[]> {
    const hasSelector =
      selector.all === true ||
      (selector.groups?.length ?? 0) > 0 ||
      (selector.zones?.length ?? 0) > 0 ||
      (selector.devices?.length ?? 0) > 0 ||
      Object.keys(selector.attributes ?? {}).length > 0;
    if (!hasSelector)
      throw new BulwarkError(
        'validation_failed',
        'name the devices: all, groups, zones, device ids and/or attributes',
      );
    const found: Device[] = [];
    const groups = selector.groups?.length ? selector.groups : [undefined];
    for (const group of groups) {
      let after: string | undefined;
      for (;;) {
        const page = await deps.devices.list({
          status: 'active',
          limit: 1000,
          ...(group ? { group } : {}),
          ...(after ? { after } : {}),
        });
        found.push(...page);
        if (page.length < 1000) break;
        after = page[page.length - 1]?.id;
      }
    }
    const ids = selector.devices ? new Set(selector.devices) : undefined;
    const attributes = Object.entries(selector.attributes ?? {});
    let inZone: (d: Device) => boolean = () => true;
    if (selector.zones?.length) {
      if (!deps.zoneResolver) throw new BulwarkError('validation_failed', 'zones are not available here');
      const zoneOf = await deps.zoneResolver();
      const wanted = new Set(selector.zones);
      inZone = (d) => wanted.has(zoneOf(d) ?? '');
    }
    return [
      ...new Set(
        found
          .filter((d) => !ids || ids.has(d.id))
          .filter((d) => attributes.every(([k, v]) => d.attributes[k] === v))
          .filter(inZone)
          .map((d) => d.id),
      ),
    ];
  }

  async function setRollout(
    q: DbOrTx,
    id: string,
    changes: Partial<Omit<FirmwareRolloutsTable, 'id'>>,
    onlyIfStatus: RolloutStatus[],
  ): Promise<boolean> {
    const result = await q
      .updateTable('firmware_rollouts')
      .set({ ...changes, updated_at: now() })
      .where('id', '=', id)
      .where('status', 'in', onlyIfStatus)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async function setDevice(
    q: DbOrTx,
    rolloutId: string,
    deviceId: string,
    changes: Partial<Omit<FirmwareRolloutDevicesTable, 'rollout_id' | 'device_id'>>,
  ): Promise<void> {
    await q
      .updateTable('firmware_rollout_devices')
      .set({ ...changes, updated_at: now() })
      .where('rollout_id', '=', rolloutId)
      .where('device_id', '=', deviceId)
      .execute();
  }

  /** A failed attempt: retried after the delay while attempts remain, final otherwise. */
  async function failAttempt(
    r: FirmwareRolloutsTable,
    d: FirmwareRolloutDevicesTable,
    reason: string,
    detail: string | undefined,
    target: string,
  ): Promise<void> {
    const settings = JSON.parse(r.settings) as RolloutSettings;
    const final = d.attempts > settings.maxRetries;
    await setDevice(db, r.id, d.device_id, {
      status: final ? 'failed' : 'pending',
      step: 'failed',
      reason,
      detail: detail ?? null,
      next_attempt_at: final ? null : now() + settings.retryDelayMs,
    });
    await events.emit({
      type: 'firmware.update_failed',
      actor: `device:${d.device_id}`,
      subject: `device:${d.device_id}`,
      data: {
        target,
        reason,
        rolloutId: r.id,
        attempt: d.attempts,
        ...(detail ? { detail } : {}),
      },
    });
  }

  async function sendTo(
    r: FirmwareRolloutsTable,
    release: Release,
    d: FirmwareRolloutDevicesTable,
    resend = false,
  ) {
    const attempt = resend ? d.attempts : d.attempts + 1;
    const t = now();
    await setDevice(db, r.id, d.device_id, {
      status: 'sent',
      attempts: attempt,
      sent_at: resend ? (d.sent_at ?? t) : t,
      next_attempt_at: null,
      ...(resend ? {} : { step: null, reason: null, detail: null }),
    });
    try {
      await deps.send(d.device_id, { type: 'install', target: release.targetPath, rolloutId: r.id, attempt });
    } catch (err) {
      deps.onError?.(err); // the device gets it again when it next reports its state, or times out
    }
  }

  /** Advances one rollout as far as it can go now. */
  async function advance(id: string): Promise<void> {
    for (let guard = 0; guard < 25; guard++) {
      const r = await row(db, id);
      if (r.status !== 'running') return;
      const settings = JSON.parse(r.settings) as RolloutSettings;
      const release = await deps.releases.get(r.release_id);
      const t = now();
      const phase = r.current_phase;
      const rows = await deviceRows(db, id, phase);

      // Devices that went quiet after a command: a failed attempt.
      for (const d of rows) {
        if (
          (d.status === 'sent' || d.status === 'in_progress') &&
          (d.sent_at ?? t) + deps.deviceTimeoutMs <= t
        )
          await failAttempt(
            r,
            d,
            'timeout',
            `no report within ${deps.deviceTimeoutMs} ms`,
            release.targetPath,
          );
      }
      let current = await deviceRows(db, id, phase);

      const failed = current.filter((d) => d.status === 'failed').length;
      // Skipped devices (in another rollout, wrong hardware) were never tried: they do not dilute the rate.
      const tried = current.filter((d) => d.status !== 'skipped').length;
      if (gateTripped(failed, r.accepted_failures, tried, settings.failureThreshold)) {
        const rate = Math.round((failed / Math.max(1, tried)) * 1000) / 10;
        if (
          await setRollout(
            db,
            id,
            {
              status: 'paused',
              pause_reason: `failure rate ${rate}% in phase ${phase + 1} is above the threshold of ${settings.failureThreshold}%`,
            },
            ['running'],
          )
        )
          await events.emit({
            type: 'rollout.paused',
            actor: 'system',
            subject: `rollout:${id}`,
            data: {
              reason: 'failure_threshold',
              phase,
              automatic: true,
              failureRate: rate,
              threshold: settings.failureThreshold,
            },
          });
        return;
      }

      if (release.status !== 'ready') {
        await setRollout(db, id, { status: 'paused', pause_reason: `release is ${release.status}` }, [
          'running',
        ]);
        await events.emit({
          type: 'rollout.paused',
          actor: 'system',
          subject: `rollout:${id}`,
          data: { reason: `release_${release.status}`, phase, automatic: true },
        });
        return;
      }

      if (deps.canSend() && inWindow(settings.maintenanceWindow, t)) {
        for (const d of current)
          if (d.status === 'pending' && (d.next_attempt_at ?? 0) <= t) await sendTo(r, release, d);
        current = await deviceRows(db, id, phase);
      }

      if (!current.every((d) => isFinal(d.status))) return;
      let doneAt = r.phase_done_at;
      if (doneAt === null) {
        doneAt = t;
        await setRollout(db, id, { phase_done_at: t }, ['running']);
      }
      const soak = settings.phases[phase]?.soakMs ?? 0;
      if (t - doneAt < soak) return;

      if (phase >= settings.phases.length - 1) {
        if (await setRollout(db, id, { status: 'completed' }, ['running'])) {
          const all = await deviceRows(db, id);
          const count = (s: string) => all.filter((d) => d.status === s).length;
          await events.emit({
            type: 'rollout.completed',
            actor: 'system',
            subject: `rollout:${id}`,
            data: { succeeded: count('succeeded'), failed: count('failed'), skipped: count('skipped') },
          });
        }
        return;
      }
      if (settings.requireApproval) {
        if (await setRollout(db, id, { status: 'waiting_approval' }, ['running']))
          await events.emit({
            type: 'rollout.waiting_approval',
            actor: 'system',
            subject: `rollout:${id}`,
            data: { phase },
          });
        return;
      }
      await startPhase(id, phase + 1, 'running');
    }
  }

  async function startPhase(id: string, phase: number, from: RolloutStatus): Promise<void> {
    const r = await row(db, id);
    const settings = JSON.parse(r.settings) as RolloutSettings;
    if (
      await setRollout(
        db,
        id,
        {
          status: 'running',
          current_phase: phase,
          phase_started_at: now(),
          phase_done_at: null,
          pause_reason: null,
          accepted_failures: 0,
        },
        [from],
      )
    ) {
      const devices = (await deviceRows(db, id, phase)).length;
      await events.emit({
        type: 'rollout.phase_started',
        actor: 'system',
        subject: `rollout:${id}`,
        data: { phase, percent: settings.phases[phase]?.percent ?? 100, devices },
      });
    }
  }

  async function activeRows(deviceId: string, rolloutId?: string) {
    let query = db
      .selectFrom('firmware_rollout_devices as d')
      .innerJoin('firmware_rollouts as r', 'r.id', 'd.rollout_id')
      .selectAll('d')
      .where('d.device_id', '=', deviceId)
      .where('r.status', 'in', ['running', 'paused', 'waiting_approval']);
    if (rolloutId) query = query.where('d.rollout_id', '=', rolloutId);
    return query.execute();
  }

  const service = {
    async create(input: NewRollout, actor: string): Promise<Rollout> {
      const release = await deps.releases.get(input.release);
      if (release.status !== 'ready')
        throw new BulwarkError('conflict', `release ${release.name}@${release.version} is ${release.status}`);
      if (!(await deps.isSigned(release.targetPath, release.sha256)))
        throw new BulwarkError(
          'conflict',
          `release ${release.name}@${release.version} is not in the signed targets metadata yet: sign and publish targets first`,
        );
      const settings = checkSettings({
        ...defaults,
        maintenanceWindow: null,
        ...input.settings,
      });
      const deviceIds = await resolveDevices(input.selector);
      if (deviceIds.length === 0)
        throw new BulwarkError('validation_failed', 'the selector matches no active device');
      const id = randomUUID();
      const t = now();
      const plan = assignPhases(id, deviceIds, settings.phases);
      // A device already in another unfinished rollout is skipped here: one update at a time per device.
      const busy = new Set(
        (
          await db
            .selectFrom('firmware_rollout_devices as d')
            .innerJoin('firmware_rollouts as r', 'r.id', 'd.rollout_id')
            .select('d.device_id')
            .where('r.status', 'in', ['running', 'paused', 'waiting_approval'])
            .where('d.status', 'not in', ['succeeded', 'failed', 'skipped'])
            .execute()
        ).map((d) => d.device_id),
      );
      // A device known (from its state reports) to be other hardware would refuse the image: skip it rather
      // than count it as a failure against the gate.
      const fits = new Set(release.hardwareIds);
      const otherHardware = new Set(
        (await db.selectFrom('firmware_device_state').select(['device_id', 'hardware_id']).execute())
          .filter((d) => !fits.has(d.hardware_id))
          .map((d) => d.device_id),
      );
      const skipReason = (deviceId: string) =>
        busy.has(deviceId) ? 'in_another_rollout' : otherHardware.has(deviceId) ? 'hardware_mismatch' : null;
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('firmware_rollouts')
          .values({
            id,
            release_id: release.id,
            selector: JSON.stringify(input.selector),
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
          })
          .execute();
        for (let i = 0; i < plan.length; i += 500)
          await trx
            .insertInto('firmware_rollout_devices')
            .values(
              plan.slice(i, i + 500).map((p) => ({
                rollout_id: id,
                device_id: p.deviceId,
                phase: p.phase,
                position: p.position,
                status: skipReason(p.deviceId) ? 'skipped' : 'pending',
                step: null,
                attempts: 0,
                reason: skipReason(p.deviceId),
                detail: null,
                sent_at: null,
                next_attempt_at: null,
                updated_at: t,
              })),
            )
            .execute();
      });
      await events.emit({
        type: 'rollout.created',
        actor,
        subject: `rollout:${id}`,
        data: {
          releaseId: release.id,
          target: release.targetPath,
          devices: deviceIds.length,
          phases: settings.phases.map((p) => p.percent),
        },
      });
      await events.emit({
        type: 'rollout.phase_started',
        actor: 'system',
        subject: `rollout:${id}`,
        data: {
          phase: 0,
          percent: settings.phases[0]?.percent ?? 100,
          devices: plan.filter((p) => p.phase === 0).length,
        },
      });
      await exclusive(() => advance(id));
      return describe(await row(db, id));
    },

    get: async (id: string) => describe(await row(db, id)),

    async list(filter: { status?: string | undefined; limit?: number | undefined } = {}): Promise<Rollout[]> {
      let query = db
        .selectFrom('firmware_rollouts')
        .selectAll()
        .orderBy('created_at', 'desc')
        .limit(filter.limit ?? 100);
      if (filter.status) query = query.where('status', '=', filter.status);
      return Promise.all((await query.execute()).map(describe));
    },

    async devices(
      id: string,
      filter: {
        phase?: number | undefined;
        status?: string | undefined;
        /** Only devices of these groups (a user limited to groups). */
        groupsIn?: readonly string[] | undefined;
      } = {},
    ): Promise<RolloutDevice[]> {
      await row(db, id);
      let visible: (deviceId: string) => boolean = () => true;
      if (filter.groupsIn) {
        const groups = filter.groupsIn;
        const ids = new Set(
          groups.length === 0
            ? []
            : (await db.selectFrom('devices').select('id').where('group_name', 'in', groups).execute()).map(
                (d) => d.id,
              ),
        );
        visible = (deviceId) => ids.has(deviceId);
      }
      return (await deviceRows(db, id))
        .filter((d) => visible(d.device_id))
        .filter((d) => filter.phase === undefined || d.phase === filter.phase)
        .filter((d) => filter.status === undefined || d.status === filter.status)
        .map(toDevice);
    },

    async pause(id: string, actor: string, reason?: string): Promise<Rollout> {
      return exclusive(async () => {
        const r = await row(db, id);
        if (
          !(await setRollout(db, id, { status: 'paused', pause_reason: reason ?? `paused by ${actor}` }, [
            'running',
            'waiting_approval',
          ]))
        )
          throw new BulwarkError(
            'conflict',
            `rollout ${id} is ${r.status}: only a running rollout can be paused`,
          );
        await events.emit({
          type: 'rollout.paused',
          actor,
          subject: `rollout:${id}`,
          data: { reason: reason ?? 'manual', phase: r.current_phase, automatic: false },
        });
        return describe(await row(db, id));
      });
    },

    /**
     * Resumes a paused rollout. The failures that tripped the gate count as accepted; with `retryFailed` the
     * failed devices of the current phase get fresh attempts instead.
     */
    async resume(id: string, actor: string, options: { retryFailed?: boolean } = {}): Promise<Rollout> {
      await exclusive(async () => {
        const r = await row(db, id);
        if (r.status !== 'paused')
          throw new BulwarkError('conflict', `rollout ${id} is ${r.status}, not paused`);
        const rows = await deviceRows(db, id, r.current_phase);
        if (options.retryFailed) {
          for (const d of rows)
            if (d.status === 'failed')
              await setDevice(db, id, d.device_id, { status: 'pending', attempts: 0, next_attempt_at: null });
        }
        const accepted = options.retryFailed ? 0 : rows.filter((d) => d.status === 'failed').length;
        if (
          !(await setRollout(db, id, { status: 'running', pause_reason: null, accepted_failures: accepted }, [
            'paused',
          ]))
        )
          throw new BulwarkError('conflict', `rollout ${id} changed state; try again`);
        await events.emit({
          type: 'rollout.resumed',
          actor,
          subject: `rollout:${id}`,
          data: { phase: r.current_phase },
        });
        await advance(id);
      });
      return service.get(id);
    },

    /** Lets a rollout waiting between phases go on to the next one. */
    async approve(id: string, actor: string): Promise<Rollout> {
      await exclusive(async () => {
        const r = await row(db, id);
        if (r.status !== 'waiting_approval')
          throw new BulwarkError('conflict', `rollout ${id} is ${r.status}: nothing to approve`);
        await events.emit({
          type: 'rollout.approved',
          actor,
          subject: `rollout:${id}`,
          data: { phase: r.current_phase },
        });
        await startPhase(id, r.current_phase + 1, 'waiting_approval');
        await advance(id);
      });
      return service.get(id);
    },

    async abort(id: string, actor: string, reason?: string): Promise<Rollout> {
      return exclusive(async () => {
        const r = await row(db, id);
        if (
          !(await setRollout(db, id, { status: 'aborted', pause_reason: reason ?? null }, [
            'running',
            'paused',
            'waiting_approval',
          ]))
        )
          throw new BulwarkError('conflict', `rollout ${id} is already ${r.status}`);
        await db
          .updateTable('firmware_rollout_devices')
          .set({ status: 'skipped', reason: 'aborted', updated_at: now() })
          .where('rollout_id', '=', id)
          .where('status', '=', 'pending')
          .execute();
        await events.emit({
          type: 'rollout.aborted',
          actor,
          subject: `rollout:${id}`,
          data: reason ? { reason } : {},
        });
        return describe(await row(db, id));
      });
    },

    /** Advances every running rollout (called on an interval, and by tests). */
    async tick(): Promise<void> {
      const running = await db
        .selectFrom('firmware_rollouts')
        .select('id')
        .where('status', '=', 'running')
        .execute();
      for (const { id } of running) await exclusive(() => advance(id));
    },

    /** A device's report of one update step (MQTT `devices/{id}/firmware/status`). */
    async report(deviceId: string, status: FirmwareStatus): Promise<void> {
      await exclusive(async () => {
        if (!status.rolloutId) {
          if (status.step === 'succeeded' || status.step === 'failed')
            await events.emit(
              status.step === 'succeeded'
                ? {
                    type: 'firmware.update_succeeded',
                    actor: `device:${deviceId}`,
                    subject: `device:${deviceId}`,
                    data: { target: status.target },
                  }
                : {
                    type: 'firmware.update_failed',
                    actor: `device:${deviceId}`,
                    subject: `device:${deviceId}`,
                    data: {
                      target: status.target,
                      reason: status.reason ?? 'internal',
                      ...(status.detail ? { detail: status.detail } : {}),
                    },
                  },
            );
          return;
        }
        const [d] = await activeRows(deviceId, status.rolloutId);
        if (!d || isFinal(d.status) || d.status === 'pending') return; // late, duplicate or unknown
        if (status.attempt !== undefined && status.attempt !== d.attempts) return; // an earlier attempt's report
        const r = await row(db, d.rollout_id);
        const release = await deps.releases.get(r.release_id);
        if (status.target !== release.targetPath) return;
        if (status.step === 'succeeded') {
          await setDevice(db, r.id, deviceId, {
            status: 'succeeded',
            step: 'succeeded',
            reason: null,
            detail: null,
          });
          await events.emit({
            type: 'firmware.update_succeeded',
            actor: `device:${deviceId}`,
            subject: `device:${deviceId}`,
            data: { target: status.target, rolloutId: r.id, attempt: d.attempts },
          });
        } else if (status.step === 'failed') {
          await failAttempt(r, d, status.reason ?? 'internal', status.detail, release.targetPath);
        } else {
          // An intermediate step changes no gate and finishes no phase.
          await setDevice(db, r.id, deviceId, { status: 'in_progress', step: status.step });
          return;
        }
        await advance(r.id);
      });
    },

    /**
     * A device (re)connected and said what it runs: a command it may have missed while offline is sent again;
     * if it already runs the rollout's image, that counts as success.
     */
    async deviceOnline(deviceId: string, installedTarget: string | null): Promise<void> {
      await exclusive(async () => {
        for (const d of await activeRows(deviceId)) {
          const r = await row(db, d.rollout_id);
          if (r.status !== 'running' || (d.status !== 'sent' && d.status !== 'in_progress')) continue;
          const release = await deps.releases.get(r.release_id);
          if (installedTarget === release.targetPath) {
            await setDevice(db, r.id, deviceId, { status: 'succeeded', step: 'succeeded' });
            await events.emit({
              type: 'firmware.update_succeeded',
              actor: `device:${deviceId}`,
              subject: `device:${deviceId}`,
              data: { target: release.targetPath, rolloutId: r.id, attempt: d.attempts },
            });
            await advance(r.id);
          } else if (d.status === 'sent') {
            await sendTo(r, release, d, true);
          }
        }
      });
    },
  };
  return service;
}

export type RolloutService = ReturnType<typeof createRolloutService>;
