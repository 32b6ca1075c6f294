import { deviceIdOf, subjectOf } from '../doors.ts';
import { HOT, slot } from '../meter.ts';
import { defineDetector } from './detector.ts';

/** A device whose firewall quota was not hit for this long no longer floods. */
export const FLOOD_CLEAR_MS = 60_000;

/** The firewall throttled or disconnected a device over its publish quota; cleared once it stays within. */
export const payloadFlood = defineDetector({
  name: 'payload_flood',
  consumes: ['firewall.throttled', 'firewall.disconnected'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    if (!id) return;
    const state = ctx.device(id, entry.ts);
    state.lastThrottleAt = entry.ts;
    // Once per episode: the episode ends after FLOOD_CLEAR_MS without throttling (onDeviceTick).
    if (!ctx.builtins(state).payload_flood.enabled || state.alarms.has('payload_flood')) return;
    ctx.raise({
      state,
      detector: 'payload_flood',
      subject: subjectOf.device(id),
      deviceId: id,
      severity: 'high',
      title: `${id} floods the broker (${entry.data.reason})`,
      at: entry.ts,
      evidence: {
        reason: entry.data.reason,
        firewall: entry.type === 'firewall.disconnected' ? 'disconnected' : 'throttled',
        messagesSent: slot(state.meter.totals, HOT.messagesSent),
        bytesSent: slot(state.meter.totals, HOT.bytesSent),
      },
    });
  },
  onDeviceTick(state, { at }, ctx) {
    if (state.alarms.has('payload_flood') && at - state.lastThrottleAt > FLOOD_CLEAR_MS)
      ctx.clear({
        state,
        detector: 'payload_flood',
        subject: subjectOf.device(state.id),
        resolution: `within its publish quota for ${FLOOD_CLEAR_MS / 1000} s`,
      });
  },
  onRestoredAlarm(state, detector, ctx) {
    // Quota time before the start does not count: else the flood alert was resolved at the first tick,
    // and raised again (responses included) if the device went on flooding.
    if (detector === 'payload_flood') state.lastThrottleAt = ctx.settings.startedAt;
  },
});
