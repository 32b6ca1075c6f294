import { describe, expect, it } from 'vitest';
import type { RolloutSettings } from './rollout.plan.ts';
import {
  failedAttempt,
  nextSteps,
  reportOutcome,
  type ProgressDevice,
  type ProgressState,
} from './rollout.progress.ts';

const NOW = Date.parse('2026-03-02T12:00:00Z');
const MIN = 60_000;

const settings: RolloutSettings = {
  phases: [
    { percent: 50, soakMs: 10 * MIN },
    { percent: 100, soakMs: 0 },
  ],
  failureThreshold: 10,
  maxRetries: 1,
  retryDelayMs: MIN,
  requireApproval: false,
  maintenanceWindow: null,
};

const device = (deviceId: string, overrides: Partial<ProgressDevice> = {}): ProgressDevice => ({
  deviceId,
  status: 'pending',
  attempts: 0,
  sentAt: null,
  nextAttemptAt: null,
  ...overrides,
});

const state = (overrides: Partial<ProgressState> = {}): ProgressState => ({
  status: 'running',
  settings,
  phase: 0,
  phaseDoneAt: null,
  acceptedFailures: 0,
  releaseStatus: 'ready',
  devices: [device('a'), device('b')],
  canSend: true,
  deviceTimeoutMs: 60 * MIN,
  ...overrides,
});

const done = (id: string) => device(id, { status: 'succeeded', attempts: 1, sentAt: NOW - MIN });

describe('rollout progress: nextSteps(state, now)', () => {
  it('starts a phase by sending every pending device its first attempt', () => {
    expect(nextSteps(state(), NOW)).toEqual([
      { type: 'send', deviceId: 'a', attempt: 1 },
      { type: 'send', deviceId: 'b', attempt: 1 },
    ]);
  });

  it('does nothing for a rollout that is not running', () => {
    for (const status of ['paused', 'waiting_approval', 'completed', 'aborted'] as const)
      expect(nextSteps(state({ status }), NOW)).toEqual([]);
  });

  it('sends nothing without a broker, outside the maintenance window, or before the retry delay', () => {
    expect(nextSteps(state({ canSend: false }), NOW)).toEqual([]);
    const window = { start: '22:00', end: '04:00' };
    expect(nextSteps(state({ settings: { ...settings, maintenanceWindow: window } }), NOW)).toEqual([]);
    const later = device('a', { attempts: 1, nextAttemptAt: NOW + MIN });
    expect(nextSteps(state({ devices: [later] }), NOW)).toEqual([]);
    expect(nextSteps(state({ devices: [later] }), NOW + MIN)).toEqual([
      { type: 'send', deviceId: 'a', attempt: 2 },
    ]);
  });

  it('waits while devices are working', () => {
    const working = device('a', { status: 'in_progress', attempts: 1, sentAt: NOW - MIN });
    expect(nextSteps(state({ devices: [working, done('b')] }), NOW)).toEqual([]);
  });

  it('counts a device that stays quiet past the timeout as a failed attempt, retried after the delay', () => {
    const quiet = device('a', { status: 'sent', attempts: 1, sentAt: NOW - 60 * MIN });
    const phase = Array.from({ length: 9 }, (_, i) => done(`ok${i}`));
    expect(nextSteps(state({ devices: [quiet, ...phase] }), NOW)).toEqual([
      {
        type: 'fail_attempt',
        deviceId: 'a',
        reason: 'timeout',
        detail: 'no report within 3600000 ms',
        attempt: 1,
        final: false,
        nextAttemptAt: NOW + MIN,
      },
    ]);
  });

  it('makes the last attempt final, and pauses when the failures trip the gate', () => {
    const quiet = device('a', { status: 'sent', attempts: 2, sentAt: NOW - 60 * MIN });
    const actions = nextSteps(state({ devices: [quiet, done('b')] }), NOW);
    expect(actions).toEqual([
      expect.objectContaining({ type: 'fail_attempt', deviceId: 'a', final: true, nextAttemptAt: null }),
      {
        type: 'pause',
        reason: 'failure_threshold',
        message: 'failure rate 50% in phase 1 is above the threshold of 10%',
        failureRate: 50,
        threshold: 10,
      },
    ]);
  });

  it('does not count accepted failures or skipped devices against the gate', () => {
    const failed = device('a', { status: 'failed', attempts: 2 });
    const skipped = device('s', { status: 'skipped' });
    expect(nextSteps(state({ devices: [failed, done('b')], acceptedFailures: 1 }), NOW)).toEqual([
      { type: 'phase_done', at: NOW },
    ]);
    // 1 failed of 10 tried is 10%: not above the threshold, however many were skipped.
    const tried = Array.from({ length: 9 }, (_, i) => done(`ok${i}`));
    const many = Array.from({ length: 20 }, (_, i) => ({ ...skipped, deviceId: `s${i}` }));
    expect(nextSteps(state({ devices: [failed, ...tried, ...many] }), NOW)).toEqual([
      { type: 'phase_done', at: NOW },
    ]);
  });

  it('pauses when the release is no longer ready', () => {
    expect(nextSteps(state({ releaseStatus: 'retired' }), NOW)).toEqual([
      { type: 'pause', reason: 'release_retired', message: 'release is retired' },
    ]);
  });

  it('marks the phase done, soaks, then starts the next phase', () => {
    const devices = [done('a'), done('b')];
    expect(nextSteps(state({ devices }), NOW)).toEqual([{ type: 'phase_done', at: NOW }]);
    expect(nextSteps(state({ devices, phaseDoneAt: NOW }), NOW + 5 * MIN)).toEqual([]);
    expect(nextSteps(state({ devices, phaseDoneAt: NOW }), NOW + 10 * MIN)).toEqual([
      { type: 'start_phase', phase: 1 },
    ]);
  });

  it('waits for approval between phases when asked', () => {
    const s = state({ devices: [done('a')], phaseDoneAt: NOW - 10 * MIN });
    expect(nextSteps({ ...s, settings: { ...settings, requireApproval: true } }, NOW)).toEqual([
      { type: 'wait_approval' },
    ]);
  });

  it('completes after the last phase', () => {
    expect(nextSteps(state({ phase: 1, devices: [done('a')] }), NOW)).toEqual([
      { type: 'phase_done', at: NOW },
      { type: 'complete' },
    ]);
  });

  it('leaves the state it was given unchanged', () => {
    const s = state({ devices: [device('a', { status: 'sent', attempts: 1, sentAt: 0 })] });
    const copy = structuredClone(s);
    nextSteps(s, NOW);
    expect(s).toEqual(copy);
  });
});

