import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BulwarkError } from '@bulwark/protocol';
import { createAuditLog, createEventBus, entriesOf, type EventBus } from '../events/index.ts';
import { isBusy, isUniqueViolation, type Store } from '../store/index.ts';
import { createPrivacyTestContext, type PrivacyTestContext } from '../test-support/privacy-context.ts';
import { testDialects } from '../test-support/dialects.ts';
import { waitFor } from '../test-support/wait.ts';
import { roomSensor } from '../test-support/data-schemas.ts';
import { consentOf } from './privacy.live.ts';
import { createPrivacyService, type PrivacyService } from './privacy.service.ts';

const READING = { user_id: 'u-17', lat: 48.137154, lon: 11.576124, temp: 21.5 };

const codeOf = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  return err instanceof BulwarkError ? `${err.code}: ${err.message}` : String(err);
};

describe('consent by purpose', () => {
  it('is the record of the purpose, else of its nearest ancestor', () => {
    const consents = new Map([
      ['analytics', 'given' as const],
      ['analytics.reporting.ad_performance', 'withdrawn' as const],
    ]);
    expect(consentOf(consents, 'analytics')).toBe('given');
    expect(consentOf(consents, 'analytics.reporting')).toBe('given');
    expect(consentOf(consents, 'analytics.reporting.ad_performance')).toBe('withdrawn');
    expect(consentOf(consents, 'marketing.advertising')).toBeUndefined();
    expect(consentOf(undefined, 'analytics')).toBeUndefined();
  });
});

