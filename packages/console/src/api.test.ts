import { afterEach, describe, expect, it, vi } from 'vitest';
import { api } from '@bulwark/protocol';
import { ApiError, call, hrefOf, onSessionEnded, setCsrfToken } from './api.ts';
import { signInError } from './pages/sign-in.tsx';

interface Sent {
  url: string;
  init: RequestInit;
}

/** Stubs fetch with one answer; returns what the console sent. */
function answer(status: number, body: unknown, headers: Record<string, string> = {}): Sent[] {
  const sent: Sent[] = [];
  vi.stubGlobal('fetch', (url: string, init: RequestInit) => {
    sent.push({ url, init });
    const type = status >= 400 ? 'application/problem+json' : 'application/json';
    return Promise.resolve(
      new Response(JSON.stringify(body), { status, headers: { 'content-type': type, ...headers } }),
    );
  });
  return sent;
}

const problem = (status: number, code: string, detail: string) => ({
  type: `urn:bulwark:problem:${code}`,
  title: code,
  status,
  code,
  detail,
});

afterEach(() => {
  vi.unstubAllGlobals();
  setCsrfToken(undefined);
});

describe('the console API client', () => {
  it('builds the path and query from the contract and reads the answer with its 200 schema', async () => {
    const sent = answer(200, {
      alerts: [],
      somethingTheContractDoesNotPromise: true,
    });
    const result = await call(api.monitor.listAlerts, { query: { status: 'open', limit: 5 } });
    expect(result).toEqual({ alerts: [] });
    expect(sent[0]?.url).toBe('/api/v1/alerts?status=open&limit=5');
    expect(sent[0]?.init.method).toBe('GET');
    expect(new Headers(sent[0]?.init.headers).has('x-csrf-token')).toBe(false);
  });

  it('sends writes as JSON with the CSRF token, the id encoded into the path', async () => {
    setCsrfToken('csrf-123');
    const sent = answer(200, { revokedCertificates: ['01'] });
    await call(api.devices.revoke, { params: { id: 'pump/1' }, body: { reason: 'keyCompromise' } });
    expect(sent[0]?.url).toBe('/api/v1/devices/pump%2F1/revoke');
    const headers = new Headers(sent[0]?.init.headers);
    expect(headers.get('x-csrf-token')).toBe('csrf-123');
    expect(headers.get('content-type')).toBe('application/json');
    expect(sent[0]?.init.body).toBe('{"reason":"keyCompromise"}');
  });

  it('builds a download link from the contract (a report of one run)', () => {
    expect(
      hrefOf(api.compliance.getReport, {
        params: { standard: 'etsi-en-303-645' },
        query: { format: 'oscal', run: 'run 1' },
      }),
    ).toBe('/api/v1/compliance/reports/etsi-en-303-645?format=oscal&run=run+1');
  });

  it('refuses an answer that does not match the contract', async () => {
    answer(200, { devices: 'not a list', next: null });
    await expect(call(api.devices.list)).rejects.toThrow();
  });

  it('turns a problem into an ApiError with its code and Retry-After', async () => {
    answer(429, problem(429, 'rate_limited', 'too many attempts'), { 'retry-after': '900' });
    const error = await call(api.users.signIn, { body: { username: 'a', password: 'b' } }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      status: 429,
      code: 'rate_limited',
      retryAfterS: 900,
      message: 'too many attempts',
    });
    expect(signInError(error, 'password')).toBe(
      'Locked out after too many failed attempts. Try again in 15 minutes.',
    );
  });

  it('tells the console a session ended on a 401 while signed in, not on a refused sign-in step', async () => {
    const ended = vi.fn();
    const stop = onSessionEnded(ended);
    try {
      answer(401, problem(401, 'invalid_credentials', 'wrong'));
      const wrong = await call(api.users.signIn, { body: { username: 'a', password: 'b' } }).catch(
        (e: unknown) => e,
      );
      expect(signInError(wrong, 'password')).toBe('Wrong username or password.');
      const code = await call(api.users.secondFactor, { body: { code: '000000' } }).catch((e: unknown) => e);
      expect(signInError(code, 'code')).toMatch(/^Wrong code/);
      expect(ended).not.toHaveBeenCalled();
      answer(401, problem(401, 'unauthenticated', 'sign in'));
      await expect(call(api.devices.list)).rejects.toBeInstanceOf(ApiError);
      expect(ended).toHaveBeenCalledTimes(1);
    } finally {
      stop();
    }
  });
});
