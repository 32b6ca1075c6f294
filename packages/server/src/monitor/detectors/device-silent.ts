import { subjectOf } from '../doors.ts';
import { defineDetector } from './detector.ts';

/**
 * A device heard from before sends nothing for longer than allowed (the profile's `device_silent.after`,
 * else config monitor.silentAfter); time before this process started does not count. Cleared when it is
 * heard from again; after an operator resolves it, none until then.
 */
export const deviceSilent = defineDetector({
  name: 'device_silent',
  consumes: [],
  onDeviceTick(state, { at, sent }, ctx) {
    const subject = subjectOf.device(state.id);
    if (sent > 0) {
      state.novelty.silenceDismissed = undefined;
      if (state.alarms.has('device_silent'))
        ctx.clear({
          state,
          detector: 'device_silent',
          subject,
          resolution: 'the device is heard from again',
        });
    }
    const b = ctx.builtins(state).device_silent;
    const after = b.after ?? ctx.settings.silentAfterMs;
    const lastPublish = state.novelty.lastPublishAt;
    if (
      b.enabled &&
      lastPublish > 0 &&
      !state.novelty.silenceDismissed &&
      !state.alarms.has('device_silent') &&
      at - Math.max(lastPublish, ctx.settings.startedAt) > after
    )
      ctx.raise({
        state,
        detector: 'device_silent',
        subject,
        deviceId: state.id,
        severity: 'medium',
        title: `${state.id} has been silent for more than ${Math.round(after / 1000)} s`,
        at,
        evidence: {
          lastHeardAt: lastPublish,
          silentForMs: at - lastPublish,
          allowedMs: after,
          connected: state.sessions.size > 0,
        },
      });
  },
  onForget(state, detector) {
    if (detector !== 'device_silent') return;
    state.novelty.silenceDismissed = true;
    state.dirty = true;
  },
});
