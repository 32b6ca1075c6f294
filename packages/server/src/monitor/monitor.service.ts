import { BulwarkError, type DeviceMetricsReport } from '@bulwark/protocol';
import {
  createEventRateLimit,
  deviceIdOf,
  subjectOf,
  type AuditEntry,
  type EventBus,
  type EventRateLimit,
} from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { createAlertService, type Alert, type AlertService } from './alert.service.ts';
import { createEngine, type Engine, type Finding } from './engine.ts';
import type { DeviceMeter } from './meter.ts';
import { monitorComplianceFacts } from './monitor.facts.ts';
import { loadState, saveState } from './monitor-state.ts';
import { effectiveProfile, type EffectiveProfile, type ResponseAction } from './profile.ts';
import { createProfileService, type ProfileService } from './profile.service.ts';
import {
  execute,
  responsesFor,
  runAutomatic,
  type ResponderDeps,
  type ResponseActions,
} from './responses.ts';

export { responsePermissions, type ResponseActions } from './responses.ts';
export type { MonitorComplianceFacts } from './monitor.facts.ts';

export interface MonitorDeps {
  db: Db;
  /** Changes commit with their events (`atomically`); `emit` only for events that change nothing here. */
  events: Pick<EventBus, 'emit' | 'subscribe' | 'atomically'>;
  now: () => number;
  settings: { tickInterval: number; saveInterval: number; baselineInterval: number; silentAfter: number };
  /** The device's group and zone (for profile attachments); undefined for an unknown device. */
  deviceInfo(
    deviceId: string,
  ): Promise<{ group: string | null; zone: string | null; quarantined?: boolean } | undefined>;
  /** What responses do (quarantine through access, revoke through the PKI, …), bound by the composition root. */
  actions: ResponseActions;
  /** Whether the user exists and is not disabled (the users door): alerts are assigned only to such users. */
  isActiveUser(username: string): Promise<boolean>;
  /** The fleet's device groups with their devices in service (the devices door's `groups()`), for the facts. */
  groups?: (() => Promise<{ group: string; devices: number }[]>) | undefined;
  onError(err: unknown, what: string): void;
}

/** The monitor's parts, shared by the use cases below. */
interface Parts {
  deps: MonitorDeps;
  engine: Engine;
  alerts: AlertService;
  profiles: ProfileService;
  /** The profiles in effect: those attached to all, and each known device's. */
  resolved: { global: EffectiveProfile; devices: Map<string, EffectiveProfile> };
  responder: ResponderDeps;
  counters: {
    raised: Map<string, number>;
    responses: number;
    responseFailures: number;
    ticks: number;
    tickMs: number;
  };
  rejected: EventRateLimit;
}

const profileOf = (p: Parts, alert: Pick<Alert, 'deviceId'>): EffectiveProfile =>
  (alert.deviceId && p.resolved.devices.get(alert.deviceId)) || p.resolved.global;

/** A finding becomes an alert (or a repeat of an open one); a new alert runs its automatic responses. */
function raiseFinding(p: Parts, finding: Finding): void {
  p.alerts
    .raise(finding)
    .then(({ alert, created }) => {
      if (!created) return;
      p.counters.raised.set(finding.detector, (p.counters.raised.get(finding.detector) ?? 0) + 1);
      return runAutomatic(p.responder, alert, profileOf(p, alert));
    })
    .catch((err: unknown) => p.deps.onError(err, `raising ${finding.detector} for ${finding.subject}`));
}

async function resolveProfile(p: Parts, deviceId: string): Promise<void> {
  const [all, info] = await Promise.all([p.profiles.list(), p.deps.deviceInfo(deviceId)]);
  const profile = effectiveProfile(all, { deviceId, group: info?.group, zone: info?.zone });
  p.resolved.devices.set(deviceId, profile);
  p.engine.setProfile(deviceId, profile, info?.group ?? null);
}

