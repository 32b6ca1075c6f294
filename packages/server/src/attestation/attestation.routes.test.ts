import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api } from '@bulwark/protocol';
import {
  createTestPlatform,
  routeTestApp,
  type TestCredentials,
  type TestPlatform,
} from '../test-support/platform.ts';
import {
  attestationDeviceRoutes,
  attestationRoutes,
  type AttestationDeviceRoutesDeps,
  type AttestationRoutesDeps,
} from './attestation.routes.ts';
import type { AttestationResultView } from './attestation.store.ts';

const T = 1_800_000_000_000;
const groups: Record<string, string | null> = { 'pump-1': 'plant-floor', 'valve-1': 'office' };

const result = (deviceId: string): AttestationResultView => ({
  id: `ar_${deviceId}`,
  deviceId,
  at: T,
  tier: 'contraindicated',
  reason: 'pcr_mismatch',
  detail: 'PCR 7 differs',
  release: 'fw@1.0.0',
  pcrSelection: 'sha256:0,1,2,7',
  mismatchedPcrs: [7],
});

/** What the routes were asked, with which device and actor. */
const calls: unknown[][] = [];

const device: AttestationDeviceRoutesDeps['attestation'] = {
  registerKey: (id, input) => {
    calls.push(['registerKey', id, input]);
    return Promise.resolve({
      challengeId: 'c-1',
      credentialBlob: 'AAAA',
      encryptedSecret: 'BBBB',
      akName: '000b00',
      expiresAt: T,
    });
  },
  activateKey: (id) => Promise.resolve({ status: 'bound', akName: `${id}-ak` }),
  challenge: () => Promise.resolve({ nonce: 'ab'.repeat(32), pcrSelection: 'sha256:0,1,2,7', expiresAt: T }),
  submitQuote: (id) => Promise.resolve(result(id)),
};

const operator: AttestationRoutesDeps['attestation'] = {
  showDevice: (id) =>
    Promise.resolve({ deviceId: id, standing: 'contraindicated', key: null, last: result(id), dueAt: null }),
  listResults: () => Promise.resolve([result('pump-1'), result('valve-1')]),
  listReports: () => Promise.resolve([]),
  removeKey: (id, reason, actor) => {
    calls.push(['removeKey', id, reason, actor]);
    return Promise.resolve({ removed: true });
  },
};

