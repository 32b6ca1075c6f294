import type { DeviceMetricsReport } from '@bulwark/protocol';
import { deviceIdOf, type AuditEntry, type EventType } from '../events/index.ts';
import type { BaselineState } from './baseline.ts';
import {
  EMPTY_PROFILE,
  newDeviceState,
  newHistory,
  newNovelty,
  record,
  totalsOf,
  windows,
  type DeviceState,
  type NoveltyState,
} from './device-state.ts';
import {
  createDetectors,
  describeRules,
  type AnyDetector as Detector,
  type DetectorContext,
  type DeviceTick,
  type EngineSettings,
  type Finding,
} from './detectors/index.ts';
import { HOT, slot, type DeviceMeter } from './meter.ts';
import type { EffectiveProfile } from './profile.ts';

export type { Finding, Json } from './detectors/index.ts';
export type { NoveltyState } from './device-state.ts';
export { networkOf, topicShape } from './device-state.ts';

export interface EngineSink {
  raise(finding: Finding): void;
  /** The behaviour cleared: resolve the open alert for this detector and subject, if any. */
  clear(detector: string, subject: string, resolution: string): void;
}

export interface EngineDeps extends EngineSettings {
  sink: EngineSink;
  /** Built-in settings for subjects that are not devices (addresses, users): profiles attached to `all`. */
  globalProfile(): EffectiveProfile;
}

/** The engine's own state: the devices it follows, its clock, and its detectors with their event routes. */
interface Core {
  devices: Map<string, DeviceState>;
  detectors: readonly Detector[];
  routes: Map<EventType, Detector[]>;
  ctx: DetectorContext;
  clock: { now: number; lastTickAt: number };
}

function routesOf(detectors: readonly Detector[]): Map<EventType, Detector[]> {
  const routes = new Map<EventType, Detector[]>();
  for (const d of detectors)
    for (const type of d.consumes) {
      const list = routes.get(type) ?? [];
      list.push(d);
      routes.set(type, list);
    }
  return routes;
}

function createContext(
  deps: EngineDeps,
  core: Omit<Core, 'ctx' | 'routes' | 'detectors'>,
): DetectorContext & { bind(list: readonly Detector[]): void } {
  const { devices, clock } = core;
  const ctx: DetectorContext = {
    now: () => clock.now,
    known: (id) => devices.get(id),
    deviceCount: () => devices.size,
    device(id, at = clock.now) {
      let state = devices.get(id);
      if (!state) {
        state = newDeviceState(id, at, (meter) => onTrip(meter));
        devices.set(id, state);
      }
      return state;
    },
    // Until the service has resolved a device's profiles (a device restored at start that has not
    // connected yet), the profiles attached to `all` apply, not the built-in defaults.
    builtins: (state) =>
      (state && state.profile !== EMPTY_PROFILE ? state.profile : deps.globalProfile()).builtins,
    raise({ state, at, ...finding }) {
      if (state) state.alarms.add(finding.detector);
      deps.sink.raise({ ...finding, at: at ?? clock.now });
    },
    clear({ state, detector, subject, resolution }) {
      if (state && !state.alarms.delete(detector)) return;
      deps.sink.clear(detector, subject, resolution);
    },
    settings: {
      silentAfterMs: deps.silentAfterMs,
      baselineIntervalMs: deps.baselineIntervalMs,
      startedAt: deps.startedAt,
    },
  };
  let detectors: readonly Detector[] = [];
  const onTrip = (meter: DeviceMeter) => {
    const state = devices.get(meter.deviceId);
    if (state) for (const d of detectors) d.onTrip?.(state, ctx);
  };
  return Object.assign(ctx, {
    bind(list: readonly Detector[]) {
      detectors = list;
    },
  });
}