async function refreshAll(p: Parts): Promise<void> {
  p.resolved.global = effectiveProfile(await p.profiles.list(), {});
  // Let the broker breathe between slices: the store may answer synchronously (SQLite), and a profile
  // change re-resolves every known device.
  let n = 0;
  for (const id of p.engine.knownDevices()) {
    await resolveProfile(p, id);
    if (++n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Every event: the detectors, and what the monitor itself follows (releases, profile inputs, resolutions). */
function onEntry(p: Parts, entry: AuditEntry): void {
  const { engine, deps } = p;
  engine.onEvent(entry);
  if (entry.type === 'alert.resolved' && entry.actor !== 'system')
    engine.forget(entry.data.detector, entry.subject ?? '');
  const deviceId = deviceIdOf(entry.subject);
  if (entry.type === 'device.released' && deviceId)
    p.alerts
      .releaseHeld(deviceId, entry.actor)
      .catch((err: unknown) => deps.onError(err, 'resolving alerts of a released device'));
  if (entry.type === 'device.updated' && deviceId && engine.hasProfile(deviceId))
    resolveProfile(p, deviceId).catch((err: unknown) => deps.onError(err, 'profile'));
  if (entry.type === 'zone.updated' || entry.type === 'zone.deleted')
    refreshAll(p).catch((err: unknown) => deps.onError(err, 'profiles'));
}

/** A ban that expired by itself (no `firewall.ban_removed`) no longer locks anyone out: its alert is resolved. */
async function resolveExpiredBans(p: Parts): Promise<void> {
  const t = p.deps.now();
  for (const alert of await p.alerts.list({ detector: 'firewall_ban', status: ['open', 'acknowledged'] }))
    if (typeof alert.evidence.expiresAt === 'number' && alert.evidence.expiresAt <= t)
      await p.alerts.autoResolve('firewall_ban', alert.subject, 'ban expired');
}

const save = (p: Parts) => saveState(p.deps.db, p.engine.dirtyState(), p.deps.now());

/** The engine's clock, and saving its state (with the expired bans' alerts) now and then. */
function startTimers(p: Parts): () => void {
  const { deps, counters } = p;
  const tickTimer = setInterval(() => {
    const t0 = performance.now();
    try {
      p.engine.tick(deps.now());
    } catch (err) {
      deps.onError(err, 'monitor tick');
    }
    counters.ticks += 1;
    counters.tickMs += performance.now() - t0;
  }, deps.settings.tickInterval);
  tickTimer.unref();
  const saveTimer = setInterval(() => {
    save(p).catch((err: unknown) => deps.onError(err, 'saving detector state'));
    resolveExpiredBans(p).catch((err: unknown) => deps.onError(err, 'resolving alerts of expired bans'));
  }, deps.settings.saveInterval);
  saveTimer.unref();
  return () => {
    clearInterval(tickTimer);
    clearInterval(saveTimer);
  };
}

/** A report that did not pass the schema (too large, not JSON, invalid): an event; it changes nothing. */
function rejectReport(p: Parts, deviceId: string, problem: string): void {
  const { record, suppressed } = p.rejected.admit(deviceId);
  if (record)
    p.deps.events
      .emit({
        type: 'device.metrics_rejected',
        actor: subjectOf.device(deviceId),
        subject: subjectOf.device(deviceId),
        data: { reason: problem, ...(suppressed ? { suppressed } : {}) },
      })
      .catch((err: unknown) => p.deps.onError(err, 'recording a rejected report'));
}

/** Runs a response by hand (the caller checked the operator's permission for it). */
async function respond(
  p: Parts,
  alertId: string,
  run: { action: ResponseAction; actor: string },
): Promise<Alert> {
  const alert = await p.alerts.get(alertId);
  if (alert.status === 'resolved') throw new BulwarkError('conflict', `alert ${alertId} is resolved`);
  // From the CLI, nothing is loaded yet: resolve the profiles that apply to this alert now.
  p.resolved.global = effectiveProfile(await p.profiles.list(), {});
  if (alert.deviceId) await resolveProfile(p, alert.deviceId);
  const rules = responsesFor(profileOf(p, alert), alert);
  const rule = rules.find((r) => r.action === run.action);
  if (!rule && run.action !== 'notify')
    throw new BulwarkError(
      'validation_failed',
      `${run.action} is not a response of this alert's profile (allowed: ${[...new Set(['notify', ...rules.map((r) => r.action)])].join(', ')})`,
    );
  await execute(p.responder, alert, { ...run, automatic: false, durationMs: rule?.duration });
  return p.alerts.get(alertId);
}

function createParts(deps: MonitorDeps): Parts {
  const { db, events, now, settings } = deps;
  const counters = {
    raised: new Map<string, number>(),
    responses: 0,
    responseFailures: 0,
    ticks: 0,
    tickMs: 0,
  };
  const alerts = createAlertService({
    db,
    events,
    now,
    groupOf: async (id) => (await deps.deviceInfo(id))?.group,
    isQuarantined: async (id) => (await deps.deviceInfo(id))?.quarantined === true,
    isActiveUser: (username) => deps.isActiveUser(username),
  });
  const resolved = { global: effectiveProfile([], {}), devices: new Map<string, EffectiveProfile>() };
  // The engine reports to the parts through `sink`, which needs them: bound once they exist.
  const engine = createEngine({
    globalProfile: () => resolved.global,
    silentAfterMs: settings.silentAfter,
    baselineIntervalMs: settings.baselineInterval,
    startedAt: now(),
    sink: {
      raise: (finding) => raiseFinding(parts, finding),
      clear: (detector, subject, resolution) => {
        alerts
          .autoResolve(detector, subject, resolution)
          .catch((err: unknown) => deps.onError(err, `resolving ${detector} for ${subject}`));
      },
    },
  });
  const parts: Parts = {
    deps,
    engine,
    alerts,
    profiles: createProfileService({ db, events, now }),
    resolved,
    counters,
    rejected: createEventRateLimit({ max: 5, windowMs: 60_000 }),
    responder: {
      alerts,
      now,
      actions: deps.actions,
      counters,
      addressOfDevice: (id) => {
        const seen = engine.describe(id);
        return seen?.connectedFrom.at(-1) ?? seen?.lastAddress ?? undefined;
      },
    },
  };
  return parts;
}

/**
 * Monitoring, detection and response: the engine sees every message (through the broker's meters) and
 * every security event; its findings become alerts; alerts trigger the responses their profiles name.
 */
export function createMonitor(deps: MonitorDeps) {
  const p = createParts(deps);
  const { engine, alerts, profiles } = p;
  let stopAll: (() => void) | undefined;
  return {
    engine,
    alerts,
    profiles,

    /** Restores saved detector state and starts following events and the clock. */
    async start(): Promise<void> {
      engine.restore({ ...(await loadState(deps.db)), openAlarms: await alerts.openKeys() });
      // Devices restored from saved state get their own profiles (not only those attached to all).
      await refreshAll(p);
      const unsubscribe = deps.events.subscribe((entry) => {
        try {
          onEntry(p, entry);
        } catch (err) {
          deps.onError(err, `monitoring ${entry.type}`);
        }
      });
      const stopProfiles = profiles.onChange(() => {
        refreshAll(p).catch((err: unknown) => deps.onError(err, 'profiles'));
      });
      const stopTimers = startTimers(p);
      stopAll = () => {
        unsubscribe();
        stopProfiles();
        stopTimers();
      };
    },

    async stop(): Promise<void> {
      stopAll?.();
      await save(p).catch((err: unknown) => deps.onError(err, 'saving detector state'));
    },

    /** The device's meter, with its profile's rules compiled, before the broker accepts its first message. */
    async attach(deviceId: string): Promise<DeviceMeter> {
      if (!engine.hasProfile(deviceId)) await resolveProfile(p, deviceId);
      return engine.meter(deviceId);
    },

    /** A report on `devices/{id}/metrics`, validated at the edge (the broker's ingress router). */
    handleReport(deviceId: string, report: DeviceMetricsReport): void {
      engine.onReport(deviceId, report, deps.now());
    },

    rejectReport: (deviceId: string, problem: string) => rejectReport(p, deviceId, problem),

    /** Responses an operator may run on this alert (its profile's manual and automatic ones, and notify). */
    availableResponses(alert: Alert): ResponseAction[] {
      const actions = responsesFor(profileOf(p, alert), alert).map((r) => r.action);
      return [...new Set<ResponseAction>([...actions, 'notify'])];
    },

    /** Runs a response by hand (the caller checked the operator's permission for it). */
    respond: (alertId: string, action: ResponseAction, actor: string) =>
      respond(p, alertId, { action, actor }),

    /** The device's group (null: none), or undefined when there is no such device. */
    async deviceGroup(deviceId: string): Promise<string | null | undefined> {
      const info = await deps.deviceInfo(deviceId);
      return info === undefined ? undefined : info.group;
    },

    /** The compliance engine's `monitor` source: profiles, fleet groups, alerts not resolved. */
    complianceFacts: () => monitorComplianceFacts({ db: deps.db, profiles, groups: deps.groups }),

    /** Figures for Prometheus. */
    stats() {
      const { counters } = p;
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
    'Made at first start: the built-in detectors at their defaults, and a device that floods or reports ' +
    'tampering is quarantined until an operator releases it. Change, detach or delete it as you see fit.',
  // tamper_report: a signed tamper report (enclosure opened, secure boot off, debug port on), IEC 62443-4-2 CR 3.11.
  responses: [{ action: 'quarantine', detectors: ['payload_flood', 'tamper_report'], mode: 'automatic' }],
};

/** Puts the default profile and attaches it to all devices (once, when the store is created). */
export async function installDefaultProfile(monitor: Pick<Monitor, 'profiles'>): Promise<void> {
  await monitor.profiles.put(DEFAULT_PROFILE_NAME, defaultProfileDocument, 'system');
  await monitor.profiles.attach(DEFAULT_PROFILE_NAME, { kind: 'all', target: '*' }, 'system');
}
