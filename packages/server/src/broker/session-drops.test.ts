import { describe, expect, it } from 'vitest';
import { createSessionDropReports } from './session-drops.ts';

function harness() {
  const counts: Record<string, number> = {};
  const events: { subject: string | undefined; data: unknown }[] = [];
  let t = 1_000_000;
  const reports = createSessionDropReports({
    emit: (e) => events.push({ subject: e.subject, data: e.data }),
    dropsByClient: () => ({ ...counts }),
    liveSubjectOf: (clientId) => (clientId === 'billing/a' ? 'app:billing' : undefined),
    now: () => t,
  });
  return {
    counts,
    events,
    reports,
    advance: (ms: number) => (t += ms),
  };
}

describe('mqtt.delivery_dropped', () => {
  it('records the first drops at once, then at most once per 10 s per client id, with the count since the last', () => {
    const h = harness();
    h.counts['pump-1'] = 3;
    h.reports.sweep();
    expect(h.events).toEqual([
      { subject: 'device:pump-1', data: { dropped: 3, windowMs: 10_000, clientId: 'pump-1' } },
    ]);
    // More drops within the window wait for it to pass, even if no more come.
    h.counts['pump-1'] = 5;
    h.advance(4000);
    h.reports.sweep();
    h.counts['pump-1'] = 9;
    h.advance(4000);
    h.reports.sweep();
    expect(h.events).toHaveLength(1);
    h.advance(2000);
    h.reports.sweep();
    expect(h.events[1]).toEqual({
      subject: 'device:pump-1',
      data: { dropped: 6, windowMs: 10_000, clientId: 'pump-1' },
    });
    // Nothing new: nothing recorded.
    h.advance(20_000);
    h.reports.sweep();
    expect(h.events).toHaveLength(2);
    h.reports.stop();
  });

  it("names a live session's subject (an app instance: its app), and keeps client ids apart", () => {
    const h = harness();
    h.counts['billing/a'] = 2;
    h.counts['pump-2'] = 1;
    h.reports.sweep();
    expect(h.events).toEqual(
      expect.arrayContaining([
        { subject: 'app:billing', data: { dropped: 2, windowMs: 10_000, clientId: 'billing/a' } },
        { subject: 'device:pump-2', data: { dropped: 1, windowMs: 10_000, clientId: 'pump-2' } },
      ]),
    );
    h.reports.stop();
  });

  it('names the app of an app instance whose session is gone by its key (app:<client id>), never a device', () => {
    const h = harness();
    h.counts['app:billing/b'] = 3;
    h.reports.sweep();
    expect(h.events).toEqual([
      { subject: 'app:billing', data: { dropped: 3, windowMs: 10_000, clientId: 'app:billing/b' } },
    ]);
    h.reports.stop();
  });

  it('records what a session that ended had left, lets its client id go, and counts a new session from 0', () => {
    const h = harness();
    h.counts['pump-3'] = 4;
    h.reports.sweep();
    h.counts['pump-3'] = 7;
    h.advance(1000);
    h.reports.sweep();
    expect(h.events).toHaveLength(1);
    // The session ended within the window: its 3 last drops are recorded, and it is no longer tracked.
    delete h.counts['pump-3'];
    h.advance(1000);
    h.reports.sweep();
    expect(h.events[1]?.data).toEqual({ dropped: 3, windowMs: 10_000, clientId: 'pump-3' });
    expect(h.reports.tracked).toBe(0);
    // A new session of the client id, with fewer drops than the last one had: counted from 0.
    h.counts['pump-3'] = 8;
    h.advance(1000);
    h.reports.sweep();
    h.counts['pump-3'] = 2;
    h.advance(1000);
    h.reports.sweep();
    h.advance(10_000);
    h.reports.sweep();
    expect(h.events.slice(2).map((e) => e.data)).toEqual([
      { dropped: 8, windowMs: 10_000, clientId: 'pump-3' },
      { dropped: 2, windowMs: 10_000, clientId: 'pump-3' },
    ]);
    h.reports.stop();
  });

  it('records every drop not yet recorded when it stops', () => {
    const h = harness();
    h.counts['pump-4'] = 1;
    h.reports.sweep();
    h.counts['pump-4'] = 6;
    h.advance(500);
    h.reports.stop();
    expect(h.events.map((e) => e.data)).toEqual([
      { dropped: 1, windowMs: 10_000, clientId: 'pump-4' },
      { dropped: 5, windowMs: 10_000, clientId: 'pump-4' },
    ]);
  });
});
