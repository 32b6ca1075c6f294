import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { createAuditLog, createEventBus, type AuditLog, type EventBus } from '../events/index.ts';
import { createSecretBox } from '../secrets/index.ts';
import { isBusy, isUniqueViolation } from '../store/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { createPhysicalSites, resolveWhen, type PhysicalSites } from './physical.service.ts';

const DAY = 86_400_000;
const box = createSecretBox(randomBytes(32));

/** The refusal `work` ends with: its code and message. */
async function refusal(work: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await work;
  } catch (err) {
    if (err instanceof BulwarkError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('resolveWhen', () => {
  const now = Date.UTC(2027, 0, 1);
  it('reads epoch ms, a duration from now, a date (end of day, UTC) and an ISO date-time', () => {
    expect(resolveWhen(now + 5, 'reviewAt', now)).toBe(now + 5);
    expect(resolveWhen('90d', 'reviewAt', now)).toBe(now + 90 * DAY);
    expect(resolveWhen(' 12h ', 'reviewAt', now)).toBe(now + 12 * 3_600_000);
    expect(resolveWhen('2027-03-31', 'reviewAt', now)).toBe(Date.UTC(2027, 2, 31, 23, 59, 59, 999));
    expect(resolveWhen('2027-03-31T08:00:00Z', 'reviewAt', now)).toBe(Date.UTC(2027, 2, 31, 8));
  });
  it('refuses anything else, naming the field and the forms', () => {
    for (const bad of ['soon', '90', '2027-02-30', '90 days', ''])
      expect(() => resolveWhen(bad, 'expiresAt', now)).toThrow(/^expiresAt: ".*" is neither a duration/);
    expect(() => resolveWhen(1.5, 'reviewAt', now)).toThrow(/^reviewAt: epoch milliseconds/);
  });
});

for (const dialect of testDialects) {
  describe(`physical sites on ${dialect}`, () => {
    let t: TestStore;
    let audit: AuditLog;
    let bus: EventBus;
    let clock: number;
    let groups: string[];
    let sites: PhysicalSites;

    const entries = async () => audit.readAfter(0);
    const auditTypes = async () => (await entries()).map((e) => e.type);

    beforeEach(async () => {
      t = await createTestStore(dialect);
      clock = 1000 * DAY;
      groups = ['plant-floor', 'warehouse', 'lab'];
      audit = createAuditLog({
        db: t.store.db,
        mac: box,
        now: () => clock,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      await audit.ensureAnchor();
      bus = createEventBus({ log: audit, db: t.store.db });
      sites = createPhysicalSites({
        db: t.store.db,
        events: bus,
        now: () => clock,
        deviceGroups: () => Promise.resolve(groups),
      });
    });
    afterEach(async () => {
      await bus.close();
      await t.cleanup();
    });

    it('creates and changes a site with one event per change; an unchanged put records nothing', async () => {
      const created = await sites.put(
        'plant-1',
        { owner: ' Facilities (Ada) ', groups: ['warehouse', 'plant-floor', 'warehouse'] },
        'user:ada',
      );
      expect(created).toEqual({
        name: 'plant-1',
        description: null,
        owner: 'Facilities (Ada)',
        groups: ['plant-floor', 'warehouse'],
        updatedAt: clock,
        updatedBy: 'user:ada',
        access: [],
      });
      clock += 1000;
      await sites.put(
        'plant-1',
        { owner: 'Facilities (Ada)', groups: ['plant-floor', 'warehouse'] },
        'user:bob',
      );
      expect((await sites.get('plant-1')).updatedBy).toBe('user:ada');
      const changed = await sites.put(
        'plant-1',
        { owner: 'Plant manager', description: 'North gate', groups: [] },
        'user:bob',
      );
      expect(changed).toMatchObject({ owner: 'Plant manager', description: 'North gate', groups: [] });

      const events = (await entries()).filter((e) => e.type === 'physical.site_updated');
      expect(events.map((e) => [e.subject, e.actor, e.data])).toEqual([
        [
          'site:plant-1',
          'user:ada',
          { owner: 'Facilities (Ada)', groups: ['plant-floor', 'warehouse'], created: true },
        ],
        ['site:plant-1', 'user:bob', { owner: 'Plant manager', groups: [], created: false }],
      ]);
      expect((await sites.list()).map((s) => s.name)).toEqual(['plant-1']);
    });

    it('refuses a bad site, naming the field, and stores nothing', async () => {
      const bad = await refusal(sites.put('-bad', { owner: 'x' }, 'cli'));
      expect(bad.code).toBe('validation_failed');
      expect(bad.message).toMatch(/^site "-bad": names are 1-64/);
      expect(await refusal(sites.put('ok', { owner: '  ' }, 'cli'))).toMatchObject({
        message: 'owner: required',
      });
      expect(await refusal(sites.put('ok', { owner: 'o', groups: ['a', ''] }, 'cli'))).toMatchObject({
        message: 'groups[1]: required',
      });
      expect(await refusal(sites.get('ok'))).toMatchObject({ code: 'not_found', message: 'no site "ok"' });
      expect(await sites.list()).toEqual([]);
      expect(await auditTypes()).not.toContain('physical.site_updated');
    });

    it('grants access with a review date, lists it on the site, and revokes it once', async () => {
      await sites.put('plant-1', { owner: 'Ada' }, 'user:ada');
      const granted = await sites.grant(
        'plant-1',
        { person: 'Grace Hopper', role: 'maintenance', reviewAt: '90d', expiresAt: '2030-01-31' },
        'user:ada',
      );
      const { id, ...rest } = granted;
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect(rest).toEqual({
        site: 'plant-1',
        person: 'Grace Hopper',
        subject: null,
        role: 'maintenance',
        grantedBy: 'user:ada',
        grantedAt: clock,
        reviewAt: clock + 90 * DAY,
        expiresAt: Date.UTC(2030, 0, 31, 23, 59, 59, 999),
      });
      expect((await sites.get('plant-1')).access).toEqual([granted]);
      const event = (await entries()).find((e) => e.type === 'physical.access_granted');
      expect(event?.subject).toBe('site:plant-1');
      if (event?.type === 'physical.access_granted')
        expect(event.data).toMatchObject({
          accessId: granted.id,
          person: 'Grace Hopper',
          role: 'maintenance',
        });
      // The person is personal data: the chained row holds a sealed reference, never the name.
      const rows = await t.store.db.selectFrom('audit_log').select('data').execute();
      expect(rows.map((r) => r.data).join('\n')).not.toContain('Grace Hopper');

      expect(
        await refusal(sites.revoke('plant-1', { id: granted.id, reason: ' ' }, 'user:ada')),
      ).toMatchObject({
        message: 'reason: required',
      });
      expect(
        await sites.revoke('plant-1', { id: granted.id, reason: 'left the company' }, 'user:ada'),
      ).toEqual({
        removed: true,
      });
      expect(await sites.revoke('plant-1', { id: granted.id, reason: 'again' }, 'user:ada')).toEqual({
        removed: false,
      });
      const revoked = (await entries()).filter((e) => e.type === 'physical.access_revoked');
      expect(revoked.map((e) => e.data)).toEqual([
        { accessId: granted.id, person: 'Grace Hopper', reason: 'left the company' },
      ]);
      expect((await sites.get('plant-1')).access).toEqual([]);
    });

    it('refuses a grant on no site, with dates in the past or a review after expiry', async () => {
      const grant = (over: object) =>
        refusal(sites.grant('plant-1', { person: 'Grace', reviewAt: '30d', ...over }, 'user:ada'));
      expect(await grant({})).toMatchObject({ code: 'not_found', message: 'no site "plant-1"' });
      await sites.put('plant-1', { owner: 'Ada' }, 'user:ada');
      expect(await grant({ reviewAt: clock - 1 })).toMatchObject({
        message: 'reviewAt: must be in the future',
      });
      expect(await grant({ expiresAt: clock })).toMatchObject({
        message: 'expiresAt: must be in the future',
      });
      expect(await grant({ expiresAt: '7d' })).toMatchObject({
        message: 'reviewAt: must not be after expiresAt',
      });
      expect(await grant({ person: '' })).toMatchObject({ message: 'person: required' });
      expect(await grant({ reviewAt: 'next year' })).toMatchObject({ code: 'validation_failed' });
      const other = await sites.put('plant-2', { owner: 'Bob' }, 'user:bob');
      const record = await sites.grant('plant-2', { person: 'Grace', reviewAt: '30d' }, 'user:bob');
      // A record of another site is not this site's to revoke.
      expect(await sites.revoke('plant-1', { id: record.id, reason: 'wrong site' }, 'user:ada')).toEqual({
        removed: false,
      });
      expect(
        await refusal(sites.revoke('nowhere', { id: record.id, reason: 'x' }, 'user:ada')),
      ).toMatchObject({
        code: 'not_found',
      });
      expect((await sites.get(other.name)).access).toHaveLength(1);
      expect((await sites.get('plant-1')).access).toEqual([]);
    });

    it('states the facts the compliance check reads: records in force, overdue reviews, expired ones', async () => {
      expect(await sites.complianceFacts()).toEqual({ sites: [], groupsWithoutSite: groups });
      await sites.put('plant-1', { owner: 'Ada', groups: ['plant-floor'] }, 'user:ada');
      await sites.put('lab-2', { owner: 'Bob', groups: ['lab'] }, 'user:bob');
      const soon = await sites.grant(
        'plant-1',
        { person: 'Grace', role: 'cleaning', reviewAt: '10d' },
        'user:ada',
      );
      await sites.grant('plant-1', { person: 'Alan', reviewAt: '15d', expiresAt: '20d' }, 'user:ada');
      await sites.grant('plant-1', { person: 'Edsger', reviewAt: '90d' }, 'user:ada');

      const now = await sites.complianceFacts();
      expect(now.groupsWithoutSite).toEqual(['warehouse']);
      expect(now.sites).toEqual([
        {
          name: 'lab-2',
          owner: 'Bob',
          groups: ['lab'],
          access: 0,
          overdueReviews: 0,
          expired: 0,
          overdue: [],
        },
        {
          name: 'plant-1',
          owner: 'Ada',
          groups: ['plant-floor'],
          access: 3,
          overdueReviews: 0,
          expired: 0,
          overdue: [],
        },
      ]);

      clock += 30 * DAY;
      const later = await sites.complianceFacts();
      expect(later.sites[1]).toMatchObject({
        access: 2,
        overdueReviews: 1,
        expired: 1,
        overdue: [{ id: soon.id, role: 'cleaning', reviewAt: soon.reviewAt }],
      });
      // Without the devices door the platform cannot tell which groups have no site: the fact is left out.
      const alone = createPhysicalSites({ db: t.store.db, events: bus, now: () => clock });
      expect(await alone.complianceFacts()).not.toHaveProperty('groupsWithoutSite');
    });

    it('answers a data-subject request for a person: exports their records, then erases them', async () => {
      await sites.put('plant-1', { owner: 'Ada' }, 'user:ada');
      await sites.put('plant-2', { owner: 'Ada' }, 'user:ada');
      await sites.grant('plant-1', { person: 'Grace', reviewAt: '30d' }, 'user:ada');
      await sites.grant('plant-2', { person: 'Grace', role: 'audit', reviewAt: '30d' }, 'user:ada');
      await sites.grant('plant-2', { person: 'Alan', reviewAt: '30d' }, 'user:ada');
      const grace = { kind: 'person', id: 'Grace' } as const;

      const exported = await sites.subjectData.exportSubject(grace);
      expect(exported.map((r) => [r.record, r.site, r.person])).toEqual([
        ['site_access', 'plant-1', 'Grace'],
        ['site_access', 'plant-2', 'Grace'],
      ]);
      expect(await sites.subjectData.exportSubject({ kind: 'device', id: 'Grace' })).toEqual([]);
      expect(await sites.subjectData.eraseSubject({ kind: 'device', id: 'Grace' }, 'cli')).toEqual({
        erased: 0,
      });
      expect(await sites.subjectData.eraseSubject(grace, 'cli')).toEqual({ erased: 2 });
      expect(await sites.subjectData.exportSubject(grace)).toEqual([]);
      expect((await sites.list()).flatMap((s) => s.access.map((a) => a.person))).toEqual(['Alan']);
    });

    it("links a record to the person's data-subject id, which their requests reach; refuses a malformed id", async () => {
      await sites.put('plant-1', { owner: 'Ada' }, 'user:ada');
      const granted = await sites.grant(
        'plant-1',
        { person: 'Grace Hopper', subject: 'emp-1906', reviewAt: '30d' },
        'user:ada',
      );
      expect(granted).toMatchObject({ person: 'Grace Hopper', subject: 'emp-1906' });
      // The log names the subject id only: the name stays in the record, which the request erases.
      const logged = (await entries()).filter((e) => e.type === 'physical.access_granted');
      expect(logged.at(-1)?.data).toEqual({
        accessId: granted.id,
        role: null,
        reviewAt: granted.reviewAt,
        expiresAt: null,
      });
      // A record linked to another subject is not this name's, even when the name equals an id.
      await sites.grant('plant-1', { person: 'alan', subject: 'emp-1912', reviewAt: '30d' }, 'user:ada');
      expect(await sites.subjectData.exportSubject({ kind: 'person', id: 'alan' })).toEqual([]);
      await sites.grant('plant-1', { person: 'Alan Turing', reviewAt: '30d' }, 'user:ada');
      await expect(
        sites.grant('plant-1', { person: 'Eve', subject: 'has spaces', reviewAt: '30d' }, 'user:ada'),
      ).rejects.toThrow(/subject: "has spaces" is not a subject id/);
      const subject = { kind: 'person', id: 'emp-1906' } as const;
      expect((await sites.subjectData.exportSubject(subject)).map((r) => r.person)).toEqual(['Grace Hopper']);
      expect(await sites.subjectData.eraseSubject(subject, 'cli')).toEqual({ erased: 1 });
      expect((await sites.get('plant-1')).access.map((a) => a.person).sort()).toEqual([
        'Alan Turing',
        'alan',
      ]);
      // The erasure is a change to the site's access list: its event names no one.
      const revoked = (await entries()).filter((e) => e.type === 'physical.access_revoked');
      expect(revoked.at(-1)).toMatchObject({
        actor: 'cli',
        subject: 'site:plant-1',
        data: { accessId: granted.id, reason: 'data-subject erasure' },
      });
    });
  });
}
