import type { DeviceMetricsReport } from '@bulwark/protocol';
import type { AuditEntry, EventType } from '../doors.ts';
import type { DeviceState } from '../device-state.ts';
import type { Builtins, Severity } from '../profile.ts';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** What a detector found: one alert per detector and subject while it is not resolved. */
export interface Finding {
  detector: string;
  /** `device:<id>`, `address:<ip>`, `user:<name>` … */
  subject: string;
  deviceId: string | null;
  severity: Severity;
  title: string;
  evidence: Record<string, Json>;
  /** The profile whose behaviour fired (rule behaviours). */
  profile?: string | undefined;
  /** When the offending message or event happened (epoch ms). */
  at: number;
}

/** A finding as a detector states it: `at` defaults to the engine's clock, `state` is the device it holds open. */
export type Raise = Omit<Finding, 'at'> & { at?: number; state?: DeviceState | undefined };

/** A behaviour that ended: the open alert for this detector and subject, if any, is resolved. */
export interface Clear {
  detector: string;
  subject: string;
  resolution: string;
  /** The device holding the alarm: nothing is cleared unless it holds one for this detector. */
  state?: DeviceState | undefined;
}

/** What the engine offers every detector: devices, their profile settings, the clock and the sink. */
export interface DetectorContext {
  /** The latest time the engine has seen (events and ticks). */
  now(): number;
  /** The device's state, made when first seen. */
  device(id: string, at?: number): DeviceState;
  /** The device's state if the engine knows the device. */
  known(id: string): DeviceState | undefined;
  /** How many devices the engine holds. */
  deviceCount(): number;
  /**
   * The built-in detectors' settings for a device: its own profile once resolved, else (and for subjects
   * that are not devices) the profiles attached to `all`.
   */
  builtins(state?: DeviceState): Builtins;
  raise(finding: Raise): void;
  clear(clear: Clear): void;
  readonly settings: EngineSettings;
}

export interface EngineSettings {
  /** The default silence threshold (config monitor.silentAfter); profiles may override it. */
  silentAfterMs: number;
  baselineIntervalMs: number;
  /** Start of this process: silence and baselines do not count time before it. */
  startedAt: number;
}

/** One device's traffic since the previous tick, as the engine folded it before the detectors run. */
export interface DeviceTick {
  at: number;
  /** Messages the device sent since the previous tick. */
  sent: number;
  /** Messages the device had sent (since it was first seen) before this tick's. */
  messagesBefore: number;
}

/**
 * A detector: the events it consumes, what it raises and clears on them and on the clock, and how it
 * reads its settings (`ctx.builtins(state).<name>`, or the device's profile behaviours). Its own state
 * lives in its closure (the factory's) or on the device state; every hook is optional.
 */
export interface Detector<T extends EventType = EventType> {
  readonly name: string;
  /** The event types `onEvent` receives (typed: the entry carries that type's data). */
  readonly consumes: readonly T[];
  onEvent?: (entry: AuditEntry<T>, ctx: DetectorContext) => void;
  /** A device's own report on `devices/{id}/metrics` (validated), received at `at`. */
  onReport?: (
    state: DeviceState,
    report: { report: DeviceMetricsReport; at: number },
    ctx: DetectorContext,
  ) => void;
  /** The broker's hot path passed a level the detector set on the device's meter. */
  onTrip?: (state: DeviceState, ctx: DetectorContext) => void;
  /** The device's profile changed (it was resolved or re-resolved). */
  onProfile?: (state: DeviceState, ctx: DetectorContext) => void;
  /** On every tick, for each device, after its traffic since the previous tick was folded. */
  onDeviceTick?: (state: DeviceState, tick: DeviceTick, ctx: DetectorContext) => void;
  /** On every tick, once, after the devices. */
  onTick?: (at: number, ctx: DetectorContext) => void;
  /** At start: an alert of this detector is open for the device (the alarm is already set). */
  onRestoredAlarm?: (state: DeviceState, detector: string, ctx: DetectorContext) => void;
  /** An operator resolved an alert about the device: the detector may fire again. */
  onForget?: (state: DeviceState, detector: string) => void;
}

/** A detector as the engine holds it, whatever it consumes. */
export type AnyDetector = Omit<Detector, 'onEvent'> & {
  onEvent?: (entry: AuditEntry, ctx: DetectorContext) => void;
};

/**
 * Declares a detector: its handler receives the entries of the types it consumes, with their data typed
 * (checked here at run time, so the engine may hand it any entry).
 */
export function defineDetector<T extends EventType>(detector: Detector<T>): AnyDetector {
  const { onEvent, consumes, ...rest } = detector;
  const wanted: ReadonlySet<EventType> = new Set<EventType>(consumes);
  const accepts = (entry: AuditEntry): entry is AuditEntry<T> => wanted.has(entry.type);
  return {
    ...rest,
    consumes,
    ...(onEvent && {
      onEvent(entry: AuditEntry, ctx: DetectorContext) {
        if (accepts(entry)) onEvent(entry, ctx);
      },
    }),
  };
}
