import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../config/index.ts';
import { atomicSteps, subjectOf, type AtomicStep } from '../events/index.ts';
import { createLogger } from '../logger.ts';
import { createPlatform, type Platform } from '../platform.ts';
import { createTestStore, testDialects, type TestStore } from '../test-support/dialects.ts';
import { x509 } from './index.ts';

const crashScript = path.join(import.meta.dirname, '..', 'test-support', 'revocation-crash.ts');

async function csr(): Promise<string> {
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: 'CN=x',
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return request.toString('base64');
}

/** What the store says about the device's revocation after a restart. */
async function revocationState(p: Platform, deviceId: string) {
  const subject = subjectOf.device(deviceId);
  const deviceEvents = await p.audit.query({ type: 'device.revoked', subject, limit: 10 });
  const certEvents = await p.audit.query({ type: 'certificate.revoked', subject, limit: 10 });
  const certs = await p.store.db
    .selectFrom('certificates')
    .select(['serial', 'revocation_reason'])
    .where('device_id', '=', deviceId)
    .execute();
  return {
    deviceRevoked: (await p.devices.get(deviceId)).status === 'revoked',
    certificatesRevoked: certs.filter((c) => c.revocation_reason === 'keyCompromise').length,
    deviceRevokedEvents: deviceEvents.length,
    certificateRevokedEvents: certEvents.filter((e) => e.data.reason === 'keyCompromise').length,
    outbox: (await p.store.db.selectFrom('event_outbox').select('id').execute()).length,
  };
}

const both = {
  deviceRevoked: true,
  certificatesRevoked: 1,
  deviceRevokedEvents: 1,
  certificateRevokedEvents: 1,
};
const neither = {
  deviceRevoked: false,
  certificatesRevoked: 0,
  deviceRevokedEvents: 0,
  certificateRevokedEvents: 0,
};
const expected: Record<AtomicStep, typeof both> = { written: neither, committed: both, relayed: both };

describe.each(testDialects)('a revocation killed at each step, then restarted (%s)', (dialect) => {
  let dataDir: string | undefined;
  let db: TestStore | undefined;
  let open: () => Promise<Platform>;
  let databaseUrl = '';
  // One installation per dialect, with a device enrolled for each step.
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-crash-'));
    if (dialect === 'postgres') db = await createTestStore('postgres');
    databaseUrl = db?.location.url ?? '';
    const config = testConfig({
      dataDir,
      logLevel: 'silent',
      ...(databaseUrl ? { 'database.url': databaseUrl } : {}),
    });
    open = () => createPlatform(config, { logger: createLogger('silent') });
    const p = await open();
    for (const step of atomicSteps) {
      await p.devices.add({ id: step }, 'test');
      const { token } = await p.devices.issueToken(step, 'test');
      await (await p.pki()).enroll({ deviceId: step, token, csr: await csr() });
    }
    await p.close();
  }, 120_000);
  afterAll(async () => {
    await db?.cleanup();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it.each(atomicSteps)(
    'leaves both the revocation and its audit events, or neither (killed at %s)',
    async (step) => {
      const args = [crashScript, dataDir ?? '', databaseUrl, step, step];
      const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
      expect({ code, signal, out }).toEqual({ code: null, signal: 'SIGKILL', out: '' });

      // The restart appends what the crash left in the outbox before anything else runs.
      const after = await open();
      try {
        expect(await revocationState(after, step)).toEqual({ ...expected[step], outbox: 0 });
        expect(await after.audit.verify()).toMatchObject({ ok: true });
      } finally {
        await after.close();
      }
    },
    120_000,
  );
});
