import { BulwarkError, type DeviceMetricsReport } from '@bulwark/protocol';
import {
  createEventRateLimit,
  deviceIdOf,
  subjectOf,
  type AuditEntry,
  type EventBus,
} from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { createAlertService, type Alert } from './alert.service.ts';
import type { BaselineState } from './baseline.ts';
import { createEngine, type Finding, type NoveltyState } from './engine.ts';
import type { DeviceMeter } from './meter.ts';
import { effectiveProfile, severityRank, type EffectiveProfile, type ResponseAction } from './profile.ts';
import { createProfileService } from './profile.service.ts';

/** What responses can do; the composition root binds them to the access, pki, firewall and user services. */
export interface ResponseActions {
  quarantine(deviceId: string, reason: string, actor: string): Promise<void>;
  revoke(deviceId: string, reason: string, actor: string): Promise<void>;
  banAddress(address: string, reason: string, ttlMs: number, actor: string): Promise<void>;
  disableUser(username: string, reason: string, actor: string): Promise<void>;
}

export interface MonitorDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'subscribe'>;
  now: () => number;
  settings: { tickInterval: number; saveInterval: number; baselineInterval: number; silentAfter: number };
  /** The device's group and zone (for profile attachments); undefined for an unknown device. */
  deviceInfo(
    deviceId: string,
  ): Promise<{ group: string | null; zone: string | null; quarantined?: boolean } | undefined>;
  onError(err: unknown, what: string): void;
}

/** The permission an operator needs to run each response by hand. */
export const responsePermissions = {
  quarantine: 'devices:quarantine',
  revoke: 'devices:revoke',
  ban_address: 'policies:write',
  disable_user: 'users:write',
  notify: 'alerts:write',
} as const satisfies Record<ResponseAction, string>;

const DEFAULT_BAN_MS = 3_600_000;

/**
 * Monitoring, detection and response: the engine sees every message (through the broker's meters) and
 * every security event; its findings become alerts; alerts trigger the responses their profiles name.
 */
