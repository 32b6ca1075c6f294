import { describe, expect, it } from 'vitest';
import { createAuthz, may, requirePermission, seesAllGroups, seesGroup } from './check.ts';
import { localOperator, principalActor } from './scope.ts';

const fleet = { role: 'operator', groups: null } as const;
const north = { role: 'operator', groups: ['north'] } as const;

describe('authz: the one check', () => {
  const groups: Record<string, string | null> = { 'pump-1': 'north', 'pump-2': 'south', 'loose-1': null };
  let lookups = 0;
  let now = 1_000;
  const authz = createAuthz({
    groupOf: (id) => {
      lookups++;
      return Promise.resolve(groups[id]);
    },
    now: () => now,
  });

  it('may: a role holds a permission or not; requirePermission refuses with the reason', () => {
    expect(may({ role: 'viewer' }, 'devices:read')).toBe(true);
    expect(may({ role: 'viewer' }, 'devices:revoke')).toBe(false);
    expect(authz.may({ role: 'admin' }, 'users:write')).toBe(true);
    let refusal: unknown;
    try {
      requirePermission({ role: 'auditor' }, 'devices:write');
    } catch (err) {
      refusal = err;
    }
    expect(refusal).toMatchObject({ code: 'forbidden' });
    expect(String((refusal as Error).message)).toContain('devices:write');
  });

  it('groups: the whole fleet sees every group and none; a limited principal only its own', () => {
    expect(seesGroup(fleet, null)).toBe(true);
    expect(seesGroup(fleet, 'south')).toBe(true);
    expect(seesGroup(north, 'north')).toBe(true);
    expect(seesGroup(north, 'south')).toBe(false);
    expect(seesGroup(north, null)).toBe(false);
    expect(seesAllGroups(north, ['north'])).toBe(true);
    expect(seesAllGroups(north, ['north', 'south'])).toBe(false);
    expect(seesAllGroups(north, undefined)).toBe(false);
    expect(seesAllGroups(fleet, undefined)).toBe(true);
  });

  it('devices, alerts and audit entries: visible when about a device of the principal groups', async () => {
    expect(await authz.sees(north, { device: 'pump-1' })).toBe(true);
    expect(await authz.sees(north, { device: 'pump-2' })).toBe(false);
    expect(await authz.sees(north, { device: 'loose-1' })).toBe(false);
    expect(await authz.sees(north, { device: 'unknown' })).toBe(false);
    expect(await authz.sees(north, { alert: { deviceId: 'pump-1' } })).toBe(true);
    expect(await authz.sees(north, { alert: { deviceId: null } })).toBe(false);
    expect(await authz.sees(north, { entry: { subject: 'device:pump-1' } })).toBe(true);
    expect(await authz.sees(north, { entry: { subject: 'device:pump-2' } })).toBe(false);
    expect(await authz.sees(north, { entry: { subject: 'user:alice' } })).toBe(false);
    expect(await authz.sees(north, { entry: {} })).toBe(false);
    for (const what of [
      { device: 'pump-2' },
      { alert: { deviceId: null } },
      { entry: { subject: 'config' } },
    ])
      expect(await authz.sees(fleet, what)).toBe(true);
    await expect(authz.mustSee(north, { device: 'pump-2' }, 'no device pump-2')).rejects.toMatchObject({
      code: 'not_found',
      message: 'no device pump-2',
    });
  });

  it('looks a device group up once for a while (streams ask about many entries of one device)', async () => {
    const before = lookups;
    await authz.sees(north, { entry: { subject: 'device:pump-1' } });
    await authz.sees(north, { entry: { subject: 'device:pump-1' } });
    expect(lookups).toBe(before);
    groups['pump-1'] = 'south';
    now += 10_000;
    expect(await authz.sees(north, { device: 'pump-1' })).toBe(false);
  });

  it('the local operator (CLI) is one principal with the whole fleet in scope', async () => {
    expect(localOperator).toMatchObject({ role: 'admin', groups: null, actor: 'cli' });
    expect(await authz.sees(localOperator, { device: 'pump-2' })).toBe(true);
    expect(principalActor({ username: 'alice', via: 'session' })).toBe('user:alice');
    expect(principalActor({ username: 'alice', via: 'token', tokenId: 't1' })).toBe('user:alice/token:t1');
  });
});
