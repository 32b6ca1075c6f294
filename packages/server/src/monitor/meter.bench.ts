import { bench, describe } from 'vitest';
import { createEngine } from './engine.ts';
import { effectiveProfile } from './profile.ts';
import { parseProfileDocument } from './profile.service.ts';

// The broker's per-message cost of metering: DeviceMeter.published() for a device without rules, and for
// one whose profile compiles five rules onto its meter (two counter triggers, a size trigger, the size
// histogram that percentiles need, distinct topics). No threshold is ever crossed: the steady state.
const engine = createEngine({
  sink: { raise: () => undefined, clear: () => undefined },
  globalProfile: () => effectiveProfile([], {}),
  silentAfterMs: 3_600_000,
  baselineIntervalMs: 60_000,
  startedAt: Date.now(),
});
const { document, explicitBuiltins } = parseProfileDocument({
  behaviours: [
    { name: 'rate', metric: 'messages_sent', operator: 'gt', threshold: 1e15 },
    { name: 'volume', metric: 'bytes_sent', operator: 'gt', threshold: 1e15 },
    { name: 'largest', metric: 'message_size', operator: 'gt', threshold: 1e9 },
    { name: 'typical', metric: 'message_size', statistic: 'p90', operator: 'gt', threshold: 1e9 },
    { name: 'spread', metric: 'distinct_topics', operator: 'gt', threshold: 1e6 },
  ],
});
const five = effectiveProfile(
  [
    {
      id: 'bench',
      name: 'bench',
      version: 1,
      document,
      explicitBuiltins,
      attachments: [{ kind: 'device', target: 'pump-0043' }],
      updatedAt: 0,
      updatedBy: 'bench',
    },
  ],
  { deviceId: 'pump-0043' },
);
engine.setProfile('pump-0043', five, 'pumps');
const bare = engine.meter('pump-0042');
const ruled = engine.meter('pump-0043');

const topics = [
  'devices/pump/telemetry',
  'devices/pump/status',
  'devices/pump/heartbeat',
  'devices/pump/a/b',
];
const sizes = [12, 80, 256, 300, 1024, 40, 2, 700];
let i = 0;

describe('device meter (hot path)', () => {
  bench('published(), no rules', () => {
    bare.published(topics[i & 3] ?? '', sizes[i++ & 7] ?? 0);
  });
  bench('published(), 5 rules compiled', () => {
    ruled.published(topics[i & 3] ?? '', sizes[i++ & 7] ?? 0);
  });
});