export function createMonitor(deps: MonitorDeps) {
  const { db, events, now, settings } = deps;
  const startedAt = now();
  const profiles = createProfileService({ db, events, now });
  const alerts = createAlertService({
    db,
    events,
    now,
    groupOf: async (id) => (await deps.deviceInfo(id))?.group,
    isQuarantined: async (id) => (await deps.deviceInfo(id))?.quarantined === true,
  });
  let actions: ResponseActions | undefined;
  let globalProfile: EffectiveProfile = effectiveProfile([], {});
  const deviceProfiles = new Map<string, EffectiveProfile>();
  const counters = {
    raised: new Map<string, number>(),
    responses: 0,
    responseFailures: 0,
    ticks: 0,
    tickMs: 0,
  };

  const engine = createEngine({
    globalProfile: () => globalProfile,
    silentAfterMs: settings.silentAfter,
    baselineIntervalMs: settings.baselineInterval,
    startedAt,
    sink: { raise: raiseFinding, clear: resolveFinding },
  });

  /** A finding becomes an alert (or a repeat of an open one); a new alert runs its automatic responses. */
  function raiseFinding(finding: Finding): void {
    alerts
      .raise(finding)
      .then(({ alert, created }) => {
        if (!created) return;
        counters.raised.set(finding.detector, (counters.raised.get(finding.detector) ?? 0) + 1);
        return runAutomatic(alert);
      })
      .catch((err: unknown) => deps.onError(err, `raising ${finding.detector} for ${finding.subject}`));
  }

  function resolveFinding(detector: string, subject: string, resolution: string): void {
    alerts
      .autoResolve(detector, subject, resolution)
      .catch((err: unknown) => deps.onError(err, `resolving ${detector} for ${subject}`));
  }

  function profileOf(alert: Pick<Alert, 'deviceId'>): EffectiveProfile {
    return (alert.deviceId && deviceProfiles.get(alert.deviceId)) || globalProfile;
  }

  /** Responses of the alert's profile that answer this detector at this severity. */
  function responsesFor(alert: Alert, mode?: 'automatic' | 'manual') {
    return profileOf(alert).responses.filter(
      (r) =>
        (mode === undefined || r.mode === mode) &&
        (r.detectors.includes('*') || r.detectors.includes(alert.detector)) &&
        severityRank[alert.severity] >= severityRank[r.minSeverity],
    );
  }

  function addressOf(alert: Alert): string | undefined {
    if (alert.subject.startsWith('address:')) return alert.subject.slice(8);
    const e = alert.evidence;
    if (typeof e.address === 'string') return e.address;
    const addresses = Array.isArray(e.addresses) ? e.addresses : undefined;
    if (addresses && typeof addresses.at(-1) === 'string') return addresses.at(-1) as string;
    if (alert.deviceId) {
      const seen = engine.describe(alert.deviceId);
      return seen?.connectedFrom.at(-1) ?? seen?.lastAddress ?? undefined;
    }
    return undefined;
  }

  async function execute(
    alert: Alert,
    action: ResponseAction,
    automatic: boolean,
    actor: string,
    durationMs?: number,
  ) {
    const reason = `alert ${alert.id}: ${alert.title}`.slice(0, 250);
    let detail: string | undefined;
    try {
      if (action !== 'notify' && !actions) throw new Error('responses are not available yet');
      switch (action) {
        case 'quarantine':
        case 'revoke':
          if (!alert.deviceId)
            throw new BulwarkError('validation_failed', `${action} needs an alert about a device`);
          if (action === 'quarantine') await actions!.quarantine(alert.deviceId, reason, actor);
          else await actions!.revoke(alert.deviceId, reason, actor);
          detail = `device ${alert.deviceId}`;
          break;
        case 'ban_address': {
          const address = addressOf(alert);
          if (!address)
            throw new BulwarkError('validation_failed', 'the alert names no source address to ban');
          await actions!.banAddress(address, reason, durationMs ?? DEFAULT_BAN_MS, actor);
          detail = `address ${address}`;
          break;
        }
        case 'disable_user':
          if (!alert.subject.startsWith('user:'))
            throw new BulwarkError('validation_failed', 'disable_user needs an alert about a user');
          await actions!.disableUser(alert.subject.slice(5), reason, actor);
          detail = alert.subject;
          break;
        case 'notify':
          break;
      }
      counters.responses += 1;
      await alerts.recordResponse(alert.id, { at: now(), action, automatic, actor, ok: true, detail });
      await events.emit({
        type: 'response.executed',
        actor,
        subject: alert.subject,
        data: {
          alertId: alert.id,
          action,
          automatic,
          detector: alert.detector,
          severity: alert.severity,
          title: alert.title,
          ...(detail ? { detail } : {}),
        },
      });
    } catch (err) {
      counters.responseFailures += 1;
      await alerts.recordResponse(alert.id, {
        at: now(),
        action,
        automatic,
        actor,
        ok: false,
        detail: (err as Error).message.slice(0, 300),
      });
      await events.emit({
        type: 'response.failed',
        actor,
        subject: alert.subject,
        data: { alertId: alert.id, action, automatic, reason: (err as Error).message.slice(0, 300) },
      });
      if (!automatic) throw err;
    }
  }

  async function runAutomatic(alert: Alert) {
    for (const r of responsesFor(alert, 'automatic'))
      await execute(alert, r.action, true, 'system', r.duration);
  }

  async function resolveProfile(deviceId: string): Promise<void> {
    const [all, info] = await Promise.all([profiles.list(), deps.deviceInfo(deviceId)]);
    const profile = effectiveProfile(all, { deviceId, group: info?.group, zone: info?.zone });
    deviceProfiles.set(deviceId, profile);
    engine.setProfile(deviceId, profile, info?.group ?? null);
  }

  async function refreshAll(): Promise<void> {
    globalProfile = effectiveProfile(await profiles.list(), {});
    // Let the broker breathe between slices: the store may answer synchronously (SQLite), and a profile
    // change re-resolves every known device.
    let n = 0;
    for (const id of engine.knownDevices()) {
      await resolveProfile(id);
      if (++n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  let unsubscribe: (() => void) | undefined;
  let stopProfiles: (() => void) | undefined;
  let tickTimer: NodeJS.Timeout | undefined;
  let saveTimer: NodeJS.Timeout | undefined;
  const rejected = createEventRateLimit({ max: 5, windowMs: 60_000 });

  /** A ban that expired by itself (no `firewall.ban_removed`) no longer locks anyone out: its alert is resolved. */
  async function resolveExpiredBans(): Promise<void> {
    const t = now();
    for (const alert of await alerts.list({ detector: 'firewall_ban', status: ['open', 'acknowledged'] }))
      if (typeof alert.evidence.expiresAt === 'number' && alert.evidence.expiresAt <= t)
        await alerts.autoResolve('firewall_ban', alert.subject, 'ban expired');
  }

  async function save(): Promise<void> {
    const { novelty, baselines } = engine.dirtyState();
    const at = now();
    const rows = [
      ...novelty.map(([id, state]) => ({
        key: `novelty:${id}`,
        state: JSON.stringify(state),
        updated_at: at,
      })),
      { key: 'baselines', state: JSON.stringify(baselines), updated_at: at },
    ];
    for (let i = 0; i < rows.length; i += 200)
      await db
        .insertInto('monitor_state')
        .values(rows.slice(i, i + 200))
        .onConflict((oc) =>
          oc.column('key').doUpdateSet((eb) => ({
            state: eb.ref('excluded.state'),
            updated_at: eb.ref('excluded.updated_at'),
          })),
        )
        .execute();
  }

  return {
    engine,
    alerts,
    profiles,

    /** Binds responses to the services that carry them out (the PKI exists only once the server starts). */
    setActions(bound: ResponseActions) {
      actions = bound;
    },

    /** Restores saved detector state and starts following events and the clock. */
    async start(): Promise<void> {
      const rows = await db.selectFrom('monitor_state').selectAll().execute();
      const novelty: [string, NoveltyState][] = [];
      let baselines: Record<string, BaselineState> = {};
      for (const row of rows) {
        if (row.key === 'baselines') baselines = JSON.parse(row.state) as Record<string, BaselineState>;
        else if (row.key.startsWith('novelty:'))
          novelty.push([row.key.slice(8), JSON.parse(row.state) as NoveltyState]);
      }
      engine.restore({ novelty, baselines, openAlarms: await alerts.openKeys() });
      // Devices restored from saved state get their own profiles (not only those attached to all).
      await refreshAll();
      unsubscribe = events.subscribe((entry: AuditEntry) => {
        try {
          engine.onEvent(entry);
          if (entry.type === 'alert.resolved' && entry.actor !== 'system')
            engine.forget(entry.data.detector, entry.subject ?? '');
          const deviceId = deviceIdOf(entry.subject);
          if (entry.type === 'device.released' && deviceId)
            alerts
              .releaseHeld(deviceId, entry.actor)
              .catch((err: unknown) => deps.onError(err, 'resolving alerts of a released device'));
          if (entry.type === 'device.updated' && deviceId) {
            const id = deviceId;
            if (engine.hasProfile(id))
              resolveProfile(id).catch((err: unknown) => deps.onError(err, 'profile'));
          }
          if (entry.type === 'zone.updated' || entry.type === 'zone.deleted')
            refreshAll().catch((err: unknown) => deps.onError(err, 'profiles'));
        } catch (err) {
          deps.onError(err, `monitoring ${entry.type}`);
        }
      });
      stopProfiles = profiles.onChange(() => {
        refreshAll().catch((err: unknown) => deps.onError(err, 'profiles'));
      });
      tickTimer = setInterval(() => {
        const t0 = performance.now();
        try {
          engine.tick(now());
        } catch (err) {
          deps.onError(err, 'monitor tick');
        }
        counters.ticks += 1;
        counters.tickMs += performance.now() - t0;
      }, settings.tickInterval);
      tickTimer.unref();
      saveTimer = setInterval(() => {
        save().catch((err: unknown) => deps.onError(err, 'saving detector state'));
        resolveExpiredBans().catch((err: unknown) => deps.onError(err, 'resolving alerts of expired bans'));
      }, settings.saveInterval);
      saveTimer.unref();
    },

    async stop(): Promise<void> {
      unsubscribe?.();
      stopProfiles?.();
      if (tickTimer) clearInterval(tickTimer);
      if (saveTimer) clearInterval(saveTimer);
      await save().catch((err: unknown) => deps.onError(err, 'saving detector state'));
    },

    /** The device's meter, with its profile's rules compiled, before the broker accepts its first message. */
    async attach(deviceId: string): Promise<DeviceMeter> {
      if (!engine.hasProfile(deviceId)) await resolveProfile(deviceId);
      return engine.meter(deviceId);
    },

    /** A report on `devices/{id}/metrics`, validated at the edge (the broker's ingress router). */
    handleReport(deviceId: string, report: DeviceMetricsReport): void {
      engine.onReport(deviceId, report, now());
    },

    /** A report that did not pass the schema (too large, not JSON, invalid): an event; it changes nothing. */
    rejectReport(deviceId: string, problem: string): void {
      const { record, suppressed } = rejected.admit(deviceId);
      if (record)
        events
          .emit({
            type: 'device.metrics_rejected',
            actor: subjectOf.device(deviceId),
            subject: subjectOf.device(deviceId),
            data: { reason: problem, ...(suppressed ? { suppressed } : {}) },
          })
          .catch((err: unknown) => deps.onError(err, 'recording a rejected report'));
    },

    /** Responses an operator may run on this alert (its profile's manual and automatic ones, and notify). */
    availableResponses(alert: Alert): ResponseAction[] {
      return [...new Set<ResponseAction>([...responsesFor(alert).map((r) => r.action), 'notify'])];
    },

    /** Runs a response by hand (the caller checked the operator's permission for it). */
    async respond(alertId: string, action: ResponseAction, actor: string): Promise<Alert> {
      const alert = await alerts.get(alertId);
      if (alert.status === 'resolved') throw new BulwarkError('conflict', `alert ${alertId} is resolved`);
      // From the CLI, nothing is loaded yet: resolve the profiles that apply to this alert now.
      globalProfile = effectiveProfile(await profiles.list(), {});
      if (alert.deviceId) await resolveProfile(alert.deviceId);
      if (!responsesFor(alert).some((r) => r.action === action) && action !== 'notify')
        throw new BulwarkError(
          'validation_failed',
          `${action} is not a response of this alert's profile (allowed: ${[...new Set(['notify', ...responsesFor(alert).map((r) => r.action)])].join(', ')})`,
        );
      const rule = responsesFor(alert).find((r) => r.action === action);
      await execute(alert, action, false, actor, rule?.duration);
      return alerts.get(alertId);
    },

    /** The device's group (null: none), or undefined when there is no such device. */
    async deviceGroup(deviceId: string): Promise<string | null | undefined> {
      const info = await deps.deviceInfo(deviceId);
      return info === undefined ? undefined : info.group;
    },

    /** Figures for Prometheus. */
    stats() {
      return {
        ...engine.totals(),
        raised: [...counters.raised],
        responses: counters.responses,
        responseFailures: counters.responseFailures,
        tickSeconds: counters.tickMs / 1000,
        ticks: counters.ticks,
      };
    },
  };
}

export type Monitor = ReturnType<typeof createMonitor>;

/** The profile a new installation starts with (config `monitor.defaultProfile`; docs/monitoring.md). */
export const DEFAULT_PROFILE_NAME = 'default';
const defaultProfileDocument = {
  description:
    'Made at first start: the built-in detectors at their defaults, and a device that floods is quarantined ' +
    'until an operator releases it. Change, detach or delete it as you see fit.',
  responses: [{ action: 'quarantine', detectors: ['payload_flood'], mode: 'automatic' }],
};

/** Puts the default profile and attaches it to all devices (once, when the store is created). */
export async function installDefaultProfile(monitor: Pick<Monitor, 'profiles'>): Promise<void> {
  await monitor.profiles.put(DEFAULT_PROFILE_NAME, defaultProfileDocument, 'system');
  await monitor.profiles.attach(DEFAULT_PROFILE_NAME, 'all', '*', 'system');
}
