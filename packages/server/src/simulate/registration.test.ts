import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateDeviceKey, openIdentityStore } from '@bulwark/device';
import type { Device, DeviceStatus } from '../devices/index.ts';
import { x509 } from '../pki/index.ts';
import { testTmpDir } from '../test-support/tmp.ts';
import { planFleet, type RegistrationDeps } from './registration.ts';

const NOW = Date.now();

function device(id: string, status: DeviceStatus, quarantined = false): Device {
  return {
    id,
    group: null,
    status,
    attributes: {},
    createdAt: NOW,
    updatedAt: NOW,
    enrolledAt: status === 'registered' ? null : NOW,
    revokedAt: null,
    state: quarantined ? 'quarantined' : status,
    quarantinedAt: quarantined ? NOW : null,
    lastSeenAt: null,
    online: false,
    connectedSince: null,
    certificateExpiresAt: null,
  };
}

/** A kept identity: key, self-signed certificate (serial `serial`), CA, as enrollment leaves them. */
async function keepIdentity(dir: string, id: string, serial: string, notAfter = NOW + 86_400_000) {
  const key = await generateDeviceKey('ec-p256');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: `CN=${id}`,
    notBefore: new Date(NOW - 60_000),
    notAfter: new Date(notAfter),
    keys: key.keyPair,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const pem = cert.toString('pem');
  await openIdentityStore(dir).save({
    deviceId: id,
    serverUrl: 'https://localhost:8443',
    keyPem: key.privateKeyPem,
    certPem: pem,
    caPem: pem,
  });
}

describe('registering the simulated fleet', () => {
  let stateDir: string;
  let known: Map<string, Device>;
  let calls: string[];
  let good: Set<string>;
  let deps: RegistrationDeps;

  beforeEach(() => {
    stateDir = mkdtempSync(path.join(testTmpDir(), 'bulwark-sim-'));
    known = new Map();
    calls = [];
    good = new Set();
    deps = {
      devices: {
        find: (id) => Promise.resolve(known.get(id)),
        addWithToken: (input, _actor, ttlMs) => {
          calls.push(`add ${input.id} ${input.group} ${input.attributes?.model} ${ttlMs}`);
          return Promise.resolve({
            device: device(input.id, 'registered'),
            token: `t-${input.id}`,
            expiresAt: 0,
          });
        },
        issueToken: (id) => {
          calls.push(`token ${id}`);
          return Promise.resolve({ token: `t2-${id}`, expiresAt: 0 });
        },
      },
      certificateStanding: (serial) =>
        Promise.resolve(good.has(serial) ? { ok: true } : { ok: false, reason: 'certificate_revoked' }),
      now: () => NOW,
    };
  });
  afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

  const plan = (count: number) =>
    planFleet(deps, { count, prefix: 'sim', stateDir, actor: 'cli', tokenTtlMs: 3_600_000 });

  it('adds new devices with their group, model and a token', async () => {
    const p = await plan(3);
    expect(calls).toEqual([
      'add sim-0001 buildings thermostat 3600000',
      'add sim-0002 pumps pump 3600000',
      'add sim-0003 meters meter 3600000',
    ]);
    expect(p.added).toBe(3);
    expect(p.devices.map((d) => [d.id, d.token, d.dir])).toEqual([
      ['sim-0001', 't-sim-0001', path.join(stateDir, 'sim-0001')],
      ['sim-0002', 't-sim-0002', path.join(stateDir, 'sim-0002')],
      ['sim-0003', 't-sim-0003', path.join(stateDir, 'sim-0003')],
    ]);
  });

  it('reuses a kept identity the platform still honours, and enrolls again otherwise', async () => {
    for (const id of ['sim-0001', 'sim-0002', 'sim-0003', 'sim-0004']) known.set(id, device(id, 'active'));
    known.set('sim-0002', device('sim-0002', 'active', true));
    await keepIdentity(path.join(stateDir, 'sim-0001'), 'sim-0001', '0a01');
    await keepIdentity(path.join(stateDir, 'sim-0002'), 'sim-0002', '0a02');
    await keepIdentity(path.join(stateDir, 'sim-0003'), 'sim-0003', '0a03'); // revoked: not good
    good.add('0a01').add('0a02');
    const p = await plan(4);
    expect(p.devices.map((d) => [d.id, d.token ?? null, d.quarantined])).toEqual([
      ['sim-0001', null, false],
      ['sim-0002', null, true],
      ['sim-0003', 't2-sim-0003', false],
      ['sim-0004', 't2-sim-0004', false], // nothing kept
    ]);
    expect(calls).toEqual(['token sim-0003', 'token sim-0004']);
    expect(p.added).toBe(0);
  });

  it('leaves out devices that cannot enroll, with the reason', async () => {
    known.set('sim-0001', device('sim-0001', 'revoked'));
    known.set('sim-0002', device('sim-0002', 'decommissioned'));
    const p = await plan(3);
    expect(p.skipped).toEqual([
      { id: 'sim-0001', reason: 'it is revoked on the platform' },
      { id: 'sim-0002', reason: 'it is decommissioned on the platform' },
    ]);
    expect(p.devices.map((d) => d.id)).toEqual(['sim-0003']);
  });
});
