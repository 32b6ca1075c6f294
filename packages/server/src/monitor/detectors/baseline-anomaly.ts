import { subjectOf } from '../doors.ts';
import { createBaselines } from '../baseline.ts';
import type { DeviceState } from '../device-state.ts';
import { HOT, slot } from '../meter.ts';
import { defineDetector, type DetectorContext } from './detector.ts';

/** One datapoint: whose (a device's or a group's subject), how it is named in a title, the count, when. */
interface Datapoint {
  state: DeviceState | undefined;
  subject: string;
  who: string;
  value: number;
  at: number;
}

/**
 * Learned baselines: every interval, the messages each connected device (and each group, summed) sent are
 * scored against what it learned (baseline.ts); an anomaly raises and clears on its transitions. No
 * datapoints while disconnected: hours of zeros would teach the baseline that silence is normal.
 */
export function createBaselineDetector(startedAt: number) {
  const baselines = createBaselines();
  let lastBaselineAt = startedAt;
  const groupSums = new Map<string, number>();

  function datapoint(ctx: DetectorContext, p: Datapoint) {
    const v = baselines.observe(`${p.subject}:messages_sent`, p.value, p.at);
    if (v.transition === 'raised')
      ctx.raise({
        state: p.state,
        detector: 'baseline_anomaly',
        subject: p.subject,
        deviceId: p.state?.id ?? null,
        severity: 'medium',
        title: `${p.who} sends ${v.ratio.toFixed(1)}× its learned normal`,
        at: p.at,
        evidence: {
          metric: 'messages_sent',
          intervalMs: ctx.settings.baselineIntervalMs,
          value: p.value,
          expected: v.expected,
          score: v.score,
          ratio: v.ratio,
        },
      });
    else if (v.transition === 'cleared')
      ctx.clear({
        state: p.state,
        detector: 'baseline_anomaly',
        subject: p.subject,
        resolution: 'back within its learned normal',
      });
  }

  const due = (at: number, ctx: DetectorContext) => at - lastBaselineAt >= ctx.settings.baselineIntervalMs;

  const detector = defineDetector({
    name: 'baseline_anomaly',
    consumes: [],
    onDeviceTick(state, { at }, ctx) {
      if (!due(at, ctx) || state.novelty.lastPublishAt <= 0 || state.sessions.size === 0) return;
      const totals = state.meter.totals;
      const value = slot(totals, HOT.messagesSent) - slot(state.baselineTotals, HOT.messagesSent);
      state.baselineTotals.set(totals);
      if (state.group) groupSums.set(state.group, (groupSums.get(state.group) ?? 0) + value);
      if (ctx.builtins(state).baseline_anomaly.enabled)
        datapoint(ctx, { state, subject: subjectOf.device(state.id), who: state.id, value, at });
    },
    onTick(at, ctx) {
      if (!due(at, ctx)) return;
      lastBaselineAt = at;
      for (const [group, value] of groupSums)
        datapoint(ctx, { state: undefined, subject: `group:${group}`, who: `Group ${group}`, value, at });
      groupSums.clear();
    },
  });
  return Object.assign(detector, { baselines });
}
