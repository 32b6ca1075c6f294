import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import { createTestPlatform, type TestCredentials, type TestPlatform } from '../test-support/platform.ts';

const BULK = '/api/v1/operations/bulk';
const operation = api.operations.bulkOperation.strict();

/** `/api/v1/operations/bulk` in-process: dual control by role and person, answers shaped by the contracts. */
describe('bulk operations API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let ada: TestCredentials;
  let bob: TestCredentials;
  let officer: TestCredentials;
  let operator: TestCredentials;
  let auditor: TestCredentials;
  let north: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    ada = await t.signInSession('admin', { username: 'ada' });
    bob = await t.signIn('admin', { username: 'bob' });
    officer = await t.signIn('security-officer');
    operator = await t.signIn('operator');
    auditor = await t.signIn('auditor');
    north = await t.signIn('security-officer', { groups: ['north'] });
    for (let i = 1; i <= 12; i++)
      await t.platform.devices.add({ id: `dev-${String(i).padStart(2, '0')}`, group: 'north' }, 'test');
    for (let i = 1; i <= 3; i++) await t.platform.devices.add({ id: `s-${i}`, group: 'south' }, 'test');
  });
  afterAll(async () => t?.close());

  const call = (who: TestCredentials, method: 'GET' | 'POST', url: string, payload?: object) =>
    t.app.inject({ method, url, headers: who.headers, ...(payload ? { payload } : {}) });

  it('runs a small selection at once (200) and holds a large one for a second person (202)', async () => {
    const small = await call(officer, 'POST', BULK, { action: 'quarantine', ids: ['s-1', 's-2'] });
    expect(small.statusCode).toBe(200);
    expect(operation.parse(small.json())).toMatchObject({
      status: 'executed',
      count: 2,
      summary: { ok: 2, skipped: 0, failed: 0 },
    });

    const large = await call(ada, 'POST', BULK, { action: 'quarantine', group: 'north', reason: 'drill' });
    expect(large.statusCode).toBe(202);
    const pending = operation.parse(large.json());
    expect(pending).toMatchObject({
      status: 'pending',
      count: 12,
      requestedBy: 'user:ada',
      needsApproval: true,
    });

    const listed = await call(auditor, 'GET', `${BULK}?status=pending`);
    expect(listed.statusCode).toBe(200);
    expect(api.operations.listBulk.response[200].parse(listed.json()).operations.map((o) => o.id)).toEqual([
      pending.id,
    ]);
    // The auditor reads it but may not decide it.
    const byAuditor = await call(auditor, 'POST', `${BULK}/${pending.id}/approve`, {});
    expect(byAuditor.statusCode).toBe(403);
    expect(byAuditor.json()).toMatchObject({ code: 'forbidden' });

    // The requester cannot approve their own request.
    const own = await call(ada, 'POST', `${BULK}/${pending.id}/approve`, {});
    expect(own.statusCode).toBe(403);
    expect(own.json()).toMatchObject({
      code: 'forbidden',
      detail: expect.stringContaining('a second person must approve it') as unknown,
    });

    const approved = await call(bob, 'POST', `${BULK}/${pending.id}/approve`, { note: 'ok' });
    expect(approved.statusCode).toBe(200);
    expect(operation.parse(approved.json())).toMatchObject({
      status: 'executed',
      decidedBy: expect.stringMatching(/^user:bob\/token:/) as unknown,
      summary: { ok: 12 },
    });
    const device = await call(auditor, 'GET', '/api/v1/devices/dev-07');
    expect(device.json()).toMatchObject({ state: 'quarantined' });

    // Decided: a second decision is a conflict.
    const again = await call(officer, 'POST', `${BULK}/${pending.id}/reject`, {});
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'conflict' });

    const shown = await call(auditor, 'GET', `${BULK}/${pending.id}`);
    expect(operation.parse(shown.json()).results).toHaveLength(12);
  });

  it('needs the action’s own permission to ask for it', async () => {
    const res = await call(operator, 'POST', BULK, { action: 'revoke', ids: ['s-3'] });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({
      code: 'forbidden',
      detail: expect.stringContaining('devices:revoke') as unknown,
    });
    expect((await t.platform.devices.get('s-3')).status).toBe('registered');
  });

  it('answers bad input with 400 naming the field', async () => {
    const cases: [object, string][] = [
      [{ action: 'explode', ids: ['s-3'] }, 'body/action'],
      [{ action: 'quarantine' }, 'body/ids'],
      [{ action: 'quarantine', ids: ['s-3'], zone: 'z' }, 'body/zone'],
      [{ action: 'quarantine', ids: [] }, 'body/ids'],
      [{ action: 'quarantine', ids: ['s-3'], revocationReason: 'keyCompromise' }, 'body/revocationReason'],
      [{ action: 'quarantine', ids: ['s-3'], extra: 1 }, 'extra'],
      [{ action: 'quarantine', ids: ['nope'] }, 'ids: device nope does not exist'],
      [{ action: 'quarantine', zone: 'nowhere' }, 'zone: there is no zone named "nowhere"'],
    ];
    for (const [payload, field] of cases) {
      const res = await call(officer, 'POST', BULK, payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json(), JSON.stringify(payload)).toMatchObject({
        code: 'validation_failed',
        detail: expect.stringContaining(field) as unknown,
      });
    }
    const badNote = await call(bob, 'POST', `${BULK}/x/approve`, { note: 'x'.repeat(300) });
    expect(badNote.statusCode).toBe(400);
    expect(badNote.json()).toMatchObject({ detail: expect.stringContaining('body/note') as unknown });
    expect((await call(auditor, 'GET', `${BULK}?status=whatever`)).statusCode).toBe(400);
    expect((await call(auditor, 'GET', `${BULK}/no-such-id`)).statusCode).toBe(404);
  });

  it('keeps a user limited to groups to requests over their groups', async () => {
    const south = await call(north, 'POST', BULK, { action: 'release', group: 'south' });
    expect(south.statusCode).toBe(403);
    const hidden = await call(north, 'POST', BULK, { action: 'release', ids: ['s-1'] });
    expect(hidden.statusCode).toBe(400);
    const mixed = await call(ada, 'POST', BULK, {
      action: 'release',
      ids: ['dev-01', 'dev-02', 'dev-03', 'dev-04', 'dev-05', 'dev-06', 'dev-07', 'dev-08', 'dev-09', 's-1'],
    });
    expect(mixed.statusCode).toBe(202);
    const { id } = operation.parse(mixed.json());
    expect((await call(north, 'GET', `${BULK}/${id}`)).statusCode).toBe(404);
    expect((await call(north, 'POST', `${BULK}/${id}/approve`, {})).statusCode).toBe(404);
    // Its requester withdraws it.
    const cancelled = await call(ada, 'POST', `${BULK}/${id}/reject`, { note: 'wrong list' });
    expect(cancelled.statusCode).toBe(200);
    expect(operation.parse(cancelled.json())).toMatchObject({
      status: 'cancelled',
      decisionNote: 'wrong list',
    });
  });
});
