import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../test-support/server.ts';
import { createSoftAuthenticator, type SoftAuthenticator } from '../test-support/soft-authenticator.ts';
import { SESSION_COOKIE } from './index.ts';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  setCookie: boolean;
}

/**
 * Passkeys against the real server: a software authenticator (ES256, `none` attestation, real signatures)
 * verified by @simplewebauthn/server, through the real guard (session cookie and X-CSRF-Token).
 */
describe('passkeys (WebAuthn) as a second factor', () => {
  let s: TestServer;
  let origin: string;
  let key: SoftAuthenticator;
  const password = 'a passphrase for the passkey admin';

  /** A browser tab: keeps the session cookie and the CSRF token the server hands out. */
  function browser(session: { cookie?: string; csrf?: string } = {}) {
    let { cookie, csrf } = session;
    return {
      async call(method: 'GET' | 'POST' | 'DELETE', url: string, body?: unknown): Promise<Answer> {
        const res = await s.server.app.inject({
          method,
          url,
          cookies: cookie ? { [SESSION_COOKIE]: cookie } : {},
          headers: csrf && method !== 'GET' ? { 'x-csrf-token': csrf } : {},
          ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
        });
        const set = res.cookies.find((c) => c.name === SESSION_COOKIE);
        if (set) cookie = set.value;
        const json: Record<string, unknown> = res.body ? res.json<Record<string, unknown>>() : {};
        const token = json.csrfToken ?? (json.session as { csrfToken?: unknown } | undefined)?.csrfToken;
        if (typeof token === 'string') csrf = token;
        return { status: res.statusCode, body: json, setCookie: set !== undefined };
      },
    };
  }
  let tab: ReturnType<typeof browser>;

  const signIn = async () => {
    tab = browser();
    const res = await tab.call('POST', '/api/v1/auth/sign-in', { username: 'pia', password });
    expect(res.status).toBe(200);
    expect(res.body.state).toBe('second_factor');
  };
  const authOptions = async () => {
    const res = await tab.call('POST', '/api/v1/auth/webauthn/authenticate/options');
    expect(res.status).toBe(200);
    return res.body as unknown as PublicKeyCredentialRequestOptionsJSON;
  };
  /** Past the (test-sized) back-off that each counted failure adds. */
  const pause = () => new Promise((r) => setTimeout(r, 40));
  const throttled = async () =>
    (
      await s.platform.store.db
        .selectFrom('auth_throttle')
        .select('failures')
        .where('key', '=', 'account:pia')
        .executeTakeFirst()
    )?.failures ?? 0;
  const failures = async () =>
    (await s.platform.audit.query({ type: 'auth.second_factor_failed', limit: 100 }))
      .filter((e) => e.data.method === 'webauthn')
      .map((e) => String(e.data.reason));

  beforeAll(async () => {
    s = await startTestServer({ 'auth.backoffBase': '1ms' });
    origin = `https://localhost:${s.server.httpsPort}`;
    key = createSoftAuthenticator({ origin });
  });
  afterAll(async () => s?.stop());

  let firstOptions: PublicKeyCredentialCreationOptionsJSON;

  it('lets a new admin enrol a passkey instead of TOTP, and become active', async () => {
    const { setupSecret } = await s.platform.users.create({ username: 'pia', role: 'admin' }, 'test');
    const setup = await s.platform.users.completeSetup({
      username: 'pia',
      setupSecret,
      password,
      address: '127.0.0.1',
    });
    expect(setup.state).toBe('enrolment');
    // The tab holds the setup session, as the setup route's Set-Cookie would have left it.
    tab = browser({ cookie: setup.id, csrf: setup.csrfToken });
    expect((await tab.call('GET', '/api/v1/auth/session')).body).toMatchObject({
      state: 'enrolment',
      twoFactor: { webauthn: 0 },
    });

    expect((await tab.call('GET', '/api/v1/devices')).body.code).toBe('factor_enrolment_required');
    const options = await tab.call('POST', '/api/v1/auth/webauthn/register/options');
    expect(options.status).toBe(200);
    firstOptions = options.body as unknown as PublicKeyCredentialCreationOptionsJSON;
    expect(firstOptions).toMatchObject({
      rp: { name: 'Bulwark', id: 'localhost' },
      user: { name: 'pia' },
      attestation: 'none',
      excludeCredentials: [],
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    });
    expect(firstOptions.pubKeyCredParams.map((p) => p.alg)).toEqual([-7, -257]);

    // A response made for another origin is refused, and the challenge is gone with it.
    const phished = await tab.call('POST', '/api/v1/auth/webauthn/register/verify', {
      response: await key.register(firstOptions, { origin: 'https://bulwark.example.net' }),
      name: 'phished',
    });
    expect(phished.status).toBe(400);
    expect(phished.body.code).toBe('validation_failed');
    expect(String(phished.body.detail)).toMatch(/origin "https:\/\/bulwark\.example\.net"/);
    key.credentials.length = 0;

    const fresh = (await tab.call('POST', '/api/v1/auth/webauthn/register/options'))
      .body as unknown as PublicKeyCredentialCreationOptionsJSON;
    const response = await key.register(fresh);
    const enrolled = await tab.call('POST', '/api/v1/auth/webauthn/register/verify', {
      response,
      name: 'laptop',
    });
    expect(enrolled.status).toBe(200);
    expect(enrolled.body.recoveryCodes).toHaveLength(10);
    expect(enrolled.body.session).toMatchObject({ state: 'active' });
    expect(enrolled.setCookie).toBe(true);
    // Rotated: the enrolment session's id no longer works.
    expect((await browser({ cookie: setup.id }).call('GET', '/api/v1/auth/session')).status).toBe(401);
    expect(enrolled.body.credential).toMatchObject({ id: response.id, name: 'laptop', lastUsedAt: null });

    // The registration challenge worked once.
    const again = await tab.call('POST', '/api/v1/auth/webauthn/register/verify', { response, name: 'x' });
    expect(again.status).toBe(400);
    expect(String(again.body.detail)).toMatch(/no challenge is pending/);

    expect((await tab.call('GET', '/api/v1/devices')).status).toBe(200);
    expect((await tab.call('GET', '/api/v1/auth/session')).body).toMatchObject({
      state: 'active',
      twoFactor: { totp: false, webauthn: 1, recoveryCodesLeft: 10 },
    });
    expect((await s.platform.users.get('pia')).twoFactor.webauthn).toBe(1);
    const listed = (await tab.call('GET', '/api/v1/users')).body as unknown as {
      username: string;
      twoFactor: { webauthn: number };
    }[];
    expect(listed.find((u) => u.username === 'pia')?.twoFactor.webauthn).toBe(1);
    const enrolledEvents = await s.platform.audit.query({ type: 'auth.factor_enrolled', limit: 10 });
    expect(enrolledEvents.map((e) => e.data)).toContainEqual({ factor: 'webauthn', name: 'laptop' });
  });

  it('adds a second passkey from an active session (the first is excluded; no new codes, no new session)', async () => {
    const options = (await tab.call('POST', '/api/v1/auth/webauthn/register/options'))
      .body as unknown as PublicKeyCredentialCreationOptionsJSON;
    expect(options.excludeCredentials?.map((c) => c.id)).toEqual([key.credentials[0]!.id]);
    const backup = createSoftAuthenticator({ origin });
    const added = await tab.call('POST', '/api/v1/auth/webauthn/register/verify', {
      response: await backup.register(options),
      name: 'backup key',
    });
    expect(added.status).toBe(200);
    expect(added.body.recoveryCodes).toBeUndefined();
    expect(added.body.session).toBeUndefined();
    const list = (await tab.call('GET', '/api/v1/auth/webauthn/credentials')).body as unknown as {
      name: string;
    }[];
    expect(list.map((c) => c.name)).toEqual(['laptop', 'backup key']);
    expect(JSON.stringify(list)).not.toMatch(/public/i);
  });

  let accepted: Awaited<ReturnType<SoftAuthenticator['authenticate']>>;
  let acceptedCounter = 0;

  it('completes the second sign-in step with the passkey', async () => {
    await signIn();
    expect((await tab.call('GET', '/api/v1/devices')).body.code).toBe('second_factor_required');
    const options = await authOptions();
    expect(options.rpId).toBe('localhost');
    expect(options.allowCredentials?.map((c) => c.id)).toHaveLength(2);
    accepted = await key.authenticate(options);
    acceptedCounter = key.credentials[0]!.counter;
    const done = await tab.call('POST', '/api/v1/auth/webauthn/authenticate/verify', { response: accepted });
    expect(done.status).toBe(200);
    expect(done.body.state).toBe('active');
    expect(done.setCookie).toBe(true);
    expect((await tab.call('GET', '/api/v1/devices')).status).toBe(200);
    const [used] = (await tab.call('GET', '/api/v1/auth/webauthn/credentials')).body as unknown as {
      lastUsedAt: number | null;
    }[];
    expect(used?.lastUsedAt).toEqual(expect.any(Number));
    const succeeded = await s.platform.audit.query({ type: 'auth.second_factor_succeeded', limit: 10 });
    expect(succeeded.map((e) => e.data.method)).toContain('webauthn');
  });

  it('refuses a wrong origin, a replayed challenge, an unknown credential and a non-increasing counter, leaving the session waiting', async () => {
    await signIn();
    const refusals: [string, () => Promise<unknown>, RegExp][] = [
      [
        'wrong origin',
        async () => key.authenticate(await authOptions(), { origin: 'https://evil.example' }),
        /origin "https:\/\/evil\.example"/,
      ],
      [
        'replayed challenge',
        async () => {
          await authOptions();
          return accepted; // the assertion that completed the last sign-in, sent again
        },
        /another challenge/,
      ],
      [
        'unknown credential',
        async () => {
          const stranger = createSoftAuthenticator({ origin });
          await stranger.register(firstOptions);
          return stranger.authenticate(await authOptions());
        },
        /not registered/,
      ],
      [
        'non-increasing counter',
        async () => key.authenticate(await authOptions(), { counter: acceptedCounter }),
        /counter did not increase/,
      ],
    ];
    for (const [what, make, detail] of refusals) {
      const response = await make();
      await pause();
      const res = await tab.call('POST', '/api/v1/auth/webauthn/authenticate/verify', { response });
      expect({ what, status: res.status, code: res.body.code }).toEqual({
        what,
        status: 401,
        code: 'invalid_credentials',
      });
      expect(String(res.body.detail)).toMatch(detail);
      expect(res.setCookie).toBe(false);
      expect({ what, state: (await tab.call('GET', '/api/v1/auth/session')).body.state }).toEqual({
        what,
        state: 'second_factor',
      });
    }
    // A good assertion whose challenge was already consumed (by a failed attempt) is refused too.
    const options = await authOptions();
    const late = await key.authenticate(options);
    await pause();
    await tab.call('POST', '/api/v1/auth/webauthn/authenticate/verify', {
      response: await key.authenticate(options, { origin: 'https://evil.example' }),
    });
    await pause();
    const reused = await tab.call('POST', '/api/v1/auth/webauthn/authenticate/verify', { response: late });
    expect(reused.status).toBe(401);
    expect(String(reused.body.detail)).toMatch(/no challenge is pending/);

    expect(await failures()).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/wrong origin/),
        expect.stringMatching(/challenge does not match/),
        'unknown credential',
        expect.stringMatching(/possible cloned authenticator/),
        expect.stringMatching(/no challenge is pending/),
      ]),
    );
    // Counted in the same throttle as wrong passwords and TOTP codes; success clears it.
    expect(await throttled()).toBe(6);
    await pause();
    // The session was never spoiled: the passkey still completes it.
    const done = await tab.call('POST', '/api/v1/auth/webauthn/authenticate/verify', {
      response: await key.authenticate(await authOptions()),
    });
    expect(done.body.state).toBe('active');
    expect(await throttled()).toBe(0);
  });

  it('removes a passkey, but refuses to remove the last second factor of an admin', async () => {
    const [laptop, backup] = (await tab.call('GET', '/api/v1/auth/webauthn/credentials')).body as unknown as {
      id: string;
    }[];
    const removed = await tab.call('DELETE', `/api/v1/auth/webauthn/credentials/${backup!.id}`);
    expect(removed.status).toBe(204);
    const last = await tab.call('DELETE', `/api/v1/auth/webauthn/credentials/${laptop!.id}`);
    expect(last.status).toBe(409);
    expect(last.body.code).toBe('conflict');
    expect(String(last.body.detail)).toMatch(/last second factor.*admin.*requires two-factor/);
    const missing = await tab.call('DELETE', '/api/v1/auth/webauthn/credentials/no-such-passkey');
    expect(missing.status).toBe(404);
    expect((await s.platform.users.get('pia')).twoFactor.webauthn).toBe(1);
    const events = await s.platform.audit.query({ type: 'auth.factor_removed', limit: 10 });
    expect(events.map((e) => e.data)).toEqual([{ factor: 'webauthn', name: 'backup key' }]);
  });
});
