import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditLog, EventBus, EventType } from '../events/index.ts';
import { createAuditedEvents } from '../test-support/audited-events.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import {
  createAlertService,
  cursorText,
  parseCursor,
  type Alert,
  type AlertService,
} from './alert.service.ts';
import type { Finding } from './engine.ts';
import { createProfileService } from './profile.service.ts';
import { execute } from './responses.ts';

const T0 = 1_800_000_000_000;

const finding = (subject: string, at = T0, deviceId: string | null = null): Finding => ({
  detector: 'burst',
  subject,
  deviceId,
  severity: 'high',
  title: `burst from ${subject}`,
  evidence: { messages: 40 },
  at,
});

/**
 * Alerts over a real store, audit log and event bus on each dialect: every change commits with its event or
 * not at all (a failure after the write rolls both back; a crash after the commit leaves the event in the
 * outbox, relayed at the next start), assignment names an active user, and paging never skips an alert.
 */
describe.each(testDialects)('alerts on %s', (dialect) => {
  let t: TestStore;
  let audit: AuditLog;
  let bus: EventBus;
  let alerts: AlertService;
  let events: Awaited<ReturnType<typeof createAuditedEvents>>;
  const users = new Map<string, 'active' | 'disabled'>();
  const groups = new Map<string, string>();

  /** The audit log's entries of a type, oldest first. */
  const eventsOf = <T extends EventType>(type: T) => audit.query({ type, limit: 10_000 });

  beforeEach(async () => {
    t = await createTestStore(dialect);
    events = await createAuditedEvents(t.store.db, { now: () => Date.now(), retryBusy: true });
    ({ audit, bus } = events);
    users.clear();
    users.set('bob', 'active');
    users.set('dora', 'disabled');
    groups.clear();
    alerts = createAlertService({
      db: t.store.db,
      events: bus,
      now: () => T0 + 1000,
      groupOf: (id) => Promise.resolve(groups.get(id)),
      isQuarantined: () => Promise.resolve(false),
      isActiveUser: (username) => Promise.resolve(users.get(username) === 'active'),
    });
  });
  afterEach(async () => {
    await bus.close();
    await t.cleanup();
  });

  it('raises an alert with its alert.raised; a failure after the write keeps neither', async () => {
    events.failOnceAt('written');
    await expect(alerts.raise(finding('device:pump-1'))).rejects.toThrow('failed at written');
    expect(await alerts.list()).toEqual([]);
    expect(await eventsOf('alert.raised')).toEqual([]);

    const { alert, created } = await alerts.raise(finding('device:pump-1'));
    expect(created).toBe(true);
    // A repeat adds an occurrence to the open alert, without an event of its own.
    const again = await alerts.raise(finding('device:pump-1', T0 + 5));
    expect(again).toMatchObject({
      created: false,
      alert: { id: alert.id, occurrences: 2, lastSeen: T0 + 5 },
    });
    const raised = await eventsOf('alert.raised');
    expect(raised.map((e) => [e.subject, e.data.alertId])).toEqual([['device:pump-1', alert.id]]);
  });

  it('rolls back acknowledge, assign, note and resolve with their events when the transaction fails', async () => {
    const { alert } = await alerts.raise(finding('device:pump-1'));
    const changes: [EventType, () => Promise<Alert>, Partial<Alert>][] = [
      ['alert.acknowledged', () => alerts.acknowledge(alert.id, 'user:alice'), { status: 'acknowledged' }],
      ['alert.assigned', () => alerts.assign(alert.id, 'bob', 'user:alice'), { assignee: 'bob' }],
      ['alert.noted', () => alerts.note(alert.id, 'looking', 'user:alice'), { notes: [expect.anything()] }],
      ['alert.resolved', () => alerts.resolve(alert.id, 'user:alice', 'fixed'), { status: 'resolved' }],
    ];
    for (const [type, change, changed] of changes) {
      const before = await alerts.get(alert.id);
      events.failOnceAt('written');
      await expect(change(), type).rejects.toThrow('failed at written');
      expect(await alerts.get(alert.id), type).toEqual(before);
      expect(await eventsOf(type), type).toEqual([]);
      expect(await change(), type).toMatchObject(changed);
      expect(await eventsOf(type), type).toHaveLength(1);
    }
  });

  it('keeps a change a crash interrupted after its commit with its event, relayed at the next start', async () => {
    const { alert } = await alerts.raise(finding('device:pump-1'));
    events.failOnceAt('committed');
    await expect(alerts.acknowledge(alert.id, 'user:alice')).rejects.toThrow('failed at committed');
    expect((await alerts.get(alert.id)).status).toBe('acknowledged');
    expect(await eventsOf('alert.acknowledged')).toEqual([]);
    // The next start relays what the outbox holds: the change is never without its event.
    await bus.close();
    bus = events.newBus();
    await bus.drainOutbox();
    const acknowledged = await eventsOf('alert.acknowledged');
    expect(acknowledged.map((e) => [e.actor, e.data])).toEqual([
      ['user:alice', { alertId: alert.id, detector: 'burst' }],
    ]);
    expect((await audit.verify()).ok).toBe(true);
  });

  it('resolves by itself with alert.resolved, and not when the transaction fails', async () => {
    const { alert } = await alerts.raise(finding('device:pump-1'));
    events.failOnceAt('written');
    await expect(alerts.autoResolve('burst', 'device:pump-1', 'quiet again')).rejects.toThrow();
    expect((await alerts.get(alert.id)).status).toBe('open');
    expect(await alerts.autoResolve('burst', 'device:pump-1', 'quiet again')).toMatchObject({
      status: 'resolved',
      resolvedBy: 'system',
      resolution: 'quiet again',
    });
    const resolved = await eventsOf('alert.resolved');
    expect(resolved.map((e) => e.data)).toEqual([
      { alertId: alert.id, detector: 'burst', automatic: true, resolution: 'quiet again' },
    ]);
  });

  it('records a response run with the alert and its event together, or neither', async () => {
    const { alert } = await alerts.raise(finding('device:pump-1', T0, 'pump-1'));
    const counters = { responses: 0, responseFailures: 0 };
    const responder = {
      alerts,
      now: () => T0 + 2000,
      counters,
      addressOfDevice: () => undefined,
      actions: {
        quarantine: () => Promise.resolve(),
        revoke: () => Promise.reject(new Error('the CA is offline')),
        banAddress: () => Promise.resolve(),
        disableUser: () => Promise.resolve(),
      },
    };
    const run = { action: 'quarantine', automatic: true, actor: 'system' } as const;
    // Its record fails after the write: the run is not kept as done, nor announced as done; it is recorded
    // (with response.failed) as a run that failed for that reason.
    events.failOnceAt('written');
    await execute(responder, alert, run);
    expect((await alerts.get(alert.id)).responsesRun).toEqual([
      {
        at: T0 + 2000,
        action: 'quarantine',
        automatic: true,
        actor: 'system',
        ok: false,
        detail: 'failed at written',
      },
    ]);
    expect(await eventsOf('response.executed')).toEqual([]);
    expect((await eventsOf('response.failed')).map((e) => e.data.reason)).toEqual(['failed at written']);

    await execute(responder, alert, run);
    await expect(
      execute(responder, alert, { action: 'revoke', automatic: false, actor: 'user:alice' }),
    ).rejects.toThrow('the CA is offline');
    const kept = (await alerts.get(alert.id)).responsesRun;
    expect(kept.filter((r) => r.ok)).toEqual([
      {
        at: T0 + 2000,
        action: 'quarantine',
        automatic: true,
        actor: 'system',
        ok: true,
        detail: 'device pump-1',
      },
    ]);
    expect(kept.filter((r) => !r.ok && r.action === 'revoke')).toEqual([
      expect.objectContaining({ actor: 'user:alice', detail: 'the CA is offline' }),
    ]);
    expect((await eventsOf('response.executed')).map((e) => e.data)).toEqual([
      {
        alertId: alert.id,
        action: 'quarantine',
        automatic: true,
        detector: 'burst',
        severity: 'high',
        title: 'burst from device:pump-1',
        detail: 'device pump-1',
      },
    ]);
    expect((await eventsOf('response.failed')).map((e) => e.data)).toEqual([
      { alertId: alert.id, action: 'quarantine', automatic: true, reason: 'failed at written' },
      { alertId: alert.id, action: 'revoke', automatic: false, reason: 'the CA is offline' },
    ]);
  });

  it('assigns only to an active user: an unknown or disabled one is refused, naming assignee', async () => {
    const { alert } = await alerts.raise(finding('device:pump-1'));
    for (const who of ['mallory', 'dora'])
      await expect(alerts.assign(alert.id, who, 'user:alice')).rejects.toMatchObject({
        code: 'validation_failed',
        message: `assignee: no active user ${who}`,
      });
    expect((await alerts.get(alert.id)).assignee).toBeNull();
    expect(await eventsOf('alert.assigned')).toEqual([]);
    expect(await alerts.assign(alert.id, 'bob', 'user:alice')).toMatchObject({ assignee: 'bob' });
    expect(await alerts.assign(alert.id, null, 'user:alice')).toMatchObject({ assignee: null });
    expect((await eventsOf('alert.assigned')).map((e) => e.data.assignee)).toEqual(['bob', null]);
    await expect(alerts.assign('no-such-alert', 'bob', 'user:alice')).rejects.toMatchObject({
      code: 'not_found',
    });
  });

  it('pages through alerts sharing one millisecond without skipping or repeating one', async () => {
    // 130 alerts in the same millisecond, between ones before and after it.
    const subjects = Array.from({ length: 130 }, (_, i) => `device:d-${String(i).padStart(3, '0')}`);
    for (const s of subjects) await alerts.raise(finding(s, T0));
    await alerts.raise(finding('device:newer', T0 + 1));
    await alerts.raise(finding('device:older', T0 - 1));
    const seen: Alert[] = [];
    let after: ReturnType<typeof parseCursor> | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const page = await alerts.page({ limit: 25, after });
      seen.push(...page.alerts);
      if (!page.next) break;
      // Through the API the cursor is text: it reads back as it was made.
      after = parseCursor(cursorText(page.next));
    }
    expect(seen).toHaveLength(132);
    expect(new Set(seen.map((a) => a.id)).size).toBe(132);
    expect(seen[0]?.subject).toBe('device:newer');
    expect(seen.at(-1)?.subject).toBe('device:older');
    expect(seen.map((a) => a.lastSeen)).toEqual([...seen.map((a) => a.lastSeen)].sort((a, b) => b - a));
    // `before` alone (kept for old clients) cannot page inside the millisecond: it skips the rest of it.
    const firstPage = await alerts.list({ limit: 25 });
    const skipping = await alerts.list({ before: firstPage.at(-1)?.lastSeen, limit: 1000 });
    expect(skipping.map((a) => a.subject)).toEqual(['device:older']);
  });

  it('pages a group-limited list from the last alert read, not the last one shown', async () => {
    for (let i = 0; i < 30; i++) {
      groups.set(`d-${i}`, i % 3 === 0 ? 'pumps' : 'valves');
      await alerts.raise(finding(`device:d-${i}`, T0, `d-${i}`));
    }
    const shown: string[] = [];
    let after: ReturnType<typeof parseCursor> | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = await alerts.page({ limit: 7, after, groups: ['pumps'] });
      shown.push(...page.alerts.map((a) => a.deviceId ?? ''));
      if (!page.next) break;
      after = page.next;
    }
    expect(shown.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `d-${i * 3}`).sort());
  });

  it('refuses a cursor it did not make, naming the field', () => {
    for (const bad of ['', 'not a cursor!', Buffer.from('12.').toString('base64url'), 'abc'])
      expect(() => parseCursor(bad), bad).toThrow(/^cursor: /);
    expect(parseCursor(cursorText({ lastSeen: T0, id: 'a-1' }))).toEqual({ lastSeen: T0, id: 'a-1' });
  });

  it('keeps a security profile change with its event, or neither', async () => {
    const profiles = createProfileService({ db: t.store.db, events: bus, now: () => T0 });
    const doc = { behaviours: [], responses: [] };
    events.failOnceAt('written');
    await expect(profiles.put('pumps', doc, 'user:alice')).rejects.toThrow('failed at written');
    await expect(profiles.get('pumps')).rejects.toMatchObject({ code: 'not_found' });
    expect(await eventsOf('monitor.profile_updated')).toEqual([]);
    await profiles.put('pumps', doc, 'user:alice');
    events.failOnceAt('written');
    await expect(
      profiles.attach('pumps', { kind: 'group', target: 'pumps' }, 'user:alice'),
    ).rejects.toThrow();
    expect((await profiles.get('pumps')).attachments).toEqual([]);
    events.failOnceAt('written');
    await expect(profiles.remove('pumps', 'user:alice')).rejects.toThrow();
    expect((await profiles.get('pumps')).version).toBe(1);
    expect(await eventsOf('monitor.profile_attached')).toEqual([]);
    expect(await eventsOf('monitor.profile_deleted')).toEqual([]);
    await profiles.attach('pumps', { kind: 'group', target: 'pumps' }, 'user:alice');
    await profiles.remove('pumps', 'user:alice');
    expect(
      (await audit.readAfter(0, 100)).map((e) => e.type).filter((x) => x.startsWith('monitor.')),
    ).toEqual(['monitor.profile_updated', 'monitor.profile_attached', 'monitor.profile_deleted']);
  });
});
