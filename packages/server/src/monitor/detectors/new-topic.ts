import { subjectOf } from '../doors.ts';
import { topicShape } from '../device-state.ts';
import { defineDetector } from './detector.ts';

/** A device publishes to a kind of topic (numbers and ids folded) it never used, after its warm-up. */
export const newTopic = defineDetector({
  name: 'new_topic',
  consumes: [],
  onDeviceTick(state, { at, messagesBefore }, ctx) {
    const b = ctx.builtins(state).new_topic;
    const n = state.novelty;
    for (const topic of state.meter.topics) {
      const shape = topicShape(topic);
      if (n.topics.includes(shape)) continue;
      if (messagesBefore >= b.warmupMessages && b.enabled)
        ctx.raise({
          state,
          detector: 'new_topic',
          subject: subjectOf.device(state.id),
          deviceId: state.id,
          severity: 'low',
          title: `${state.id} published to a topic it never used: ${shape}`,
          at,
          evidence: { topic, shape, known: n.topics.slice(-10), messages: messagesBefore },
        });
      if (n.topics.length < 256) n.topics.push(shape);
      state.dirty = true;
    }
  },
});
