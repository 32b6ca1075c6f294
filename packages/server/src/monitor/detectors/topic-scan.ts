import { deviceIdOf } from '../doors.ts';
import { Attempts } from './attempts.ts';
import { defineDetector } from './detector.ts';

/** Topic scanning: many distinct topics denied to one subject within the window (`topic_scan` built-in). */
export function createTopicScanDetector() {
  const scans = new Attempts();
  return defineDetector({
    name: 'topic_scan',
    consumes: ['mqtt.publish_denied', 'mqtt.subscribe_denied'],
    onEvent(entry, ctx) {
      const id = deviceIdOf(entry.subject);
      const state = id ? ctx.device(id, entry.ts) : undefined;
      const b = ctx.builtins(state).topic_scan;
      if (!b.enabled) return;
      const subject = entry.subject ?? entry.actor;
      const { distinct, total, crossed } = scans.add(
        subject,
        { what: entry.data.topic, at: entry.ts },
        { windowMs: b.window, threshold: b.deniedTopics },
      );
      if (crossed)
        ctx.raise({
          state,
          detector: 'topic_scan',
          subject,
          deviceId: id ?? null,
          severity: 'high',
          title: `Topic scanning by ${subject}: ${distinct.length} denied topics`,
          at: entry.ts,
          evidence: {
            deniedTopics: distinct.slice(0, 30),
            distinctTopics: distinct.length,
            denials: total,
            windowMs: b.window,
          },
        });
    },
    onTick(at, ctx) {
      if (ctx.deviceCount() > 0 && at % 60_000 < 1000) scans.prune(at, 3_600_000);
    },
  });
}
