import type { FirmwareRolloutDevicesTable } from '../store/index.ts';
import type { RolloutDeviceStatus, RolloutSelector, RolloutSettings, RolloutStatus } from './rollout.plan.ts';

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

export const toRolloutDevice = (r: FirmwareRolloutDevicesTable): RolloutDevice => ({
  deviceId: r.device_id,
  phase: r.phase,
  status: r.status as RolloutDeviceStatus,
  step: r.step,
  attempts: r.attempts,
  reason: r.reason,
  detail: r.detail,
  updatedAt: r.updated_at,
});