/** Sessions, before the detectors see a connection or its end (a clone is two sessions at once). */
function beforeEvent(core: Core, entry: AuditEntry, id: string) {
  if (entry.type === 'mqtt.connected') {
    const state = core.ctx.device(id, entry.ts);
    const address = entry.data.remoteAddress;
    state.sessions.set(address, (state.sessions.get(address) ?? 0) + 1);
    state.lastAddress = address;
    state.disconnectedAt = null;
    state.lastActivity = entry.ts;
    return;
  }
  if (entry.type !== 'mqtt.disconnected' && entry.type !== 'mqtt.session_dropped') return;
  const state = core.devices.get(id);
  if (!state) return;
  if (entry.type === 'mqtt.session_dropped') state.sessions.clear();
  else {
    const address = entry.data.remoteAddress;
    const n = (state.sessions.get(address) ?? 1) - 1;
    if (n <= 0) state.sessions.delete(address);
    else state.sessions.set(address, n);
  }
  if (state.sessions.size === 0) state.disconnectedAt = entry.ts;
}

/** The device's history, after the novelty detectors judged a connection against it; a device gone. */
function afterEvent(core: Core, entry: AuditEntry, id: string) {
  if (entry.type === 'mqtt.connected') {
    const state = core.ctx.device(id, entry.ts);
    const hour = new Date(entry.ts).getUTCHours();
    state.novelty.hours[hour] = (state.novelty.hours[hour] ?? 0) + 1;
    state.novelty.connections += 1;
    state.dirty = true;
  } else if (entry.type === 'device.revoked' || entry.type === 'device.disabled') core.devices.delete(id);
}

function onEvent(core: Core, entry: AuditEntry) {
  core.clock.now = Math.max(core.clock.now, entry.ts);
  const id = deviceIdOf(entry.subject);
  if (id) beforeEvent(core, entry, id);
  for (const d of core.routes.get(entry.type) ?? []) d.onEvent?.(entry, core.ctx);
  if (id) afterEvent(core, entry, id);
}

/** What the device sent since the last tick; its activity is brought up to date before the detectors run. */
function beginTick(state: DeviceState, at: number): DeviceTick {
  const sent = slot(state.meter.totals, HOT.messagesSent) - slot(state.lastTotals, HOT.messagesSent);
  const tick = { at, sent, messagesBefore: state.novelty.messages };
  if (sent > 0) {
    state.novelty.messages += sent;
    state.novelty.lastPublishAt = at;
    state.lastActivity = at;
    state.dirty = true;
  }
  return tick;
}

/** The meter's per-tick figures start again; rolling windows; a device that is gone is forgotten. */
function endTick(core: Core, state: DeviceState, tick: DeviceTick) {
  const m = state.meter;
  const { at } = tick;
  m.maxSize = 0;
  m.minSize = Infinity;
  m.sizes?.fill(0);
  m.topics.clear();
  // Rolling windows, from the first traffic either way (a device that only receives has figures too).
  const received = slot(m.totals, HOT.messagesReceived) !== slot(state.lastTotals, HOT.messagesReceived);
  if (!state.history && (tick.sent > 0 || received)) {
    state.history = newHistory();
    // The totals before this traffic, at the previous tick: else what was sent before the first
    // snapshot was in no window.
    record(state.history, state.lastTotals, core.clock.lastTickAt);
  }
  if (state.history) record(state.history, m.totals, at);
  state.lastTotals.set(m.totals);
  // Forget devices that are gone: disconnected, nothing open, quiet for two hours (their novelty is saved).
  if (
    state.sessions.size === 0 &&
    state.alarms.size === 0 &&
    !state.dirty &&
    at - state.lastActivity > 7_200_000
  )
    core.devices.delete(state.id);
}

/** Closes windows, folds what the hot path recorded, runs every detector's clock. */
function tick(core: Core, at: number) {
  core.clock.now = Math.max(core.clock.now, at);
  for (const state of core.devices.values()) {
    const t = beginTick(state, at);
    for (const d of core.detectors) d.onDeviceTick?.(state, t, core.ctx);
    endTick(core, state, t);
  }
  for (const d of core.detectors) d.onTick?.(at, core.ctx);
  core.clock.lastTickAt = at;
}

/** Per-device figures for the API: totals, what the rules see now, and the device's novelty profile. */
function describe(core: Core, deviceId: string) {
  const state = core.devices.get(deviceId);
  if (!state) return undefined;
  const t = state.meter.totals;
  return {
    totals: totalsOf(t),
    windows: windows(state.history, t, core.clock.now),
    connectedFrom: [...state.sessions.keys()],
    lastAddress: state.lastAddress,
    disconnectedAt: state.disconnectedAt,
    lastPublishAt: state.novelty.lastPublishAt || null,
    behaviours: describeRules(state),
    novelty: {
      networks: state.novelty.networks,
      topics: state.novelty.topics.length,
      connections: state.novelty.connections,
    },
    openDetectors: [...state.alarms],
  };
}