for (const dialect of testDialects) {
  describe(`the privacy service on ${dialect}`, () => {
    let c: PrivacyTestContext;
    let privacy: PrivacyService;
    const entries = async () => c.log.readAfter(0, 10_000);

    beforeEach(async () => {
      c = await createPrivacyTestContext(dialect);
      privacy = c.privacy;
    });
    afterEach(async () => {
      await c.close();
    });

    it('puts a data schema as version 1, then the next version with what changed, each with its event', async () => {
      const first = await privacy.putSchema(roomSensor(), 'user:ada');
      expect(first.created).toBe(true);
      expect(first.schema).toMatchObject({
        name: 'room-sensor',
        topic: 'devices/+/telemetry',
        version: 1,
        updatedBy: 'user:ada',
        createdAt: c.clock.now,
      });
      expect(first.schema.fields.find((f) => f.path === 'lat')).toMatchObject({
        personal: true,
        store: 'transformed',
        retentionMs: 30 * 86_400_000,
      });

      // The same document again changes nothing: no new version, no event.
      const again = await privacy.putSchema(roomSensor(), 'user:ada');
      expect(again).toMatchObject({ created: false, changes: [], schema: { version: 1 } });

      c.clock.now += 1000;
      const doc = roomSensor();
      doc.fields.lat = { ...doc.fields.lat, retention: '7d' };
      const second = await privacy.putSchema(doc, 'user:bob');
      expect(second.created).toBe(false);
      expect(second.schema).toMatchObject({ version: 2, updatedBy: 'user:bob', updatedAt: c.clock.now });
      expect(second.changes.join('\n')).toMatch(/lat/);

      const set = entriesOf(await entries(), 'privacy.schema_set');
      expect(set.map((e) => e.data.version)).toEqual([1, 2]);
      expect(set[0]).toMatchObject({
        actor: 'user:ada',
        subject: 'data_schema:room-sensor',
        data: { name: 'room-sensor', topic: 'devices/+/telemetry', fields: 4, personal: 3 },
      });
      expect(set[1]?.data.changes).toEqual(second.changes);
      expect((await privacy.listSchemas()).map((s) => [s.name, s.version])).toEqual([['room-sensor', 2]]);
      expect((await privacy.getSchema('room-sensor')).document.fields.lat?.retention).toBe('7d');
    });

    it('refuses a second schema on a topic (naming the one there), an invalid document, an unknown name', async () => {
      await privacy.putSchema(roomSensor(), 'user:ada');
      const other = { ...roomSensor(), name: 'other' };
      expect(await codeOf(privacy.putSchema(other, 'user:ada'))).toMatch(
        /^conflict: .*devices\/\+\/telemetry.*room-sensor/,
      );
      const bad = roomSensor();
      delete bad.fields.temp;
      expect(await codeOf(privacy.putSchema({ ...bad, name: 'bad' }, 'user:ada'))).toMatch(/temp/);
      expect(await codeOf(privacy.getSchema('nope'))).toMatch(/^not_found/);
      expect(await codeOf(privacy.removeSchema('nope', 'user:ada'))).toMatch(/^not_found/);
      expect((await privacy.listSchemas()).map((s) => s.name)).toEqual(['room-sensor']);
      expect(entriesOf(await entries(), 'privacy.schema_set')).toHaveLength(1);
    });

    it('removes a schema with its event; the live view forgets its topic', async () => {
      await privacy.putSchema(roomSensor(), 'user:ada');
      expect(privacy.live.match('devices/pump-1/telemetry')?.name).toBe('room-sensor');
      expect(privacy.live.empty).toBe(false);
      expect(await privacy.removeSchema('room-sensor', 'user:ada')).toEqual({
        name: 'room-sensor',
        topic: 'devices/+/telemetry',
      });
      expect(privacy.live.match('devices/pump-1/telemetry')).toBeUndefined();
      expect(privacy.live.empty).toBe(true);
      expect(entriesOf(await entries(), 'privacy.schema_removed')).toMatchObject([
        { actor: 'user:ada', subject: 'data_schema:room-sensor', data: { name: 'room-sensor' } },
      ]);
      // The topic is free for another schema.
      await privacy.putSchema({ ...roomSensor(), name: 'room-sensor-2' }, 'user:ada');
    });

    it('tests a payload against the stored schema: refused with the reason, or what is kept and seen', async () => {
      await privacy.putSchema(roomSensor(), 'user:ada');
      const topic = 'devices/pump-1/telemetry';
      const ok = await privacy.testSchema({
        topic,
        payload: JSON.stringify(READING),
        purpose: 'analytics.reporting',
      });
      expect(ok).toMatchObject({ schema: 'room-sensor', valid: true, subject: 'u-17' });
      const view = ok.view as Record<string, unknown>;
      expect(view.user_id).toMatch(/^ps1\./);
      expect(view.temp).toBe(21.5);
      expect(view.lat).not.toBe(READING.lat);
      expect(JSON.stringify(ok.kept)).not.toContain('u-17');

      const allowed = await privacy.testSchema({
        topic,
        payload: JSON.stringify(READING),
        purpose: 'essential.service.operations',
      });
      expect(allowed.view).toEqual(READING);

      const bad = await privacy.testSchema({
        topic,
        payload: JSON.stringify({ user_id: 'u-17', temp: 'hot' }),
      });
      expect(bad).toMatchObject({ schema: 'room-sensor', valid: false, kept: null, view: null });
      expect(bad.reason).toMatch(/temp/);
      expect(await privacy.testSchema({ topic: 'devices/pump-1/other', payload: '{"a":1}' })).toEqual({
        schema: null,
        valid: true,
        subject: null,
        kept: { a: 1 },
        view: { a: 1 },
      });
    });

    it('adds a data subject with links, updates links and records consent, each with its person: event', async () => {
      const added = await privacy.addSubject(
        { id: 'u-17', devices: ['pump-1'], users: ['alice'] },
        'user:ada',
      );
      expect(added).toMatchObject({
        id: 'u-17',
        kind: 'customer',
        restrictedAt: null,
        devices: ['pump-1'],
        users: ['alice'],
        consents: [],
        requests: [],
      });
      expect(privacy.live.subjectOfDevice('pump-1')).toBe('u-17');

      c.clock.now += 1000;
      const updated = await privacy.updateSubject(
        'u-17',
        { addDevices: ['pump-2'], removeUsers: ['alice'], removeDevices: ['not-linked'] },
        'user:ada',
      );
      expect(updated).toMatchObject({ devices: ['pump-1', 'pump-2'], users: [], updatedAt: c.clock.now });

      expect(
        await codeOf(privacy.setConsent('u-17', { purpose: 'analytics', status: 'given' }, 'user:ada')),
      ).toMatch(/^validation_failed: noticeVersion/);
      expect(
        await codeOf(
          privacy.setConsent(
            'u-17',
            { purpose: 'no.such.use', noticeVersion: 'v1', status: 'given' },
            'user:ada',
          ),
        ),
      ).toMatch(/^validation_failed: purpose/);
      const given = await privacy.setConsent(
        'u-17',
        { purpose: 'analytics', noticeVersion: 'v1', status: 'given' },
        'user:ada',
      );
      expect(given).toMatchObject({ purpose: 'analytics', noticeVersion: 'v1', status: 'given' });
      expect(privacy.live.consent('u-17', 'analytics.reporting')).toBe('given');
      await privacy.setConsent('u-17', { purpose: 'analytics.reporting', status: 'withdrawn' }, 'user:ada');
      expect(privacy.live.consent('u-17', 'analytics.reporting')).toBe('withdrawn');
      expect(privacy.live.consent('u-17', 'analytics')).toBe('given');
      expect(privacy.live.consent('u-17', 'marketing')).toBeUndefined();

      const detail = await privacy.getSubject('u-17');
      expect(detail.consents).toMatchObject([
        { purpose: 'analytics', status: 'given', noticeVersion: 'v1' },
        { purpose: 'analytics.reporting', status: 'withdrawn', noticeVersion: 'unspecified' },
      ]);
      const log = await entries();
      expect(entriesOf(log, 'privacy.subject_added')).toMatchObject([
        { subject: 'person:u-17', data: { kind: 'customer', devices: ['pump-1'], users: ['alice'] } },
      ]);
      expect(entriesOf(log, 'privacy.subject_updated')).toMatchObject([
        { subject: 'person:u-17', data: { changes: { addDevices: ['pump-2'], removeUsers: ['alice'] } } },
      ]);
      expect(entriesOf(log, 'privacy.consent_given')).toMatchObject([
        { subject: 'person:u-17', data: { purpose: 'analytics', noticeVersion: 'v1' } },
      ]);
      expect(entriesOf(log, 'privacy.consent_withdrawn')).toHaveLength(1);
    });

    it('lifts a restriction (Art. 18(3)) with its event; the live view delivers again', async () => {
      await privacy.addSubject({ id: 'u-17' }, 'user:ada');
      // Not restricted: nothing to lift, no event.
      expect(await privacy.liftRestriction('u-17', 'user:ada')).toMatchObject({ restrictedAt: null });
      await privacy.createRequest({ subject: 'u-17', kind: 'restriction' }, 'user:ada');
      expect(privacy.live.restricted('u-17')).toBe(true);
      c.clock.now += 1000;
      const lifted = await privacy.liftRestriction('u-17', 'user:ada');
      expect(lifted).toMatchObject({ id: 'u-17', restrictedAt: null, updatedAt: c.clock.now });
      expect(privacy.live.restricted('u-17')).toBe(false);
      expect(
        entriesOf(await entries(), 'privacy.subject_updated').map((e) => [e.actor, e.subject, e.data]),
      ).toEqual([
        ['user:ada', 'person:u-17', { changes: { restricted: true } }],
        ['user:ada', 'person:u-17', { changes: { restricted: false } }],
      ]);
      expect(await codeOf(privacy.liftRestriction('u-99', 'user:ada'))).toMatch(/^not_found/);
    });

    it('refuses bad subject ids, duplicates, unknown subjects; a device shared by two has no subject', async () => {
      expect(await codeOf(privacy.addSubject({ id: 'person:x' }, 'user:ada'))).toMatch(/^validation_failed/);
      expect(await codeOf(privacy.addSubject({ id: 'u 1' }, 'user:ada'))).toMatch(/^validation_failed/);
      expect(await codeOf(privacy.addSubject({ id: 'u-1', kind: 'nobody' }, 'user:ada'))).toMatch(
        /^validation_failed: kind/,
      );
      await privacy.addSubject({ id: 'u-1', devices: ['shared'] }, 'user:ada');
      expect(await codeOf(privacy.addSubject({ id: 'u-1' }, 'user:ada'))).toMatch(/^conflict/);
      expect(await codeOf(privacy.getSubject('u-2'))).toMatch(/^not_found/);
      expect(await codeOf(privacy.updateSubject('u-2', { addDevices: ['x'] }, 'user:ada'))).toMatch(
        /^not_found/,
      );
      expect(privacy.live.subjectOfDevice('shared')).toBe('u-1');
      await privacy.addSubject({ id: 'u-2', devices: ['shared'] }, 'user:ada');
      expect(privacy.live.subjectOfDevice('shared')).toBeNull();
      expect((await privacy.listSubjects({ limit: 10 })).map((s) => s.id)).toEqual(['u-1', 'u-2']);
      expect((await privacy.listSubjects({ after: 'u-1', limit: 10 })).map((s) => s.id)).toEqual(['u-2']);
    });

    it('checks that linked devices and users exist when the platform gives the check', async () => {
      const checked = createPrivacyService({
        ...c.deps,
        exists: {
          device: (id) => Promise.resolve(id === 'pump-1'),
          user: (name) => Promise.resolve(name === 'alice'),
        },
      });
      expect(await codeOf(checked.addSubject({ id: 'u-1', devices: ['pump-9'] }, 'user:ada'))).toMatch(
        /^not_found: no device pump-9/,
      );
      expect(await codeOf(checked.addSubject({ id: 'u-1', users: ['mallory'] }, 'user:ada'))).toMatch(
        /^not_found: no user mallory/,
      );
      await checked.addSubject({ id: 'u-1', devices: ['pump-1'], users: ['alice'] }, 'user:ada');
      expect(await codeOf(checked.updateSubject('u-1', { addDevices: ['pump-9'] }, 'user:ada'))).toMatch(
        /^not_found/,
      );
    });

    it("exports the subject's privacy records (module privacy) and erases them; requests stay without the id", async () => {
      await privacy.addSubject({ id: 'u-17', devices: ['pump-1'] }, 'user:ada');
      await privacy.setConsent(
        'u-17',
        { purpose: 'analytics', noticeVersion: 'v1', status: 'given' },
        'user:ada',
      );
      const records = await privacy.subjectData.exportSubject({ kind: 'person', id: 'u-17' });
      expect(privacy.subjectData.module).toBe('privacy');
      expect(records.map((r) => r.record)).toEqual(['subject', 'consent']);
      expect(await privacy.subjectData.exportSubject({ kind: 'device', id: 'pump-1' })).toEqual([]);
      expect(await privacy.subjectData.eraseSubject({ kind: 'person', id: 'u-17' }, 'user:ada')).toEqual({
        erased: 3,
      });
      expect(await privacy.subjectData.exportSubject({ kind: 'person', id: 'u-17' })).toEqual([]);
      expect(await privacy.subjectData.eraseSubject({ kind: 'person', id: 'u-17' }, 'user:ada')).toEqual({
        erased: 0,
      });
    });
  });

  describe(`starting the privacy service on ${dialect}`, () => {
    let c: PrivacyTestContext;
    beforeEach(async () => {
      c = await createPrivacyTestContext(dialect);
    });
    afterEach(async () => {
      await c.close();
    });

    it('makes the pseudonymisation keys at start and deletes those past the kept periods, with an event', async () => {
      // Started by the test context: this and the next period's keys exist; nothing was deleted, no event.
      const periods = async () =>
        (
          await c.t.store.db.selectFrom('privacy_pseudonym_keys').select('period').orderBy('period').execute()
        ).map((r) => Number(r.period));
      const day = c.deps.settings.pseudonymKeyPeriodMs;
      const first = Math.floor(c.clock.now / day);
      expect(await periods()).toEqual([first, first + 1]);
      expect(entriesOf(await c.log.readAfter(0, 1000), 'privacy.pseudonym_key_rotated')).toEqual([]);

      // Three periods later (two kept): the first two periods' keys go; their tokens are unlinkable.
      await c.privacy.stop();
      c.clock.now += 3 * day;
      await c.privacy.start();
      expect(await periods()).toEqual([first + 3, first + 4]);
      expect(entriesOf(await c.log.readAfter(0, 1000), 'privacy.pseudonym_key_rotated')).toMatchObject([
        { actor: 'system', data: { period: first + 3, deletedPeriods: 2 } },
      ]);
    });
  });

  describe(`the live view across processes on ${dialect}`, () => {
    let c: PrivacyTestContext;
    let other: { store: Store; bus: EventBus; privacy: PrivacyService } | undefined;

    beforeEach(async () => {
      c = await createPrivacyTestContext(dialect);
    });
    afterEach(async () => {
      await other?.privacy.stop();
      await other?.bus.close();
      await other?.store.close();
      other = undefined;
      await c.close();
    });

    it("follows another process's schema, subject and consent changes through the audit log", async () => {
      // A second process (the CLI, another node): its own connection, audit log and bus, following the log.
      const store = await c.t.openAnother();
      const log = createAuditLog({
        db: store.db,
        mac: c.deps.box,
        now: c.deps.now,
        isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
      });
      const bus = createEventBus({ log, db: store.db });
      const privacy = createPrivacyService({ ...c.deps, db: store.db, events: bus });
      other = { store, bus, privacy };
      await privacy.start();
      bus.startTail(20);

      expect(privacy.live.empty).toBe(true);
      await c.privacy.putSchema(roomSensor(), 'cli');
      await c.privacy.addSubject({ id: 'u-17', devices: ['pump-1'] }, 'cli');
      await c.privacy.setConsent(
        'u-17',
        { purpose: 'analytics', noticeVersion: 'v1', status: 'withdrawn' },
        'cli',
      );
      await waitFor('the other process sees the schema', () => privacy.live.match('devices/x/telemetry'));
      await waitFor('and the link', () => privacy.live.subjectOfDevice('pump-1') === 'u-17');
      await waitFor(
        'and the consent',
        () => privacy.live.consent('u-17', 'analytics.reporting') === 'withdrawn',
      );

      await c.privacy.removeSchema('room-sensor', 'cli');
      await waitFor('the schema removed there too', () => privacy.live.empty);

      // An erasure elsewhere: this process drops the data keys it cached (the erased one is gone for good).
      await privacy.keys.loadSubjectKey('person:u-17');
      expect(privacy.keys.subjectKey('person:u-17')).toBeDefined();
      await c.privacy.createRequest({ subject: 'u-17', kind: 'erasure' }, 'cli');
      await waitFor('the cached key dropped', () => privacy.keys.subjectKey('person:u-17') === undefined);
      await waitFor('the link gone', () => privacy.live.subjectOfDevice('pump-1') === null);
    });
  });
}
