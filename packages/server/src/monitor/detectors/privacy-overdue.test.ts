import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../doors.ts';
import type { Clear, DetectorContext, Raise } from './detector.ts';
import { privacyRequestOverdue } from './fleet.ts';

const DAY = 86_400_000;

function entry(e: Pick<AuditEntry, 'type' | 'data'> & { ts: number }): AuditEntry {
  return { seq: 1, actor: 'system', subject: 'request:pr_1', prevHash: '', hash: '', ...e } as AuditEntry;
}

describe('the privacy_request_overdue detector', () => {
  it('raises an alert about the request (never the person) when it is overdue, resolved when it is closed', () => {
    const raised: Raise[] = [];
    const cleared: Clear[] = [];
    const ctx = {
      raise: (r: Raise) => raised.push(r),
      clear: (c: Clear) => cleared.push(c),
    } as unknown as DetectorContext;
    const dueAt = 30 * DAY;
    privacyRequestOverdue.onEvent?.(
      entry({
        type: 'privacy.request_overdue',
        ts: dueAt + 3 * DAY,
        data: { requestId: 'pr_1', kind: 'erasure', receivedAt: 0, dueAt },
      }),
      ctx,
    );
    expect(raised).toEqual([
      expect.objectContaining({
        detector: 'privacy_request_overdue',
        subject: 'request:pr_1',
        deviceId: null,
        severity: 'high',
        evidence: { requestId: 'pr_1', kind: 'erasure', receivedAt: 0, dueAt, daysLate: 3 },
      }),
    ]);
    privacyRequestOverdue.onEvent?.(
      entry({
        type: 'privacy.request_completed',
        ts: dueAt + 4 * DAY,
        data: { requestId: 'pr_1', kind: 'erasure', status: 'completed', counts: {} },
      }),
      ctx,
    );
    expect(cleared).toEqual([
      { detector: 'privacy_request_overdue', subject: 'request:pr_1', resolution: 'request completed' },
    ]);
  });
});
