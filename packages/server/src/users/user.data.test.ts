import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEntry, EventBus, SecurityEvent } from '../events/index.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { activeUser as setUpUser, createTestUserService, TEST_PASSWORD as password } from './test-harness.ts';
import { totpCode } from './totp.ts';
import type { UserService } from './user.service.ts';

const DAY = 86_400_000;

describe.each(testDialects)('users: facts for compliance, export and erasure by subject (%s)', (dialect) => {
  let t: TestStore;
  let users: UserService;
  let now = 1_800_000_000_000;
  let recorded: SecurityEvent[];

  beforeEach(async () => {
    t = await createTestStore(dialect);
    recorded = [];
    const db = t.store.db;
    const events: Pick<EventBus, 'emit' | 'atomically'> = {
      emit: (event) => {
        recorded.push(event);
        return Promise.resolve({} as AuditEntry);
      },
      atomically: (work) => db.transaction().execute((tx) => work(tx, (event) => recorded.push(event))),
    };
    users = createTestUserService({
      db,
      box: { seal: (b) => b.toString('base64'), open: (s) => Buffer.from(s, 'base64') },
      events,
      now: () => now,
      throttle: { threshold: 10, lockoutMs: 900_000 },
    });
  });
  afterEach(async () => t.cleanup());

  const activeUser = (username: string, role: 'viewer' | 'operator' | 'admin') =>
    setUpUser(users, { username, role, groups: role === 'operator' ? ['north'] : null });

  it('states accounts by role, accounts without a second factor, API tokens by age, lockout and session settings', async () => {
    const viewer = await activeUser('vera', 'viewer');
    const admin = await activeUser('adam', 'admin'); // must enrol: no factor yet
    await activeUser('olga', 'operator');
    await users.create({ username: 'pending', role: 'auditor' }, 'test'); // no password yet: not counted as lacking 2FA
    await users.update('olga', { disabled: true }, 'test');
    await users.createToken(viewer, { name: 'old', expiresInMs: 365 * DAY });
    now += 100 * DAY;
    await users.createToken(viewer, { name: 'new', expiresInMs: 30 * DAY });
    const facts = await users.facts();
    expect(facts.accountsByRole).toEqual({
      admin: 1,
      'security-officer': 0,
      operator: 0,
      auditor: 1,
      viewer: 1,
    });
    expect(facts.disabledAccounts).toBe(1);
    expect(facts.withoutSecondFactor).toBe(2);
    expect(facts.withoutRequiredSecondFactor).toBe(1);
    expect(facts.apiTokens).toEqual({ active: 2, withoutExpiry: 0, older: 1, olderThanDays: 90 });
    expect(facts.lockout).toEqual({
      threshold: 10,
      lockoutMs: 900_000,
      backoffAfter: 3,
      backoffBaseMs: 1000,
    });
    expect(facts.sessions).toEqual({ idleMs: 1_800_000, absoluteMs: 43_200_000, stepUpWindowMs: 300_000 });
    expect(admin.role).toBe('admin');
  });

  it('exports what it holds about a user (never secrets), then erases it: account anonymised and disabled, the rest deleted', async () => {
    const p = await activeUser('erin', 'viewer');
    const { secret } = await users.beginTotp(p);
    const { recoveryCodes } = await users.confirmTotp(p, totpCode(secret, now), '10.0.0.1');
    const token = await users.createToken(p, { name: 'ci', expiresInMs: 30 * DAY });
    expect(users.module).toBe('users');

    const exported = await users.exportSubject({ kind: 'user', id: 'erin' });
    const kinds = exported.map((r) => r.record);
    expect(kinds.filter((k) => k === 'account')).toHaveLength(1);
    expect(kinds).toContain('totp');
    expect(kinds.filter((k) => k === 'recovery_code')).toHaveLength(10);
    expect(kinds).toContain('session');
    expect(exported.find((r) => r.record === 'api_token')).toMatchObject({
      id: token.id,
      name: 'ci',
      revoked: false,
    });
    const text = JSON.stringify(exported);
    for (const secretValue of [secret, token.token, ...(recoveryCodes ?? [])])
      expect(text).not.toContain(secretValue);
    expect(text).not.toMatch(/hash|csrf/i);
    expect(await users.exportSubject({ kind: 'device', id: 'erin' })).toEqual([]);
    expect(await users.exportSubject({ kind: 'user', id: 'nobody' })).toEqual([]);

    const { erased } = await users.eraseSubject({ kind: 'user', id: 'erin' }, 'privacy-officer');
    expect(erased).toBeGreaterThanOrEqual(13); // account, 10 codes, sessions, token
    expect(recorded.at(-1)).toMatchObject({
      type: 'user.updated',
      subject: 'user:erin',
      data: { changes: { erased: true } },
    });
    expect(await users.exportSubject({ kind: 'user', id: 'erin' })).toEqual([]);
    expect(await users.resolveToken(token.token, '10.0.0.1')).toBeUndefined();
    await expect(users.signIn({ username: 'erin', password, address: '10.0.0.1' })).rejects.toMatchObject({
      code: 'invalid_credentials',
    });
    const left = (await users.list()).filter((u) => u.username.startsWith('erased-'));
    expect(left).toHaveLength(1);
    expect(left[0]).toMatchObject({
      disabled: true,
      setupPending: true,
      twoFactor: { totp: false, webauthn: 0, recoveryCodesLeft: 0 },
    });
    expect(await users.eraseSubject({ kind: 'user', id: 'erin' }, 'privacy-officer')).toEqual({ erased: 0 });
  });

  it('commits a role change with its event, and leaves neither when the change fails', async () => {
    await activeUser('rita', 'viewer');
    await users.update('rita', { role: 'auditor' }, 'test');
    expect(recorded.at(-1)).toMatchObject({
      type: 'user.updated',
      subject: 'user:rita',
      data: { changes: { role: 'auditor' } },
    });
    const before = recorded.length;
    await expect(users.update('rita', { role: 'emperor' }, 'test')).rejects.toMatchObject({
      code: 'validation_failed',
    });
    expect(recorded.length).toBe(before);
    expect((await users.get('rita')).role).toBe('auditor');
  });
});
