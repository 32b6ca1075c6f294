import { deviceIdOf, subjectOf } from '../doors.ts';
import { defineDetector } from './detector.ts';

/** A device connects at an hour (UTC) when it never connects, nor in the hours either side. */
export const unusualHour = defineDetector({
  name: 'unusual_hour',
  consumes: ['mqtt.connected'],
  onEvent(entry, ctx) {
    const id = deviceIdOf(entry.subject);
    const state = id ? ctx.known(id) : undefined;
    if (!state) return;
    const b = ctx.builtins(state).unusual_hour;
    const n = state.novelty;
    const hour = new Date(entry.ts).getUTCHours();
    const quiet = (h: number) => (n.hours[(h + 24) % 24] ?? 0) === 0;
    if (
      n.connections >= b.warmupConnections &&
      b.enabled &&
      quiet(hour) &&
      quiet(hour - 1) &&
      quiet(hour + 1)
    )
      ctx.raise({
        state,
        detector: 'unusual_hour',
        subject: subjectOf.device(state.id),
        deviceId: state.id,
        severity: 'low',
        title: `${state.id} connected at an hour it never connects (${hour}:00 UTC)`,
        at: entry.ts,
        evidence: { hourUtc: hour, connections: n.connections, hours: n.hours },
      });
  },
});
