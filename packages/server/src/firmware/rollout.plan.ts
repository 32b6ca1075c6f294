import { createHash } from 'node:crypto';
import { BulwarkError } from '@bulwark/protocol';

/** Pure rollout rules: phase assignment, maintenance windows, the failure gate. No I/O. */

export const rolloutStatuses = ['running', 'paused', 'waiting_approval', 'completed', 'aborted'] as const;
export type RolloutStatus = (typeof rolloutStatuses)[number];

export const rolloutDeviceStatuses = [
  'pending',
  'sent',
  'in_progress',
  'succeeded',
  'failed',
  'skipped',
] as const;
export type RolloutDeviceStatus = (typeof rolloutDeviceStatuses)[number];
export const finalStatuses: readonly RolloutDeviceStatus[] = ['succeeded', 'failed', 'skipped'];

export interface Phase {
  /** Cumulative share of the targeted devices updated once this phase is done, 1-100. */
  percent: number;
  /** How long the phase must stay healthy after its last device finished before the next one starts. */
  soakMs: number;
}

/** Daily window (UTC) in which commands may be sent; `days` 0 = Sunday … 6 = Saturday. */
export interface MaintenanceWindow {
  start: string;
  end: string;
  days?: number[] | undefined;
}

export interface RolloutSettings {
  phases: Phase[];
  /** Pause automatically when more than this share (percent) of a phase's devices has failed. */
  failureThreshold: number;
  /** Further attempts for a device whose update failed. */
  maxRetries: number;
  retryDelayMs: number;
  /** Wait for an operator's approval between phases. */
  requireApproval: boolean;
  maintenanceWindow: MaintenanceWindow | null;
}

/** Which devices a rollout targets; the selectors combine (AND); an empty selector is refused. */
export interface RolloutSelector {
  all?: boolean | undefined;
  groups?: string[] | undefined;
  /** Security zones (IEC 62443), as the policy module assigns devices to them. */
  zones?: string[] | undefined;
  devices?: string[] | undefined;
  attributes?: Record<string, string> | undefined;
}

const hhmm = /^([01]\d|2[0-3]):([0-5]\d)$/;
const minutes = (text: string) => {
  const m = hhmm.exec(text);
  if (!m)
    throw new BulwarkError('validation_failed', `maintenance window times are HH:MM (UTC), not "${text}"`);
  return Number(m[1]) * 60 + Number(m[2]);
};

export function checkSettings(input: RolloutSettings): RolloutSettings {
  const { phases } = input;
  if (!Array.isArray(phases) || phases.length === 0 || phases.length > 20)
    throw new BulwarkError('validation_failed', 'a rollout has 1 to 20 phases');
  let previous = 0;
  for (const p of phases) {
    if (!Number.isFinite(p.percent) || p.percent <= previous || p.percent > 100)
      throw new BulwarkError(
        'validation_failed',
        'phase percentages must increase, each above 0 and at most 100 (e.g. 1, 10, 50, 100)',
      );
    if (!Number.isInteger(p.soakMs) || p.soakMs < 0)
      throw new BulwarkError('validation_failed', 'soak time must be a duration of 0 or more');
    previous = p.percent;
  }
  if (previous !== 100) throw new BulwarkError('validation_failed', 'the last phase must reach 100 percent');
  if (!Number.isFinite(input.failureThreshold) || input.failureThreshold < 0 || input.failureThreshold > 100)
    throw new BulwarkError('validation_failed', 'failureThreshold is a percentage from 0 to 100');
  if (!Number.isInteger(input.maxRetries) || input.maxRetries < 0 || input.maxRetries > 10)
    throw new BulwarkError('validation_failed', 'maxRetries must be from 0 to 10');
  if (!Number.isInteger(input.retryDelayMs) || input.retryDelayMs < 0)
    throw new BulwarkError('validation_failed', 'retryDelay must be a duration of 0 or more');
  const w = input.maintenanceWindow;
  if (w) {
    if (minutes(w.start) === minutes(w.end))
      throw new BulwarkError('validation_failed', 'a maintenance window needs different start and end times');
    if (w.days && (w.days.length === 0 || w.days.some((d) => !Number.isInteger(d) || d < 0 || d > 6)))
      throw new BulwarkError('validation_failed', 'maintenance window days are 0 (Sunday) to 6 (Saturday)');
  }
  return input;
}

/** True when `now` is inside the window (a window may wrap past midnight: 22:00-04:00). */
export function inWindow(window: MaintenanceWindow | null, now: number): boolean {
  if (!window) return true;
  const d = new Date(now);
  const minute = d.getUTCHours() * 60 + d.getUTCMinutes();
  const start = minutes(window.start);
  const end = minutes(window.end);
  const wraps = end < start;
  const inside = wraps ? minute >= start || minute < end : minute >= start && minute < end;
  if (!inside) return false;
  if (!window.days) return true;
  // After midnight in a wrapping window, the window belongs to the day it started.
  const day = wraps && minute < end ? (d.getUTCDay() + 6) % 7 : d.getUTCDay();
  return window.days.includes(day);
}

/**
 * Orders devices by a hash of rollout id and device id (stable, not by name, so phase 1 is not always the
 * same devices) and gives each its phase: the first ⌈percent × N / 100⌉ devices are in phases up to that one.
 */
export function assignPhases(
  rolloutId: string,
  deviceIds: string[],
  phases: Phase[],
): { deviceId: string; phase: number; position: number }[] {
  const ordered = [...deviceIds]
    .map((id) => ({ id, key: createHash('sha256').update(`${rolloutId}\0${id}`).digest('hex') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const n = ordered.length;
  const bounds = phases.map((p) => Math.ceil((p.percent * n) / 100));
  return ordered.map((d, position) => ({
    deviceId: d.id,
    position,
    phase: Math.max(
      0,
      bounds.findIndex((b) => position < b),
    ),
  }));
}

/** The gate: true when more than `threshold` percent of the phase's devices failed (beyond those accepted). */
export function gateTripped(counts: {
  failed: number;
  accepted: number;
  phaseSize: number;
  threshold: number;
}): boolean {
  const { failed, accepted, phaseSize, threshold } = counts;
  if (phaseSize === 0) return false;
  return ((failed - accepted) / phaseSize) * 100 > threshold;
}
