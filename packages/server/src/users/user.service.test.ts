import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, type Platform } from '../platform.ts';
import { totpCode } from './index.ts';

describe('account service with a controllable clock', () => {
  let p: Platform;
  let now = 1_800_000_000_000;
  const password = 'a sufficiently long passphrase';

  beforeAll(async () => {
    const config = testConfig({
      dataDir: mkdtempSync(path.join(tmpdir(), 'bulwark-users-')),
      logLevel: 'silent',
      'auth.sessionIdle': '30m',
      'auth.sessionAbsolute': '2h',
    });
    p = await createPlatform(config, { logger: createLogger('silent'), now: () => now });
  });
  afterAll(async () => p?.close());

  async function activeUser(username: string, role: 'viewer' | 'admin' = 'viewer') {
    const { setupSecret } = await p.users.create({ username, role }, 'test');
    return p.users.completeSetup({ username, setupSecret, password, address: '10.0.0.1' });
  }

  it('ends a session after the idle timeout, and after the absolute timeout even when used', async () => {
    const idle = await activeUser('idle-user');
    now += 29 * 60_000;
    expect(await p.users.resolveSession(idle.id)).toBeDefined();
    now += 31 * 60_000;
    expect(await p.users.resolveSession(idle.id)).toBeUndefined();

    const busy = await p.users.signIn({ username: 'idle-user', password, address: '10.0.0.1' });
    for (let i = 0; i < 5; i++) {
      now += 25 * 60_000;
      const alive = await p.users.resolveSession(busy.id);
      expect(alive !== undefined).toBe(i < 4); // 125 min > 2 h absolute
    }
  });

  it('signs out everywhere', async () => {
    await activeUser('multi');
    const a = await p.users.signIn({ username: 'multi', password, address: '10.0.0.1' });
    const b = await p.users.signIn({ username: 'multi', password, address: '10.0.0.2' });
    const principal = (await p.users.resolveSession(a.id))!;
    expect(await p.users.signOut(principal, true)).toBe(3); // the setup session and both sign-ins
    expect(await p.users.resolveSession(b.id)).toBeUndefined();
  });

  it('expires and revokes API tokens, caps their role, and flags use from a new address', async () => {
    const session = await activeUser('automation');
    const principal = (await p.users.resolveSession(session.id))!;
    await expect(
      p.users.createToken(principal, { name: 'up', role: 'admin', expiresInMs: 60_000 }),
    ).rejects.toMatchObject({ code: 'forbidden' });
    const t = await p.users.createToken(principal, { name: 'ci', expiresInMs: 60_000 });
    expect(await p.users.resolveToken(t.token, '10.0.0.1')).toMatchObject({
      username: 'automation',
      role: 'viewer',
      via: 'token',
    });
    await p.users.resolveToken(t.token, '10.9.9.9');
    const flagged = await p.audit.query({ type: 'api_token.used_from_new_address', limit: 10 });
    expect(flagged.map((e) => e.data.address)).toEqual(['10.9.9.9']);
    const listed = await p.users.listTokens(principal);
    expect(JSON.stringify(listed)).not.toContain(t.token);
    expect(listed[0]).toMatchObject({ lastUsedAddress: '10.9.9.9' });
    now += 60_001;
    expect(await p.users.resolveToken(t.token, '10.0.0.1')).toBeUndefined();
    const t2 = await p.users.createToken(principal, { name: 'ci2', expiresInMs: 60_000 });
    await p.users.revokeToken(principal, t2.id);
    expect(await p.users.resolveToken(t2.token, '10.0.0.1')).toBeUndefined();
  });

  it('uses each recovery code once, and refuses a TOTP code of an already used step', async () => {
    const session = await activeUser('two-factor', 'admin');
    expect(session.state).toBe('enrolment');
    let principal = (await p.users.resolveSession(session.id))!;
    const { secret } = await p.users.beginTotp(principal);
    const { recoveryCodes, session: active } = await p.users.confirmTotp(
      principal,
      totpCode(secret, now),
      '10.0.0.1',
    );
    expect(active?.state).toBe('active');
    const second = await p.users.signIn({ username: 'two-factor', password, address: '10.0.0.1' });
    principal = (await p.users.resolveSession(second.id))!;
    await expect(
      p.users.secondFactor(principal, { code: totpCode(secret, now) }, '10.0.0.1'),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    const done = await p.users.secondFactor(
      principal,
      { recoveryCode: recoveryCodes[0]!.toUpperCase() },
      '10.0.0.1',
    );
    expect(done.state).toBe('active');
    expect(await p.users.resolveSession(second.id)).toBeUndefined(); // rotated
    const third = await p.users.signIn({ username: 'two-factor', password, address: '10.0.0.1' });
    principal = (await p.users.resolveSession(third.id))!;
    await expect(
      p.users.secondFactor(principal, { recoveryCode: recoveryCodes[0]! }, '10.0.0.1'),
    ).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect((await p.users.get('two-factor')).twoFactor.recoveryCodesLeft).toBe(9);
  });
});
