import { describe, expect, it } from 'vitest';
import { heartbeatSchema } from '@bulwark/protocol';
import { buildHeartbeat } from './heartbeat.ts';
import { AGENT_NAME } from './version.ts';

describe('buildHeartbeat', () => {
  it('produces a payload the shared contract accepts', () => {
    const beat = buildHeartbeat({ seq: 7, startedAt: 1_000, now: 43_500, certNotAfter: 9_999_999 });
    expect(heartbeatSchema.safeParse(beat).success).toBe(true);
    expect(beat).toEqual({ ts: 43_500, seq: 7, uptimeS: 42, agent: AGENT_NAME, certNotAfter: 9_999_999 });
  });

  it('never reports a negative uptime when the clock steps back', () => {
    expect(buildHeartbeat({ seq: 0, startedAt: 10_000, now: 5_000, certNotAfter: 0 }).uptimeS).toBe(0);
  });

  it('names the agent within the 64 characters the contract allows', () => {
    expect(AGENT_NAME).toMatch(/^bulwark-agent\/\d+\.\d+\.\d+/);
    expect(AGENT_NAME.length).toBeLessThanOrEqual(64);
  });
});
