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
 * Issue 11, finding 1, replayed with curl and oathtool: an API token (viewer role, made by an admin) could
 * mint its owner's recovery codes, revoke its owner's tokens and sign its owner out everywhere. Factor and
 * credential management now needs a signed-in session whose second factor is recent (step-up).
 */
describe('factor and credential management: sessions with a recent second factor only', () => {
  let s: TestServer;
  let dir: string;
  /** The server's clock runs this far ahead of the real one (to age a session without waiting). */
  let ahead = 0;
  const password = 'a long admin passphrase 1234';

  async function curl(
    method: string,
    url: string,
    options: { jar?: string; body?: unknown; csrf?: string; bearer?: string } = {},
  ): Promise<CurlResult> {
    const args = ['-sS', '-X', method, '--cacert', s.caFile, '-D', '-', `${s.httpsUrl}${url}`];
    if (options.jar) args.push('-b', options.jar, '-c', options.jar);
    if (options.body !== undefined)
      args.push('-H', 'Content-Type: application/json', '--data', JSON.stringify(options.body));
    if (options.csrf) args.push('-H', `X-CSRF-Token: ${options.csrf}`);
    if (options.bearer) args.push('-H', `Authorization: Bearer ${options.bearer}`);
    const { stdout } = await exec('curl', args);
    const [head = '', ...rest] = stdout.split('\r\n\r\n');
    const lines = head.split('\r\n');
    const headers = Object.fromEntries(
      lines
        .slice(1)
        .map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    const text = rest.join('\r\n\r\n');
    return {
      status: Number(lines[0]?.split(' ')[1]),
      headers,
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  /** A TOTP code from an independent implementation, at the server's time plus `stepS` seconds. */
  const oathtool = async (secret: string, stepS = 0) =>
    (
      await exec('oathtool', [
        '--totp',
        '-b',
        '--now',
        new Date(Date.now() + ahead + stepS * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC',
        secret,
      ])
    ).stdout.trim();

  let jar = '';
  let csrf = '';
  let totpSecret = '';
  let recoveryCodes: string[] = [];
  let adminTokenId = '';
  let adminBearer = '';
  let viewerBearer = '';

  beforeAll(async () => {
    s = await startTestServer({ 'auth.backoffBase': '1ms' }, { now: () => Date.now() + ahead });
    dir = workDir();
    jar = path.join(dir, 'boss.jar');
    const { setupSecret } = await s.platform.users.create({ username: 'boss', role: 'admin' }, 'test');
    const setup = await curl('POST', '/api/v1/auth/setup', {
      jar,
      body: { username: 'boss', setupSecret, password },
    });
    csrf = String(setup.body.csrfToken);
    totpSecret = String((await curl('POST', '/api/v1/auth/totp', { jar, csrf })).body.secret);
    const confirmed = await curl('POST', '/api/v1/auth/totp/confirm', {
      jar,
      csrf,
      body: { code: await oathtool(totpSecret) },
    });
    expect(confirmed.status).toBe(200);
    recoveryCodes = confirmed.body.recoveryCodes as string[];
    csrf = String((confirmed.body.session as { csrfToken: string }).csrfToken);
  });
  afterAll(async () => s?.stop());

  it('lets a fresh session make tokens; a viewer token made by an admin gets 403 on its owner’s factors and credentials, and changes nothing', async () => {
    const admin = await curl('POST', '/api/v1/auth/tokens', {
      jar,
      csrf,
      body: { name: 'automation', expiresIn: '1d' },
    });
    expect(admin.status).toBe(201);
    adminTokenId = String(admin.body.id);
    adminBearer = String(admin.body.token);
    const viewer = await curl('POST', '/api/v1/auth/tokens', {
      jar,
      csrf,
      body: { name: 'dashboard', role: 'viewer', expiresIn: '1d' },
    });
    expect(viewer.status).toBe(201);
    viewerBearer = String(viewer.body.token);

    const attacks = [
      ['POST', '/api/v1/auth/recovery-codes', undefined],
      ['DELETE', `/api/v1/auth/tokens/${adminTokenId}`, undefined],
      ['POST', '/api/v1/auth/sign-out', { everywhere: true }],
      ['GET', '/api/v1/auth/tokens', undefined],
      ['POST', '/api/v1/auth/tokens', { name: 'more', role: 'viewer' }],
      ['POST', '/api/v1/auth/totp', undefined],
      ['POST', '/api/v1/auth/second-factor', { code: '123456' }],
    ] as const;
    for (const bearer of [viewerBearer, adminBearer]) {
      for (const [method, url, body] of attacks) {
        const res = await curl(method, url, { bearer, body });
        expect({ call: `${method} ${url}`, status: res.status, code: res.body.code }).toEqual({
          call: `${method} ${url}`,
          status: 403,
          code: 'forbidden',
        });
        expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
      }
    }
    // The token's role caps it, but what that role allows still works.
    expect((await curl('GET', '/api/v1/devices', { bearer: viewerBearer })).status).toBe(200);
    expect(
      (await curl('POST', '/api/v1/devices', { bearer: viewerBearer, body: { id: 'x-1' } })).status,
    ).toBe(403);
    // Nothing changed: the admin's session and token live, and the recovery codes the admin holds still work.
    expect((await curl('GET', '/api/v1/auth/session', { jar })).status).toBe(200);
    expect((await curl('GET', '/api/v1/devices', { bearer: adminBearer })).status).toBe(200);
    const other = path.join(dir, 'recovery.jar');
    const signIn = await curl('POST', '/api/v1/auth/sign-in', {
      jar: other,
      body: { username: 'boss', password },
    });
    const recovered = await curl('POST', '/api/v1/auth/second-factor', {
      jar: other,
      csrf: String(signIn.body.csrfToken),
      body: { recoveryCode: recoveryCodes[0] },
    });
    expect(recovered.status).toBe(200);
    expect(recovered.body.state).toBe('active');
    const generated = (await s.platform.audit.readAfter(0, 1000)).filter(
      (e) => e.type === 'auth.recovery_codes_generated',
    );
    expect(generated).toHaveLength(1); // only the enrolment's
  });

  it('asks a session older than the step-up window to verify its second factor again (403 step_up_required), then allows it', async () => {
    ahead += 6 * 60_000; // past the default 5-minute window, inside the 30-minute idle timeout
    const stale = [
      ['POST', '/api/v1/auth/recovery-codes', undefined],
      ['POST', '/api/v1/auth/tokens', { name: 'late', expiresIn: '1d' }],
      ['DELETE', `/api/v1/auth/tokens/${adminTokenId}`, undefined],
      ['POST', '/api/v1/auth/sign-out', { everywhere: true }],
      ['POST', '/api/v1/auth/totp', undefined],
    ] as const;
    for (const [method, url, body] of stale) {
      const res = await curl(method, url, { jar, csrf, body });
      expect({ call: `${method} ${url}`, status: res.status, code: res.body.code }).toEqual({
        call: `${method} ${url}`,
        status: 403,
        code: 'step_up_required',
      });
      expect(String(res.body.detail)).toMatch(/POST \/api\/v1\/auth\/second-factor/);
    }
    // Still signed in for everything else, and the refused calls changed nothing.
    expect((await curl('GET', '/api/v1/devices', { jar })).status).toBe(200);
    expect((await curl('GET', '/api/v1/auth/tokens', { jar })).body).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: adminTokenId, revoked: false })]),
    );
    const wrong = await curl('POST', '/api/v1/auth/second-factor', { jar, csrf, body: { code: '000000' } });
    expect(wrong.status).toBe(401);

    // Step-up: the second factor again, in the same signed-in session; the session id is rotated.
    const stepUp = await curl('POST', '/api/v1/auth/second-factor', {
      jar,
      csrf,
      body: { code: await oathtool(totpSecret) },
    });
    expect(stepUp.status).toBe(200);
    expect(stepUp.body.state).toBe('active');
    expect(stepUp.headers['set-cookie']).toMatch(/__Host-bulwark_session=/);
    csrf = String(stepUp.body.csrfToken);
    const fresh = await curl('POST', '/api/v1/auth/recovery-codes', { jar, csrf });
    expect(fresh.status).toBe(200);
    const next = fresh.body.recoveryCodes as string[];
    expect(next).toHaveLength(10);
    expect(next).not.toContain(recoveryCodes[1]);
    // The old codes were replaced: one of them no longer completes a sign-in.
    const other = path.join(dir, 'old-code.jar');
    const signIn = await curl('POST', '/api/v1/auth/sign-in', {
      jar: other,
      body: { username: 'boss', password },
    });
    const old = await curl('POST', '/api/v1/auth/second-factor', {
      jar: other,
      csrf: String(signIn.body.csrfToken),
      body: { recoveryCode: recoveryCodes[1] },
    });
    expect(old.status).toBe(401);

    const revoked = await curl('DELETE', `/api/v1/auth/tokens/${adminTokenId}`, { jar, csrf });
    expect(revoked.status).toBe(204);
    expect((await curl('GET', '/api/v1/devices', { bearer: adminBearer })).status).toBe(401);
    const everywhere = await curl('POST', '/api/v1/auth/sign-out', { jar, csrf, body: { everywhere: true } });
    expect(everywhere.status).toBe(200);
    expect(everywhere.body.sessionsEnded).toBeGreaterThanOrEqual(2); // this one and the other sign-ins
    expect((await curl('GET', '/api/v1/auth/session', { jar })).status).toBe(401);
  });
});
