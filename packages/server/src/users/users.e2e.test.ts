import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, workDir } from '../test-support/clients.ts';
import { startTestServer, type TestServer } from '../test-support/server.ts';

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/**
 * Issue 3's acceptance with real clients: curl with a cookie jar, and TOTP codes computed by an
 * independent tool (oathtool).
 */
describe('operators: sign-in with enforced 2FA, lockout, roles and scope', () => {
  let s: TestServer;
  let dir: string;

  /** curl against the API, as a person would; returns status, lower-cased headers and the JSON body. */
  async function curl(
    method: string,
    url: string,
    options: {
      jar?: string;
      body?: unknown;
      csrf?: string;
      bearer?: string;
      from?: string;
      origin?: string;
    } = {},
  ): Promise<CurlResult> {
    const args = ['-sS', '-X', method, '--cacert', s.caFile, '-D', '-', `${s.httpsUrl}${url}`];
    if (options.jar) args.push('-b', options.jar, '-c', options.jar);
    if (options.body !== undefined)
      args.push('-H', 'Content-Type: application/json', '--data', JSON.stringify(options.body));
    if (options.csrf) args.push('-H', `X-CSRF-Token: ${options.csrf}`);
    if (options.bearer) args.push('-H', `Authorization: Bearer ${options.bearer}`);
    if (options.origin) args.push('-H', `Origin: ${options.origin}`);
    if (options.from) args.push('--interface', options.from);
    const { stdout } = await exec('curl', args);
    const [head = '', ...rest] = stdout.split('\r\n\r\n');
    const lines = head.split('\r\n');
    const status = Number(lines[0]?.split(' ')[1]);
    const headers = Object.fromEntries(
      lines
        .slice(1)
        .map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    const text = rest.join('\r\n\r\n');
    return { status, headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  const oathtool = async (secret: string, offsetS = 0) =>
    (
      await exec('oathtool', [
        '--totp',
        '-b',
        ...(offsetS
          ? [
              '--now',
              new Date(Date.now() + offsetS * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC',
            ]
          : []),
        secret,
      ])
    ).stdout.trim();

  beforeAll(async () => {
    s = await startTestServer({ 'auth.backoffBase': '1ms' });
    dir = workDir();
  });
  afterAll(async () => s?.stop());

  let adminSecret = '';
  let adminCodeUsed = '';
  const adminPassword = 'correct horse battery staple 9';

  it('bootstraps the first admin: setup secret, then nothing but factor enrolment until TOTP (oathtool) is confirmed', async () => {
    const created = await s.cli(['admin', 'create', '--username', 'root', '--json']);
    expect(created.code).toBe(0);
    const { setupSecret } = JSON.parse(created.stdout) as { setupSecret: string };
    const jar = path.join(dir, 'root.jar');

    // No default password: the account cannot sign in before setup.
    expect(
      (
        await curl('POST', '/api/v1/auth/sign-in', {
          body: { username: 'root', password: 'anything at all' },
        })
      ).status,
    ).toBe(401);
    // Weak passwords are refused at setup, and nothing changes.
    for (const [password, why] of [
      ['short', /at least 12/],
      ['password1234', /too common/],
      ['my-root-password-x', /user name/],
    ] as const) {
      const weak = await curl('POST', '/api/v1/auth/setup', {
        body: { username: 'root', setupSecret, password },
      });
      expect(weak.status).toBe(400);
      expect(String(weak.body.detail)).toMatch(why);
    }
    const setup = await curl('POST', '/api/v1/auth/setup', {
      jar,
      body: { username: 'root', setupSecret, password: adminPassword },
    });
    expect(setup.status).toBe(200);
    expect(setup.body.state).toBe('enrolment');
    expect(setup.headers['set-cookie']).toMatch(
      /__Host-bulwark_session=.*HttpOnly.*Secure.*SameSite=Strict/i,
    );
    const csrf = String(setup.body.csrfToken);

    const blocked = await curl('GET', '/api/v1/devices', { jar });
    expect(blocked.status).toBe(403);
    expect(blocked.body.code).toBe('factor_enrolment_required');
    expect(blocked.headers['content-type']).toMatch(/application\/problem\+json/);

    const totp = await curl('POST', '/api/v1/auth/totp', { jar, csrf });
    expect(totp.status).toBe(200);
    adminSecret = String(totp.body.secret);
    expect(String(totp.body.otpauthUri)).toMatch(/^otpauth:\/\/totp\/Bulwark:root\?.*secret=/);
    expect(String(totp.body.qrSvg)).toMatch(/^<svg/);
    adminCodeUsed = await oathtool(adminSecret);
    const confirmed = await curl('POST', '/api/v1/auth/totp/confirm', {
      jar,
      csrf,
      body: { code: adminCodeUsed },
    });
    expect(confirmed.status).toBe(200);
    expect(confirmed.body.recoveryCodes).toHaveLength(10);
    expect((confirmed.body.session as { state: string }).state).toBe('active');
    expect((await curl('GET', '/api/v1/devices', { jar })).status).toBe(200);
  });

  it('signs in with password then an oathtool code; the same code again is refused', async () => {
    const jar = path.join(dir, 'root2.jar');
    const first = await curl('POST', '/api/v1/auth/sign-in', {
      jar,
      body: { username: 'root', password: adminPassword },
    });
    expect(first.status).toBe(200);
    expect(first.body.state).toBe('second_factor');
    const pending = await curl('GET', '/api/v1/devices', { jar });
    expect(pending.status).toBe(401);
    expect(pending.body.code).toBe('second_factor_required');
    // The code used at enrolment belongs to a step already used: refused as a replay.
    const replayOfEnrolment = await curl('POST', '/api/v1/auth/second-factor', {
      jar,
      csrf: String(first.body.csrfToken),
      body: { code: adminCodeUsed },
    });
    expect(replayOfEnrolment.status).toBe(401);
    const code = await oathtool(adminSecret, 30); // the next step, within the ±1 step tolerance
    const done = await curl('POST', '/api/v1/auth/second-factor', {
      jar,
      csrf: String(first.body.csrfToken),
      body: { code },
    });
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('active');
    expect((await curl('GET', '/api/v1/auth/session', { jar })).body).toMatchObject({
      username: 'root',
      role: 'admin',
      state: 'active',
    });

    const jar2 = path.join(dir, 'root3.jar');
    const again = await curl('POST', '/api/v1/auth/sign-in', {
      jar: jar2,
      body: { username: 'root', password: adminPassword },
    });
    const replay = await curl('POST', '/api/v1/auth/second-factor', {
      jar: jar2,
      csrf: String(again.body.csrfToken),
      body: { code },
    });
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe('invalid_credentials');
    const types = (await s.platform.audit.readAfter(0, 1000)).map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'auth.sign_in_succeeded',
        'auth.second_factor_succeeded',
        'auth.second_factor_failed',
        'auth.factor_enrolled',
        'auth.recovery_codes_generated',
      ]),
    );
  });

  it('locks account and source after ten wrong passwords, with Retry-After; unknown accounts get the same answers', async () => {
    await s.platform.users.create({ username: 'victim', role: 'viewer' }, 'test');
    const { setupSecret } = await s.platform.users.create({ username: 'known', role: 'viewer' }, 'test');
    const knownPassword = 'the right passphrase 1234';
    await s.platform.users.completeSetup({
      username: 'known',
      setupSecret,
      password: knownPassword,
      address: '127.0.0.9',
    });
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 10; i++) {
      const k = await curl('POST', '/api/v1/auth/sign-in', {
        from: '127.0.0.2',
        body: { username: 'known', password: `wrong password ${i}!` },
      });
      const u = await curl('POST', '/api/v1/auth/sign-in', {
        from: '127.0.0.3',
        body: { username: 'nobody-here', password: `wrong password ${i}!` },
      });
      known.push(k.status);
      unknown.push(u.status);
      expect({ ...k.body, instance: undefined }).toEqual({ ...u.body, instance: undefined });
      await new Promise((r) => setTimeout(r, 80)); // past the (test-sized) back-off
    }
    expect(known).toEqual(unknown);
    expect(known.every((c) => c === 401 || c === 429)).toBe(true);
    // Locked: the right password from another address is refused, with Retry-After.
    const locked = await curl('POST', '/api/v1/auth/sign-in', {
      from: '127.0.0.4',
      body: { username: 'known', password: knownPassword },
    });
    expect(locked.status).toBe(429);
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(60);
    const lockedUnknown = await curl('POST', '/api/v1/auth/sign-in', {
      from: '127.0.0.5',
      body: { username: 'nobody-here', password: knownPassword },
    });
    expect(lockedUnknown.status).toBe(429);
    expect({ ...lockedUnknown.body, instance: undefined, detail: undefined }).toEqual({
      ...locked.body,
      instance: undefined,
      detail: undefined,
    });
    // The source address is locked too, for every account.
    const fromLockedSource = await curl('POST', '/api/v1/auth/sign-in', {
      from: '127.0.0.2',
      body: { username: 'victim', password: 'whatever it is 1' },
    });
    expect(fromLockedSource.status).toBe(429);
    const lockouts = (await s.platform.audit.readAfter(0, 2000)).filter((e) => e.type === 'auth.locked_out');
    expect(lockouts.map((e) => e.data.scope)).toEqual(expect.arrayContaining(['account', 'address']));
  });

  it('limits an auditor to reading, and an operator of group A to group A (404 for B)', async () => {
    const token = (await s.platform.users.resolveToken('x', '127.0.0.1')) ?? undefined;
    expect(token).toBeUndefined();
    // The admin (via an API token created from its session) creates the users and devices.
    const rootJar = path.join(dir, 'root2.jar');
    const csrf = String((await curl('GET', '/api/v1/auth/session', { jar: rootJar })).body.csrfToken);
    const adminToken = await curl('POST', '/api/v1/auth/tokens', {
      jar: rootJar,
      csrf,
      body: { name: 'automation', expiresIn: '1d' },
    });
    expect(adminToken.status).toBe(201);
    const bearer = String(adminToken.body.token);
    for (const [id, group] of [
      ['pump-a', 'A'],
      ['pump-b', 'B'],
    ]) {
      expect((await curl('POST', '/api/v1/devices', { bearer, body: { id, group } })).status).toBe(201);
    }
    const mkUser = async (username: string, role: string, groups: string[] | null) => {
      const created = await curl('POST', '/api/v1/users', { bearer, body: { username, role, groups } });
      expect(created.status).toBe(201);
      const jar = path.join(dir, `${username}.jar`);
      const setup = await curl('POST', '/api/v1/auth/setup', {
        jar,
        body: {
          username,
          setupSecret: created.body.setupSecret,
          password: `a long passphrase for ${role} 42`,
        },
      });
      expect(setup.body.state).toBe('active');
      return { jar, csrf: String(setup.body.csrfToken) };
    };
    const auditor = await mkUser('audrey', 'auditor', null);
    expect((await curl('GET', '/api/v1/devices', { jar: auditor.jar })).status).toBe(200);
    expect((await curl('GET', '/api/v1/audit?limit=5', { jar: auditor.jar })).status).toBe(200);
    expect((await curl('GET', '/api/v1/audit/verify', { jar: auditor.jar })).body.ok).toBe(true);
    const revoke = await curl('POST', '/api/v1/devices/pump-a/revoke', {
      jar: auditor.jar,
      csrf: auditor.csrf,
      body: {},
    });
    expect(revoke.status).toBe(403);
    expect(revoke.body.code).toBe('forbidden');
    expect(revoke.headers['content-type']).toMatch(/application\/problem\+json/);
    expect((await s.platform.devices.get('pump-a')).status).toBe('registered');

    const operator = await mkUser('olga', 'operator', ['A']);
    const list = await curl('GET', '/api/v1/devices', { jar: operator.jar });
    expect((list.body.devices as { id: string }[]).map((d) => d.id)).toEqual(['pump-a']);
    expect((await curl('GET', '/api/v1/devices/pump-a', { jar: operator.jar })).status).toBe(200);
    const other = await curl('GET', '/api/v1/devices/pump-b', { jar: operator.jar });
    expect(other.status).toBe(404);
    expect(other.body.code).toBe('not_found');
    expect(
      (
        await curl('POST', '/api/v1/devices/pump-b/disable', {
          jar: operator.jar,
          csrf: operator.csrf,
          body: {},
        })
      ).status,
    ).toBe(404);
    const tokenForB = await curl('POST', '/api/v1/devices/pump-b/enrollment-token', {
      jar: operator.jar,
      csrf: operator.csrf,
      body: {},
    });
    expect(tokenForB.status).toBe(404);
    // A token above its creator's role is refused.
    const escalate = await curl('POST', '/api/v1/auth/tokens', {
      jar: operator.jar,
      csrf: operator.csrf,
      body: { name: 'x', role: 'admin' },
    });
    expect(escalate.status).toBe(403);
  });

  it('refuses a cross-site POST with the session cookie and no CSRF token', async () => {
    const jar = path.join(dir, 'olga.jar');
    const session = await curl('GET', '/api/v1/auth/session', { jar });
    const noToken = await curl('POST', '/api/v1/devices', {
      jar,
      origin: 'https://evil.example',
      body: { id: 'csrf-1', group: 'A' },
    });
    expect(noToken.status).toBe(403);
    expect(noToken.body.code).toBe('csrf_failed');
    const wrongOrigin = await curl('POST', '/api/v1/devices', {
      jar,
      origin: 'https://evil.example',
      csrf: String(session.body.csrfToken),
      body: { id: 'csrf-1', group: 'A' },
    });
    expect(wrongOrigin.status).toBe(403);
    const bare = await curl('POST', '/api/v1/devices', { jar, body: { id: 'csrf-1', group: 'A' } });
    expect(bare.body.code).toBe('csrf_failed');
    expect(await s.platform.devices.find('csrf-1')).toBeUndefined();
    const ok = await curl('POST', '/api/v1/devices', {
      jar,
      csrf: String(session.body.csrfToken),
      body: { id: 'csrf-1', group: 'A' },
    });
    expect(ok.status).toBe(201);
  });

  it('ends sessions on sign-out everywhere and on privilege change', async () => {
    const jar = path.join(dir, 'audrey.jar');
    const session = await curl('GET', '/api/v1/auth/session', { jar });
    expect(session.status).toBe(200);
    await s.platform.users.update('audrey', { role: 'viewer' }, 'test');
    expect((await curl('GET', '/api/v1/auth/session', { jar })).status).toBe(401);
    void readFileSync;
  });
});
