import { bench, describe } from 'vitest';
import { createBaselines } from './baseline.ts';

// One datapoint per key per interval: 10,000 keys (a fleet's devices and groups), warmed up, fed in
// turn with counts that vary around each key's level so that the scoring and learning paths both run.
const KEYS = 10_000;
const keys = Array.from({ length: KEYS }, (_, i) => `device:d${i}:messages_sent`);
const values = Array.from({ length: 1024 }, (_, i) => 40 + ((i * 7919) % 21));
const baselines = createBaselines();
let minute = 0;
for (; minute < 40; minute++) {
  for (let k = 0; k < KEYS; k++)
    baselines.observe(keys[k] ?? '', values[(k + minute) & 1023] ?? 0, minute * 60_000);
}
let i = 0;

describe('learned baseline', () => {
  bench('observe() on 10,000 warmed-up keys', () => {
    const k = i++ % KEYS;
    if (k === 0) minute++;
    baselines.observe(keys[k] ?? '', values[i & 1023] ?? 0, minute * 60_000);
  });
});
