import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { enrollDevice } from './enroll.ts';
import { openIdentityStore } from './identity-store.ts';
import { createTestCa, startFakeEstServer, type FakeEstServer, type TestCa } from './test-support/index.ts';
import { x509 } from './x509.ts';

let ca: TestCa;
let server: FakeEstServer;
let root: string;
let dir: string;

beforeAll(async () => {
  ca = await createTestCa();
  server = await startFakeEstServer({ ca, tokens: { 'pump-17': 'tok-17', 'pump-18': 'tok-18' } });
  root = await mkdtemp(join(tmpdir(), 'bulwark-enroll-'));
});
afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});
beforeEach(async () => {
  dir = join(await mkdtemp(join(root, 't-')), 'identity');
  server.requests.length = 0;
});

const paths = () => server.requests.map((request) => `${request.method} ${request.path}`);
/** The token travels only in `simpleenroll`'s Authorization header. */
const tokenSent = () => server.requests.some((request) => request.headers.authorization !== undefined);

describe('enrollDevice', () => {
  it('refuses an unverified CA root, naming its fingerprint, before the token is sent', async () => {
    const shown: string[] = [];
    await expect(
      enrollDevice({
        serverUrl: server.url,
        deviceId: 'pump-17',
        token: 'tok-17',
        dir,
        onTrustOnFirstUse: (rootCert) => shown.push(rootCert.fingerprint),
      }),
    ).rejects.toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(
        new RegExp(
          `^CA root not verified: .*fingerprint ${ca.fingerprint}; compare it with "bulwark pki ca-chain .*` +
            `openssl x509 -noout -fingerprint -sha256".*--ca-fingerprint <hex>.*--ca FILE`,
        ),
      ) as unknown,
    });
    expect(paths()).toEqual(['GET /.well-known/est/cacerts']);
    expect(tokenSent()).toBe(false);
    expect(shown).toEqual([]);
    expect(await openIdentityStore(dir).exists()).toBe(false);
  });

  it('with trustOnFirstUse, trusts the fetched CA, shows its fingerprint, then enrolls over verified TLS', async () => {
    const shown: string[] = [];
    const result = await enrollDevice({
      serverUrl: server.url,
      deviceId: 'pump-17',
      token: 'tok-17',
      dir,
      trustOnFirstUse: true,
      onTrustOnFirstUse: (rootCert) => shown.push(rootCert.fingerprint),
    });

    expect(shown).toEqual([ca.fingerprint]);
    expect(result).toMatchObject({
      deviceId: 'pump-17',
      trustedOnFirstUse: true,
      caRoot: { fingerprint: ca.fingerprint },
    });
    expect(paths()).toEqual(['GET /.well-known/est/cacerts', 'POST /.well-known/est/simpleenroll']);
    const identity = await openIdentityStore(dir).load();
    expect(identity).toMatchObject({ deviceId: 'pump-17', serverUrl: server.url, caPem: ca.certPem });
    expect(new x509.X509Certificate(identity.certPem).subject).toBe('CN=pump-17');
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o600);
  });

  it('accepts a root whose fingerprint matches --ca-fingerprint, however it is written', async () => {
    const shown: string[] = [];
    const result = await enrollDevice({
      serverUrl: server.url,
      deviceId: 'pump-17',
      token: 'tok-17',
      dir,
      caFingerprint: ca.fingerprint.replaceAll(':', '').toLowerCase(),
      keyType: 'ec-p384',
      mqttUrl: 'mqtts://127.0.0.1:18883',
      onTrustOnFirstUse: (rootCert) => shown.push(rootCert.fingerprint),
    });
    expect(result).toMatchObject({ trustedOnFirstUse: false, caRoot: { fingerprint: ca.fingerprint } });
    expect(shown).toEqual([]);
    expect(paths()).toEqual(['GET /.well-known/est/cacerts', 'POST /.well-known/est/simpleenroll']);
    expect(JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8'))).toMatchObject({
      mqttUrl: 'mqtts://127.0.0.1:18883',
    });
  });

  it.each([false, true])(
    'refuses a root with another fingerprint before sending the token (trustOnFirstUse: %s)',
    async (trustOnFirstUse) => {
      const other = await createTestCa('Impostor');
      await expect(
        enrollDevice({
          serverUrl: server.url,
          deviceId: 'pump-17',
          token: 'tok-17',
          dir,
          caFingerprint: other.fingerprint,
          trustOnFirstUse,
        }),
      ).rejects.toMatchObject({
        code: 'forbidden',
        message: expect.stringMatching(/fingerprint mismatch/) as unknown,
      });
      expect(paths()).toEqual(['GET /.well-known/est/cacerts']);
      expect(tokenSent()).toBe(false);
      expect(await openIdentityStore(dir).exists()).toBe(false);
    },
  );

  it('with --ca, trusts exactly that chain and skips the unauthenticated fetch', async () => {
    await enrollDevice({ serverUrl: server.url, deviceId: 'pump-17', token: 'tok-17', dir, ca: ca.certPem });
    expect(paths()).toEqual(['POST /.well-known/est/simpleenroll']);
  });

  it('does not enroll against a server the given CA does not vouch for', async () => {
    const other = await createTestCa('Someone Else');
    await expect(
      enrollDevice({ serverUrl: server.url, deviceId: 'pump-17', token: 'tok-17', dir, ca: other.certPem }),
    ).rejects.toThrow(/EST simpleenroll to .* failed/);
    expect(paths()).toEqual([]);
  });

  it('reports a refused token with the server code and stores nothing', async () => {
    await expect(
      enrollDevice({ serverUrl: server.url, deviceId: 'pump-17', token: 'wrong', dir, ca: ca.certPem }),
    ).rejects.toMatchObject({
      code: 'token_invalid',
      message: expect.stringContaining('HTTP 401 token_invalid') as unknown,
    });
    expect(await openIdentityStore(dir).exists()).toBe(false);
  });

  it('will not overwrite an existing identity unless forced', async () => {
    await enrollDevice({ serverUrl: server.url, deviceId: 'pump-17', token: 'tok-17', dir, ca: ca.certPem });
    const again = { serverUrl: server.url, deviceId: 'pump-18', token: 'tok-18', dir, ca: ca.certPem };
    await expect(enrollDevice(again)).rejects.toMatchObject({ code: 'conflict' });
    await enrollDevice({ ...again, force: true });
    expect((await openIdentityStore(dir).load()).deviceId).toBe('pump-18');
  });

  it.each([
    [{ deviceId: 'a/b' }, /device id must be/],
    [{ serverUrl: 'http://127.0.0.1' }, /https:\/\//],
    [{ caFingerprint: 'abc' }, /invalid CA fingerprint/],
    [{ token: '' }, /token is empty/],
  ])('validates its input before any network call: %o', async (override, problem) => {
    await expect(
      enrollDevice({ serverUrl: server.url, deviceId: 'pump-17', token: 'tok-17', dir, ...override }),
    ).rejects.toThrow(problem);
    expect(paths()).toEqual([]);
  });
});
