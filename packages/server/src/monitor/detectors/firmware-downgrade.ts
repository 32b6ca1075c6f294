import { deviceIdOf, subjectOf } from '../doors.ts';
import { defineDetector } from './detector.ts';

const DOWNGRADE_REASONS = new Set(['security_version_lower', 'metadata_rollback']);

/** A device was offered older firmware or rolled-back metadata (and refused it). Once per episode. */
export const firmwareDowngrade = defineDetector({
  name: 'firmware_downgrade',
  consumes: ['firmware.update_failed'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    const { reason } = entry.data;
    if (!id || !DOWNGRADE_REASONS.has(reason)) return;
    const state = ctx.device(id, entry.ts);
    if (!ctx.builtins(state).firmware_downgrade.enabled || state.alarms.has('firmware_downgrade')) return;
    ctx.raise({
      state,
      detector: 'firmware_downgrade',
      subject: subjectOf.device(id),
      deviceId: id,
      severity: 'high',
      title: `${id} was offered a firmware or metadata downgrade (${reason})`,
      at: entry.ts,
      evidence: { reason, target: entry.data.target, detail: entry.data.detail ?? '' },
    });
  },
});