/** Totals over all devices (Prometheus). */
function totals(core: Core) {
  const sum = new Float64Array(4);
  for (const s of core.devices.values())
    for (let i = 0; i < 4; i++) sum[i] = slot(sum, i) + slot(s.meter.totals, i);
  return { devices: core.devices.size, ...totalsOf(sum) };
}

export interface SavedState {
  novelty: [string, NoveltyState][];
  baselines: Record<string, BaselineState>;
}

/** Restores saved state at start (before any event). Open alarms are known from open alerts. */
function restore(core: Core, input: SavedState & { openAlarms: [string, string][] }) {
  for (const [id, n] of input.novelty) core.ctx.device(id).novelty = { ...newNovelty(), ...n };
  for (const [detector, subject] of input.openAlarms) {
    const id = deviceIdOf(subject);
    if (!id) continue;
    const state = core.ctx.device(id);
    state.alarms.add(detector);
    for (const d of core.detectors) d.onRestoredAlarm?.(state, detector, core.ctx);
  }
}

/** An alert was resolved by an operator: the detector may fire again for this subject. */
function forget(core: Core, detector: string, subject: string) {
  const id = deviceIdOf(subject);
  const state = id ? core.devices.get(id) : undefined;
  if (!state) return;
  state.alarms.delete(detector);
  for (const d of core.detectors) d.onForget?.(state, detector);
}

/**
 * The detection engine: the devices it follows and a list of detectors (detectors/), each fed the events
 * it consumes, the device reports and the clock. No I/O: findings go to the sink; the monitor service
 * turns them into alerts and responses.
 */
export function createEngine(deps: EngineDeps) {
  const { list, baselines } = createDetectors(deps.startedAt);
  const detectors: readonly Detector[] = list;
  const base = {
    devices: new Map<string, DeviceState>(),
    clock: { now: deps.startedAt, lastTickAt: deps.startedAt },
  };
  const ctx = createContext(deps, base);
  ctx.bind(detectors);
  const core: Core = { ...base, detectors, routes: routesOf(detectors), ctx };
  return {
    /** The hot-path recorder for a device (the broker keeps it on the session). */
    meter: (deviceId: string): DeviceMeter => ctx.device(deviceId).meter,
    /** Which profile applies to a device (resolved by the service; recompiles its rules). */
    setProfile(deviceId: string, profile: EffectiveProfile, group: string | null) {
      const state = ctx.device(deviceId);
      state.profile = profile;
      state.group = group;
      for (const d of detectors) d.onProfile?.(state, ctx);
    },
    hasProfile: (deviceId: string) =>
      (core.devices.get(deviceId)?.profile ?? EMPTY_PROFILE) !== EMPTY_PROFILE,
    knownDevices: () => [...core.devices.keys()],
    /** Every security event: each detector gets the types it consumes. */
    onEvent: (entry: AuditEntry) => onEvent(core, entry),
    /** A device's own report on `devices/{id}/metrics` (validated by the caller). */
    onReport(deviceId: string, report: DeviceMetricsReport, at: number) {
      const state = ctx.device(deviceId, at);
      for (const d of detectors) d.onReport?.(state, { report, at }, ctx);
    },
    tick: (at: number) => tick(core, at),
    describe: (deviceId: string) => describe(core, deviceId),
    totals: () => totals(core),
    /** Detector state to save: novelty per device (changed since the last save) and the learned baselines. */
    dirtyState(): SavedState {
      const novelty: [string, NoveltyState][] = [];
      for (const s of core.devices.values())
        if (s.dirty) {
          s.dirty = false;
          novelty.push([s.id, s.novelty]);
        }
      return { novelty, baselines: baselines.export() };
    },
    restore(input: SavedState & { openAlarms: [string, string][] }) {
      baselines.restore(input.baselines);
      restore(core, input);
    },
    forget: (detector: string, subject: string) => forget(core, detector, subject),
  };
}

export type Engine = ReturnType<typeof createEngine>;