/** The device and operator attestation routes in-process: device by certificate, operators by role and group. */
describe('attestation API', { timeout: 60_000 }, () => {
  let t: TestPlatform;
  let app: FastifyInstance;
  let officer: TestCredentials;
  let auditor: TestCredentials;
  let scoped: TestCredentials;

  beforeAll(async () => {
    t = await createTestPlatform({ background: false });
    app = await routeTestApp(t);
    await app.register(
      attestationDeviceRoutes({
        attestation: device,
        // The test's stand-in for the TLS client certificate: its serial in a header.
        peerOf: (request) => {
          const serial = request.headers['x-test-serial'];
          return typeof serial === 'string' ? { serial, cn: serial.split('@')[0] } : undefined;
        },
        checkDevice: ({ certSerial, certCn }) =>
          Promise.resolve(
            certSerial?.endsWith('@revoked')
              ? { ok: false, reason: 'certificate revoked' }
              : { ok: true, deviceId: certCn ?? '' },
          ),
      }),
    );
    await app.register(
      attestationRoutes({ attestation: operator, groupOf: (id) => Promise.resolve(groups[id]) }),
    );
    officer = await t.signIn('security-officer');
    auditor = await t.signIn('auditor');
    scoped = await t.signIn('operator', { username: 'floor-operator', groups: ['plant-floor'] });
  });
  afterAll(async () => {
    await app?.close();
    await t?.close();
  });

  const asDevice = (serial: string | undefined, url: string, payload?: object) =>
    app.inject({
      method: 'POST',
      url,
      headers: serial ? { 'x-test-serial': serial } : {},
      ...(payload ? { payload } : {}),
    });

  it('serves the device routes to the device of the certificate only', async () => {
    const body = { ekPublic: 'AAAA', akPublic: 'BBBB' };
    expect((await asDevice(undefined, '/attestation/keys', body)).statusCode).toBe(401);
    const revoked = await asDevice('pump-1@revoked', '/attestation/keys', body);
    expect(revoked.statusCode).toBe(403);
    expect(revoked.json()).toMatchObject({ code: 'device_revoked' });

    const registered = await asDevice('pump-1@01', '/attestation/keys', body);
    expect(registered.statusCode, registered.body).toBe(201);
    expect(api.attestation.registerKey.response[201].strict().parse(registered.json())).toMatchObject({
      challengeId: 'c-1',
    });
    expect(calls).toContainEqual(['registerKey', 'pump-1', body]);
    // The body is validated by the contract before the service sees it.
    expect((await asDevice('pump-1@01', '/attestation/keys', { ekPublic: 'not base64!' })).statusCode).toBe(
      400,
    );

    const activated = await asDevice('pump-1@01', '/attestation/keys/activate', {
      challengeId: 'c-1',
      secret: 'AAAA',
    });
    expect(activated.json()).toEqual({ status: 'bound', akName: 'pump-1-ak' });
    const challenge = await asDevice('pump-1@01', '/attestation/challenge');
    expect(api.attestation.challenge.response[200].strict().parse(challenge.json()).nonce).toHaveLength(64);
    const quote = await asDevice('pump-1@01', '/attestation/quote', {
      nonce: 'ab'.repeat(32),
      quote: 'AAAA',
      signature: 'AAAA',
      pcrs: { sha256: { 7: '00'.repeat(32) } },
    });
    // A refused quote still answers 200 with its verdict.
    expect(quote.statusCode, quote.body).toBe(200);
    expect(api.attestation.submitQuote.response[200].strict().parse(quote.json())).toMatchObject({
      deviceId: 'pump-1',
      reason: 'pcr_mismatch',
    });
  });

  it('shows a device and its verdicts within the user’s groups; removing a key needs devices:write', async () => {
    const shown = await app.inject({
      method: 'GET',
      url: '/api/v1/attestation/devices/valve-1',
      headers: auditor.headers,
    });
    expect(shown.statusCode, shown.body).toBe(200);
    expect(api.attestation.showDevice.response[200].strict().parse(shown.json())).toMatchObject({
      standing: 'contraindicated',
    });
    const hidden = await app.inject({
      method: 'GET',
      url: '/api/v1/attestation/devices/valve-1',
      headers: scoped.headers,
    });
    expect(hidden.statusCode).toBe(404);
    const unknown = await app.inject({
      method: 'GET',
      url: '/api/v1/attestation/devices/nope',
      headers: auditor.headers,
    });
    expect(unknown.statusCode).toBe(404);

    const all = await app.inject({
      method: 'GET',
      url: '/api/v1/attestation/results',
      headers: auditor.headers,
    });
    expect(all.json<{ results: { deviceId: string }[] }>().results.map((r) => r.deviceId)).toEqual([
      'pump-1',
      'valve-1',
    ]);
    const mine = await app.inject({
      method: 'GET',
      url: '/api/v1/attestation/results',
      headers: scoped.headers,
    });
    expect(mine.json<{ results: { deviceId: string }[] }>().results.map((r) => r.deviceId)).toEqual([
      'pump-1',
    ]);
    const reports = await app.inject({
      method: 'GET',
      url: '/api/v1/attestation/reports?kind=tamper',
      headers: auditor.headers,
    });
    expect(reports.json()).toEqual({ reports: [] });

    const remove = (who: TestCredentials) =>
      app.inject({
        method: 'DELETE',
        url: '/api/v1/attestation/devices/pump-1/key',
        headers: who.headers,
        payload: { reason: 'TPM replaced' },
      });
    expect((await remove(auditor)).statusCode).toBe(403);
    const removed = await remove(officer);
    expect(removed.statusCode, removed.body).toBe(200);
    expect(removed.json()).toEqual({ removed: true });
    const call = calls.find((c) => c[0] === 'removeKey');
    expect(call?.slice(0, 3)).toEqual(['removeKey', 'pump-1', 'TPM replaced']);
    expect(call?.[3]).toMatch(/^user:/);
  });
});
