import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api } from '@bulwark/protocol';
import { encryptValue } from './keys.ts';
import { createTestPlatform, type TestCredentials, type TestPlatform } from '../test-support/platform.ts';
import { roomSensorWithHeartRate } from '../test-support/data-schemas.ts';

/** The room sensor, as the API takes it (JSON). */
const ROOM_SENSOR = roomSensorWithHeartRate();

const READING = JSON.stringify({ user_id: 'u-17', lat: 48.137154, lon: 11.576124, temp: 21.5 });

/** `/api/v1/privacy` in-process: answers shaped by the contracts, access by role, errors as problems. */
describe('privacy API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let admin: TestCredentials;
  let auditor: TestCredentials;
  let viewer: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    admin = await t.signIn('admin');
    auditor = await t.signIn('auditor');
    viewer = await t.signIn('viewer');
    await t.platform.devices.add({ id: 'sensor-1', group: 'rooms' }, 'test');
  });
  afterAll(async () => t?.close());

  const call = (
    who: TestCredentials,
    method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE',
    url: string,
    payload?: object,
  ) => t.app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });

  it('puts a data schema, lists, shows and tests it, and removes it', async () => {
    const put = await call(admin, 'PUT', '/api/v1/privacy/schemas/room-sensor', ROOM_SENSOR);
    expect(put.statusCode, put.body).toBe(200);
    const created = api.privacy.putSchema.response[200].strict().parse(put.json());
    expect(created).toMatchObject({ created: true, schema: { name: 'room-sensor', version: 1 } });
    expect(created.schema.fields.map((f) => f.path).sort()).toEqual(['hr', 'lat', 'lon', 'temp', 'user_id']);

    const again = await call(admin, 'PUT', '/api/v1/privacy/schemas/room-sensor', {
      ...ROOM_SENSOR,
      fields: { ...ROOM_SENSOR.fields, temp: { ...ROOM_SENSOR.fields.temp, description: 'room °C' } },
    });
    expect(again.json()).toMatchObject({ created: false, schema: { version: 2 } });

    const listed = z
      .array(api.privacy.dataSchemaView.strict())
      .parse((await call(auditor, 'GET', '/api/v1/privacy/schemas')).json());
    expect(listed.map((s) => s.name)).toEqual(['room-sensor']);
    const shown = api.privacy.dataSchemaView
      .strict()
      .parse((await call(auditor, 'GET', '/api/v1/privacy/schemas/room-sensor')).json());
    expect(shown.fields.find((f) => f.path === 'lat')).toMatchObject({
      personal: true,
      category: 'user.location.precise',
      store: 'transformed',
      retentionMs: 30 * 86_400_000,
    });

    const analytics = api.privacy.schemaTestResult.strict().parse(
      (
        await call(auditor, 'POST', '/api/v1/privacy/schemas/test', {
          topic: 'devices/sensor-1/telemetry',
          payload: READING,
          purpose: 'analytics.reporting',
        })
      ).json(),
    );
    expect(analytics).toMatchObject({ schema: 'room-sensor', valid: true, subject: 'u-17' });
    expect(analytics.view).toMatchObject({ user_id: expect.stringMatching(/^ps1\./) as string, temp: 21.5 });
    expect(JSON.stringify(analytics.kept)).not.toContain('u-17');

    const refused = (
      await call(admin, 'POST', '/api/v1/privacy/schemas/test', {
        topic: 'devices/sensor-1/telemetry',
        payload: '{"user_id":"u-17","temp":"hot"}',
      })
    ).json<{ valid: boolean; reason: string }>();
    expect(refused.valid).toBe(false);
    expect(refused.reason).toMatch(/temp/);

    const scratch = await call(admin, 'PUT', '/api/v1/privacy/schemas/scratch', {
      ...ROOM_SENSOR,
      name: 'scratch',
      topic: 'devices/+/scratch',
    });
    expect(scratch.json()).toMatchObject({ created: true });
    const removed = await call(admin, 'DELETE', '/api/v1/privacy/schemas/scratch');
    expect(api.privacy.removeSchema.response[200].strict().parse(removed.json())).toEqual({
      name: 'scratch',
      topic: 'devices/+/scratch',
    });
    expect((await call(admin, 'GET', '/api/v1/privacy/schemas/scratch')).statusCode).toBe(404);
  });

  it('refuses a bad schema with a 400 problem naming the field and rule, and changes nothing', async () => {
    const { retention: _dropped, ...latWithoutRetention } = ROOM_SENSOR.fields.lat ?? {};
    const bad = await call(admin, 'PUT', '/api/v1/privacy/schemas/bad-sensor', {
      ...ROOM_SENSOR,
      name: 'bad-sensor',
      topic: 'devices/+/bad',
      fields: { ...ROOM_SENSOR.fields, lat: latWithoutRetention },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(bad.json()).toMatchObject({
      code: 'validation_failed',
      detail: expect.stringMatching(/fields\.lat: .*retention/) as string,
    });

    const unknownCategory = await call(admin, 'PUT', '/api/v1/privacy/schemas/bad-sensor', {
      ...ROOM_SENSOR,
      name: 'bad-sensor',
      topic: 'devices/+/bad',
      fields: { ...ROOM_SENSOR.fields, temp: { category: 'system.operatons' } },
    });
    expect(unknownCategory.statusCode).toBe(400);
    expect(unknownCategory.json<{ detail: string }>().detail).toMatch(/temp/);

    const otherName = await call(admin, 'PUT', '/api/v1/privacy/schemas/other', ROOM_SENSOR);
    expect(otherName.statusCode).toBe(400);
    expect(otherName.json<{ detail: string }>().detail).toMatch(/^name: /);

    expect((await call(admin, 'GET', '/api/v1/privacy/schemas/bad-sensor')).statusCode).toBe(404);
    expect((await call(admin, 'DELETE', '/api/v1/privacy/schemas/never')).statusCode).toBe(404);
  });

  it('adds a subject, links a device, records consent, and pages the subjects', async () => {
    const added = await call(admin, 'POST', '/api/v1/privacy/subjects', { id: 'u-17', kind: 'customer' });
    expect(added.statusCode, added.body).toBe(201);
    expect(api.privacy.subjectDetail.strict().parse(added.json())).toMatchObject({
      id: 'u-17',
      kind: 'customer',
      devices: [],
    });
    await call(admin, 'POST', '/api/v1/privacy/subjects', { id: 'u-18' });

    const linked = await call(admin, 'PATCH', '/api/v1/privacy/subjects/u-17', { addDevices: ['sensor-1'] });
    expect(linked.json()).toMatchObject({ devices: ['sensor-1'] });

    const consented = await call(admin, 'POST', '/api/v1/privacy/subjects/u-17/consents', {
      purpose: 'essential.service.operations',
      noticeVersion: 'v1',
      status: 'given',
    });
    expect(consented.statusCode).toBe(200);
    expect(api.privacy.subjectDetail.strict().parse(consented.json()).consents).toMatchObject([
      { purpose: 'essential.service.operations', noticeVersion: 'v1', status: 'given' },
    ]);

    const first = api.privacy.listSubjects.response[200]
      .strict()
      .parse((await call(auditor, 'GET', '/api/v1/privacy/subjects?limit=1')).json());
    expect(first.subjects.map((s) => s.id)).toEqual(['u-17']);
    expect(first.next).toBe('u-17');
    const second = (
      await call(auditor, 'GET', `/api/v1/privacy/subjects?limit=1&after=${first.next ?? ''}`)
    ).json<{ subjects: { id: string }[] }>();
    expect(second.subjects.map((s) => s.id)).toEqual(['u-18']);

    expect((await call(admin, 'GET', '/api/v1/privacy/subjects/u-99')).statusCode).toBe(404);
    expect(
      (
        await call(admin, 'POST', '/api/v1/privacy/subjects/u-99/consents', {
          purpose: 'analytics.reporting',
          noticeVersion: 'v1',
          status: 'given',
        })
      ).statusCode,
    ).toBe(404);
    const badId = await call(admin, 'POST', '/api/v1/privacy/subjects', { id: 'person:u-1' });
    expect(badId.statusCode).toBe(400);
    expect(badId.json<{ detail: string }>().detail).toMatch(/id/);
  });

  it('answers requests: an access request with its export, a held erasure run later, a rectification completed', async () => {
    await call(admin, 'POST', '/api/v1/privacy/subjects', { id: 'u-30' });
    const access = await call(admin, 'POST', '/api/v1/privacy/requests', { subject: 'u-30', kind: 'access' });
    expect(access.statusCode, access.body).toBe(201);
    const outcome = api.privacy.requestOutcome.strict().parse(access.json());
    expect(outcome.request).toMatchObject({ kind: 'access', status: 'completed', subject: 'u-30' });
    expect(outcome.request.dueAt - outcome.request.receivedAt).toBe(30 * 86_400_000);
    expect(outcome.export?.subject).toBe('u-30');

    const held = api.privacy.requestOutcome.parse(
      (
        await call(admin, 'POST', '/api/v1/privacy/requests', {
          subject: 'u-30',
          kind: 'erasure',
          hold: true,
        })
      ).json(),
    );
    expect(held.request.status).toBe('open');
    const open = z
      .array(api.privacy.privacyRequest.strict())
      .parse((await call(auditor, 'GET', '/api/v1/privacy/requests?status=open')).json());
    expect(open.map((r) => r.id)).toContain(held.request.id);
    const ran = await call(admin, 'POST', `/api/v1/privacy/requests/${held.request.id}/run`);
    expect(ran.statusCode, ran.body).toBe(200);
    expect(ran.json()).toMatchObject({ request: { status: 'completed', subject: null } });
    const shown = api.privacy.privacyRequest
      .strict()
      .parse((await call(auditor, 'GET', `/api/v1/privacy/requests/${held.request.id}`)).json());
    expect(shown.result).not.toBeNull();

    // The erased subject exports empty, not an error.
    const after = api.privacy.requestOutcome.parse(
      (await call(admin, 'POST', '/api/v1/privacy/requests', { subject: 'u-30', kind: 'access' })).json(),
    );
    for (const records of Object.values(after.export?.modules ?? {})) expect(records).toEqual([]);

    await call(admin, 'POST', '/api/v1/privacy/subjects', { id: 'u-31' });
    const rectify = api.privacy.requestOutcome.parse(
      (
        await call(admin, 'POST', '/api/v1/privacy/requests', { subject: 'u-31', kind: 'rectification' })
      ).json(),
    );
    expect(rectify.request.status).toBe('open');
    const done = await call(admin, 'POST', `/api/v1/privacy/requests/${rectify.request.id}/complete`, {
      status: 'completed',
      note: 'address corrected',
    });
    expect(api.privacy.privacyRequest.strict().parse(done.json())).toMatchObject({
      status: 'completed',
      note: 'address corrected',
    });

    const restrict = api.privacy.requestOutcome.parse(
      (
        await call(admin, 'POST', '/api/v1/privacy/requests', { subject: 'u-31', kind: 'restriction' })
      ).json(),
    );
    expect(restrict.request.status).toBe('completed');
    const restricted = api.privacy.subjectDetail.parse(
      (await call(auditor, 'GET', '/api/v1/privacy/subjects/u-31')).json(),
    );
    expect(restricted.restrictedAt).not.toBeNull();
    expect(restricted.requests.map((r) => r.kind).sort()).toEqual(['rectification', 'restriction']);
    // Lifted (Art. 18(3)) by PATCH with restricted false; only false is accepted (a request restricts).
    expect(
      (await call(admin, 'PATCH', '/api/v1/privacy/subjects/u-31', { restricted: true })).statusCode,
    ).toBe(400);
    expect(
      (await call(auditor, 'PATCH', '/api/v1/privacy/subjects/u-31', { restricted: false })).statusCode,
    ).toBe(403);
    const lifted = api.privacy.subjectDetail.parse(
      (await call(admin, 'PATCH', '/api/v1/privacy/subjects/u-31', { restricted: false })).json(),
    );
    expect(lifted.restrictedAt).toBeNull();

    expect((await call(admin, 'GET', '/api/v1/privacy/requests/no-such-request')).statusCode).toBe(404);
    expect((await call(admin, 'POST', '/api/v1/privacy/requests/no-such-request/run')).statusCode).toBe(404);
    const noNote = await call(admin, 'POST', `/api/v1/privacy/requests/${rectify.request.id}/complete`, {
      status: 'completed',
    });
    expect(noNote.statusCode).toBe(400);
    expect(noNote.json<{ detail: string }>().detail).toMatch(/note/);
  });

  it('answers the Art. 30 record as JSON and HTML', async () => {
    const json = await call(auditor, 'GET', '/api/v1/privacy/record');
    expect(json.statusCode).toBe(200);
    const record = api.privacy.processingRecord.strict().parse(json.json());
    const activity = record.activities.find((a) => a.name === 'room-sensor');
    expect(activity?.fields.find((f) => f.path === 'lat')).toMatchObject({
      category: 'user.location.precise',
      lawfulBasis: 'contract',
      retention: '30d',
    });

    const html = await call(auditor, 'GET', '/api/v1/privacy/record?format=html');
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.body).toContain('room-sensor');
    expect(html.body).toContain('user.location.precise');

    const wrong = await call(auditor, 'GET', '/api/v1/privacy/record?format=pdf');
    expect(wrong.statusCode).toBe(400);
  });

  it('exports telemetry with its k-anonymity check, and decrypts only tokens', async () => {
    // Kept forms of three subjects: u-40 and u-41 in one 1 km cell, u-42 alone in another.
    const stored = (subject: string, lat: number, i: number) => {
      const body = Buffer.from(
        JSON.stringify({ user_id: `ps1.1.${subject}`, lat, lon: 11.58, temp: 20 + i }),
      );
      void t.platform.telemetry.writer.add({
        device_id: 'sensor-1',
        topic: 'devices/sensor-1/telemetry',
        pattern: 'devices/+/telemetry',
        subject_id: subject,
        data_schema: 'room-sensor',
        received_at: Date.now() - 1000 + i,
        payload: body.toString('base64'),
        bytes: body.length,
      });
    };
    stored('u-40', 48.136004, 0);
    stored('u-41', 48.136004, 1);
    await t.platform.telemetry.writer.flush();
    const exportOf = (k: number) =>
      call(admin, 'POST', '/api/v1/privacy/telemetry-export', { schema: 'room-sensor', k });
    const exported = await exportOf(2);
    expect(exported.statusCode, exported.body).toBe(200);
    const rows = api.privacy.telemetryExport.response[200].strict().parse(exported.json());
    expect(rows).toMatchObject({ k: 2, classes: 1, smallestClass: 2 });
    expect(rows.quasiIdentifiers).toEqual(expect.arrayContaining(['lat', 'lon']));
    // Quasi-identifiers and non-personal fields only: never the pseudonym, never a subject or device id.
    expect(rows.rows).toEqual([
      { lat: 48.136004, lon: 11.58, temp: 20 },
      { lat: 48.136004, lon: 11.58, temp: 21 },
    ]);
    const tooFew = await exportOf(3);
    expect(tooFew.statusCode).toBe(400);
    expect(tooFew.json<{ detail: string }>().detail).toMatch(/k-anonymity/);
    stored('u-42', 48.2, 2);
    await t.platform.telemetry.writer.flush();
    expect((await exportOf(2)).statusCode).toBe(400);

    const unknown = await call(admin, 'POST', '/api/v1/privacy/telemetry-export', { schema: 'nope', k: 2 });
    expect(unknown.statusCode).toBe(404);
    const lowK = await call(admin, 'POST', '/api/v1/privacy/telemetry-export', {
      schema: 'room-sensor',
      k: 1,
    });
    expect(lowK.statusCode).toBe(400);

    // A value encrypted under u-17's data key (consent given for essential.service.operations).
    const token = encryptValue(await t.platform.privacy.keys.loadSubjectKey('person:u-17'), 72, {
      schema: 'room-sensor',
      path: 'hr',
    });
    const decrypt = (field: string, purpose: string, values: string[]) =>
      call(admin, 'POST', '/api/v1/privacy/decrypt', { schema: 'room-sensor', field, purpose, values });
    const decrypted = await decrypt('hr', 'essential.service.operations', [token, 'not-a-token']);
    expect(decrypted.statusCode, decrypted.body).toBe(200);
    expect(api.privacy.decrypt.response[200].strict().parse(decrypted.json())).toEqual({
      values: [72, null],
      refused: 1,
      erased: 0,
    });
    expect((await decrypt('hr', 'analytics.reporting', [token])).statusCode).toBe(403);
    expect((await decrypt('user_id', 'essential.service.operations', [token])).statusCode).toBe(400);
    expect((await decrypt('hr', 'essential.service.operations', [])).statusCode).toBe(400);
    expect(await t.platform.audit.latest('privacy.decrypted')).toMatchObject({
      data: { values: 1, purpose: 'essential.service.operations', refused: 1 },
    });
  });

  it('refuses by role (403 problem) and users limited to device groups', async () => {
    for (const [method, url] of [
      ['GET', '/api/v1/privacy/schemas'],
      ['GET', '/api/v1/privacy/subjects'],
      ['GET', '/api/v1/privacy/requests'],
      ['GET', '/api/v1/privacy/record'],
    ] as const) {
      const res = await call(viewer, method, url);
      expect({ url, status: res.statusCode }).toEqual({ url, status: 403 });
      expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    }
    expect((await call(auditor, 'PUT', '/api/v1/privacy/schemas/room-sensor', ROOM_SENSOR)).statusCode).toBe(
      403,
    );
    expect(
      (await call(auditor, 'POST', '/api/v1/privacy/requests', { subject: 'u-17', kind: 'erasure' }))
        .statusCode,
    ).toBe(403);
    expect(
      (
        await call(auditor, 'POST', '/api/v1/privacy/decrypt', {
          schema: 'room-sensor',
          field: 'user_id',
          purpose: 'essential.service.operations',
          values: ['x'],
        })
      ).statusCode,
    ).toBe(403);

    const limited = await t.signIn('admin', { username: 'rooms-admin', groups: ['rooms'] });
    const res = await call(limited, 'GET', '/api/v1/privacy/subjects');
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'forbidden' });
  });
});