describe('rollout progress: attempts and reports', () => {
  it('retries a failed attempt while attempts remain', () => {
    const ctx = { settings, now: NOW };
    expect(failedAttempt({ attempts: 1 }, { reason: 'verify_failed' }, ctx)).toEqual({
      reason: 'verify_failed',
      detail: undefined,
      attempt: 1,
      final: false,
      nextAttemptAt: NOW + MIN,
    });
    expect(failedAttempt({ attempts: 2 }, { reason: 'x', detail: 'y' }, ctx)).toMatchObject({
      final: true,
      nextAttemptAt: null,
    });
  });

  it('takes only reports of the current attempt at the rollout image', () => {
    const sent = { status: 'sent', attempts: 2 };
    const report = { step: 'succeeded' as const, target: 't/1/a.bin', attempt: 2, ts: NOW };
    expect(reportOutcome(sent, report, 't/1/a.bin')).toEqual({ type: 'succeeded' });
    expect(reportOutcome(sent, { ...report, attempt: 1 }, 't/1/a.bin')).toEqual({ type: 'ignore' });
    expect(reportOutcome(sent, report, 't/2/a.bin')).toEqual({ type: 'ignore' });
    expect(reportOutcome(undefined, report, 't/1/a.bin')).toEqual({ type: 'ignore' });
    expect(reportOutcome({ status: 'pending', attempts: 2 }, report, 't/1/a.bin')).toEqual({
      type: 'ignore',
    });
    expect(reportOutcome({ status: 'succeeded', attempts: 2 }, report, 't/1/a.bin')).toEqual({
      type: 'ignore',
    });
    expect(reportOutcome(sent, { ...report, step: 'installing' }, 't/1/a.bin')).toEqual({
      type: 'step',
      step: 'installing',
    });
    expect(reportOutcome(sent, { ...report, step: 'failed' }, 't/1/a.bin')).toEqual({
      type: 'failed',
      reason: 'internal',
      detail: undefined,
    });
  });
});
