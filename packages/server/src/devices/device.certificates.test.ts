import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import { createTestPlatform, type TestCredentials, type TestPlatform } from '../test-support/platform.ts';
import { enrollInProcess } from '../test-support/server.ts';
import { certificateState } from './device.reads.ts';

const DAY = 86_400_000;

describe('a certificate state', () => {
  const c = { serial: '01', notBefore: 1_000, notAfter: 2_000, revokedAt: null };
  it('is valid within its period, not yet valid before, expired from notAfter on, revoked over all', () => {
    expect(certificateState(c, 1_500)).toBe('valid');
    expect(certificateState(c, 999)).toBe('not-yet-valid');
    expect(certificateState(c, 2_000)).toBe('expired');
    expect(certificateState({ ...c, revokedAt: 1_200 }, 1_500)).toBe('revoked');
    expect(certificateState({ ...c, revokedAt: 1_200 }, 5_000)).toBe('revoked');
  });
});

/** GET /api/v1/devices/:id/certificates over the HTTP API (inject), on the whole platform in process. */
describe('GET /api/v1/devices/:id/certificates', () => {
  let t: TestPlatform;
  let admin: TestCredentials;
  let offsetMs = 0;

  const certificatesOf = async (id: string, who: TestCredentials) => {
    const res = await t.app.inject({ url: `/api/v1/devices/${id}/certificates`, headers: who.headers });
    return { status: res.statusCode, body: res.json<unknown>() };
  };

  beforeAll(async () => {
    t = await createTestPlatform({ now: () => Date.now() + offsetMs, background: false });
    admin = await t.signIn('admin');
  }, 60_000);
  afterAll(() => t?.close());

  it('lists every certificate of the device, newest first, with its state now', async () => {
    await enrollInProcess(t, 'meter-1', 'meters');
    const first = await certificatesOf('meter-1', admin);
    expect(first.status).toBe(200);
    const { certificates } = api.devices.certificates.response[200].parse(first.body);
    expect(certificates).toHaveLength(1);
    const [cert] = certificates;
    expect(cert).toMatchObject({ state: 'valid', revokedAt: null });
    expect(cert!.serial).toMatch(/^[0-9a-f]+$/i);
    // The platform's default validity: 90 days.
    expect(cert!.notAfter - cert!.notBefore).toBeGreaterThanOrEqual(89 * DAY);

    const revoke = await t.app.inject({
      method: 'POST',
      url: '/api/v1/devices/meter-1/revoke',
      headers: { ...admin.headers, 'content-type': 'application/json' },
      payload: JSON.stringify({ reason: 'keyCompromise' }),
    });
    expect(revoke.statusCode).toBe(200);
    const after = api.devices.certificates.response[200].parse((await certificatesOf('meter-1', admin)).body);
    expect(after.certificates.map((c) => [c.serial, c.state])).toEqual([[cert!.serial, 'revoked']]);
    expect(after.certificates[0]!.revokedAt).toBeGreaterThanOrEqual(cert!.notBefore);
  });

  it('tells an expired certificate from a valid one by the clock', async () => {
    // Enrolled 100 days ago (the platform's clock then), read today: its 90-day certificate has expired.
    offsetMs = -100 * DAY;
    try {
      await enrollInProcess(t, 'meter-2', 'meters');
    } finally {
      offsetMs = 0;
    }
    await enrollInProcess(t, 'meter-3', 'meters');
    for (const [id, state] of [
      ['meter-2', 'expired'],
      ['meter-3', 'valid'],
    ] as const) {
      const { certificates } = api.devices.certificates.response[200].parse(
        (await certificatesOf(id, admin)).body,
      );
      expect(certificates.map((c) => c.state)).toEqual([state]);
    }
  });

  it('answers 404 for an unknown device and for a device outside the user’s groups, and shows no key', async () => {
    expect((await certificatesOf('nobody', admin)).status).toBe(404);
    const other = await t.signIn('operator', { username: 'olga', groups: ['office'] });
    const hidden = await certificatesOf('meter-2', other);
    expect(hidden.status).toBe(404);
    expect(hidden.body).toMatchObject({ code: 'not_found' });
    expect(hidden.body).not.toHaveProperty('certificates');
    const viewer = await t.signIn('viewer');
    const seen = await certificatesOf('meter-2', viewer);
    expect(seen.status).toBe(200);
    expect(JSON.stringify(seen.body)).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });
});
