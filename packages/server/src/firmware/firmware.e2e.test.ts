import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollDevice, startAgent, type Agent } from '@bulwark/device';
import type { FirmwareStatus } from '@bulwark/protocol';
import type { Principal, Role } from '../users/index.ts';
import { exec, workDir } from '../test-support/clients.ts';
import { cycloneDx, inTwoYears, makeImage } from '../test-support/firmware.ts';
import { BULWARK_BIN, startTestServer, type TestServer } from '../test-support/server.ts';

const FIXTURES = fileURLToPath(new URL('../risk/fixtures/osv', import.meta.url));

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Issue 7 as a new user meets it: the `bulwark firmware` CLI (keys, TUF, upload, sign offline), the
 * /api/v1/firmware API with curl, and a device running bulwark-agent updating through a rollout.
 */
describe('firmware: CLI, API and an agent updating end to end', { timeout: 120_000 }, () => {
  let s: TestServer;
  let dir: string;
  const tokens = new Map<Role, string>();

  async function curl(
    method: string,
    url: string,
    options: { role?: Role; json?: unknown; file?: string; headers?: string[] } = {},
  ): Promise<Answer> {
    const args = ['-sS', '-X', method, '--cacert', s.caFile, '-w', '\n%{http_code}', `${s.httpsUrl}${url}`];
    args.push('-H', `Authorization: Bearer ${tokens.get(options.role ?? 'admin')}`);
    if (options.json !== undefined)
      args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(options.json));
    if (options.file)
      args.push('-H', 'Content-Type: application/octet-stream', '--data-binary', `@${options.file}`);
    for (const h of options.headers ?? []) args.push('-H', h);
    const { stdout } = await exec('curl', args, { maxBuffer: 64 * 1024 * 1024 });
    const cut = stdout.lastIndexOf('\n');
    const text = stdout.slice(0, cut);
    return {
      status: Number(stdout.slice(cut + 1)),
      body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  /** The real CLI without a data directory (an operator's offline machine). */
  const offline = async (args: string[]) => {
    const { stdout } = await exec(process.execPath, [BULWARK_BIN, ...args]);
    return stdout;
  };

  const artifacts = () => readdirSync(path.join(s.dataDir, 'firmware', 'artifacts'));

  beforeAll(async () => {
    s = await startTestServer({ 'firmware.rolloutInterval': 200 });
    dir = workDir();
    for (const role of ['admin', 'operator', 'viewer'] as const) {
      const { user } = await s.platform.users.create({ username: `fw-${role}`, role }, 'test');
      const principal: Principal = {
        userId: user.id,
        username: user.username,
        role,
        groups: null,
        via: 'session',
        sessionState: 'active',
      };
      tokens.set(
        role,
        (await s.platform.users.createToken(principal, { name: 'e2e', expiresInMs: 3_600_000 })).token,
      );
    }
  });
  afterAll(async () => s?.stop());

  it('sets up TUF with offline keys, uploads a release with its SBOM and signs targets offline (CLI)', async () => {
    const root = path.join(dir, 'root.key');
    const targets = path.join(dir, 'targets.key');
    expect(await offline(['firmware', 'key', 'generate', '--out', root])).toMatch(/^key [0-9a-f]{64}/);
    await offline(['firmware', 'key', 'generate', '--out', targets]);
    // Only public keys reach the server: it answers with an unsigned root to sign offline.
    const init = await s.cli([
      'firmware',
      'tuf',
      'init',
      '--root-key',
      `${root}.pub`,
      '--targets-key',
      `${targets}.pub`,
      '--out',
      path.join(dir, 'root.unsigned.json'),
    ]);
    expect(init.code).toBe(0);
    await offline([
      'firmware',
      'sign',
      '--key',
      root,
      '--in',
      path.join(dir, 'root.unsigned.json'),
      '--out',
      path.join(dir, 'root.signed.json'),
    ]);
    expect((await s.cli(['firmware', 'tuf', 'publish', path.join(dir, 'root.signed.json')])).stdout).toMatch(
      /root version 1 published/,
    );

    const image = makeImage(64 * 1024, dir);
    writeFileSync(
      path.join(dir, 'sbom.json'),
      JSON.stringify(cycloneDx(['pkg:npm/lodash@4.17.11', 'pkg:generic/busybox@1.36.1'])),
    );
    const upload = await s.cli([
      'firmware',
      'upload',
      image.file,
      'pump-fw@1.0.0',
      '--hardware',
      'pump-v2',
      '--security-version',
      '3',
      '--end-of-support',
      inTwoYears().slice(0, 10),
      '--sbom',
      path.join(dir, 'sbom.json'),
      '--notes',
      'first release',
    ]);
    expect(upload).toMatchObject({ code: 0 });
    expect(upload.stdout).toMatch(/release pump-fw@1.0.0 uploaded \(65536 bytes/);
    expect(artifacts()).toContain(image.sha256);

    // Targets: prepared on the server, signed on the operator's machine, published.
    await s.cli(['firmware', 'tuf', 'targets', '--out', path.join(dir, 'targets.unsigned.json')]);
    await offline([
      'firmware',
      'sign',
      '--key',
      targets,
      '--in',
      path.join(dir, 'targets.unsigned.json'),
      '--out',
      path.join(dir, 'targets.signed.json'),
    ]);
    expect(
      (await s.cli(['firmware', 'tuf', 'publish', path.join(dir, 'targets.signed.json')])).stdout,
    ).toMatch(/targets version 1 published/);
    const list = JSON.parse((await s.cli(['firmware', 'list', '--json'])).stdout) as Record<
      string,
      unknown
    >[];
    expect(list).toEqual([
      expect.objectContaining({
        name: 'pump-fw',
        version: '1.0.0',
        status: 'ready',
        signed: true,
        sbomComponents: 2,
      }),
    ]);
    const status = JSON.parse((await s.cli(['firmware', 'tuf', 'status', '--json'])).stdout) as {
      roles: Record<string, { version: number }>;
    };
    expect(Object.keys(status.roles).sort()).toEqual(['root', 'snapshot', 'targets', 'timestamp']);
    // The server never saw the root or targets private keys: only snapshot and timestamp keys are stored, sealed.
    const stored = await s.platform.store.db.selectFrom('tuf_keys').select(['role', 'sealed_key']).execute();
    expect(stored.map((k) => k.role).sort()).toEqual(['snapshot', 'timestamp']);
    expect(stored.every((k) => k.sealed_key.startsWith('v1:') && !k.sealed_key.includes('PRIVATE'))).toBe(
      true,
    );
  });

  it('refuses bad uploads with one-line reasons and leaves nothing behind (CLI)', async () => {
    const image = makeImage(1000, dir);
    const before = artifacts();
    const base = ['--hardware', 'pump-v2', '--security-version', '1', '--end-of-support', '2099-01-01'];
    const traversal = await s.cli(['firmware', 'upload', image.file, '../../etc@1.0.0', ...base]);
    expect(traversal.code).toBe(1);
    expect(traversal.stderr).toMatch(/^bulwark: name must be .*\n$/);
    writeFileSync(path.join(dir, 'bad-sbom.json'), '{"bomFormat":"SPDX"}');
    const badSbom = await s.cli([
      'firmware',
      'upload',
      image.file,
      'pump-fw@9.9.9',
      ...base,
      '--sbom',
      path.join(dir, 'bad-sbom.json'),
    ]);
    expect(badSbom.stderr).toMatch(/^bulwark: SBOM refused: \/bomFormat: must be "CycloneDX"\n$/);
    // A draft whose declared hash does not match the file.
    await s.cli([
      'firmware',
      'create',
      'pump-fw@9.9.8',
      ...base,
      '--sha256',
      'ab'.repeat(32),
      '--size',
      '1000',
    ]);
    const wrong = await s.cli(['firmware', 'upload', image.file, 'pump-fw@9.9.8']);
    expect(wrong.stderr).toMatch(/^bulwark: the upload's SHA-256 is [0-9a-f]{64}, not the declared abab/);
    expect(artifacts()).toEqual(before);
    expect(readdirSync(path.join(s.dataDir, 'firmware', 'tmp'))).toEqual([]);
    const all = JSON.parse((await s.cli(['firmware', 'list', '--json'])).stdout) as {
      version: string;
      status: string;
    }[];
    expect(all.map((r) => `${r.version}:${r.status}`).sort()).toEqual(['1.0.0:ready', '9.9.8:draft']);
  });

  it('serves the API: create, streamed upload, list, show, SBOM, retire, with roles (curl)', async () => {
    const image = makeImage(200_000, dir);
    const body = {
      name: 'valve-fw',
      version: '2.0.0',
      hardwareIds: ['valve-v1'],
      securityVersion: 1,
      endOfSupport: '2099-12-31',
      size: image.size,
      sha256: image.sha256,
      sbom: cycloneDx(['pkg:npm/lodash@4.17.21']),
    };
    expect((await curl('POST', '/api/v1/firmware/releases', { role: 'viewer', json: body })).status).toBe(
      403,
    );
    expect((await curl('POST', '/api/v1/firmware/releases', { role: 'operator', json: body })).status).toBe(
      403,
    );
    const created = await curl('POST', '/api/v1/firmware/releases', { json: body });
    expect(created).toMatchObject({ status: 201, body: { status: 'draft', signed: false } });
    const id = String(created.body.id);
    const uploaded = await curl('PUT', `/api/v1/firmware/releases/${id}/artifact`, { file: image.file });
    expect(uploaded).toMatchObject({ status: 200, body: { status: 'ready', sha256: image.sha256 } });
    expect(
      (await curl('GET', '/api/v1/firmware/releases?name=valve-fw', { role: 'viewer' })).body.releases,
    ).toEqual([expect.objectContaining({ id, version: '2.0.0' })]);
    expect(
      (await curl('GET', '/api/v1/firmware/releases/valve-fw@2.0.0', { role: 'viewer' })).body,
    ).toMatchObject({
      id,
      hasSbom: true,
    });
    expect(
      (await curl('GET', `/api/v1/firmware/releases/${id}/sbom`, { role: 'viewer' })).body,
    ).toMatchObject({
      bomFormat: 'CycloneDX',
    });
    const retired = await curl('POST', `/api/v1/firmware/releases/${id}/retire`, {
      json: { reason: 'recalled' },
    });
    expect(retired).toMatchObject({ status: 200, body: { status: 'retired' } });
  });

  it('refuses bad API uploads with problem codes, keeping nothing (curl and a dropped connection)', async () => {
    const before = artifacts();
    const image = makeImage(100_000, dir);
    const post = (extra: object) =>
      curl('POST', '/api/v1/firmware/releases', {
        json: {
          name: 'pump-fw',
          version: '3.0.0',
          hardwareIds: ['pump-v2'],
          securityVersion: 3,
          endOfSupport: '2099-12-31',
          size: image.size,
          sha256: image.sha256,
          ...extra,
        },
      });
    expect(await post({ name: '../x' })).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
    expect(
      await post({ sbom: { bomFormat: 'CycloneDX', specVersion: '1.5', components: [{ type: 'library' }] } }),
    ).toMatchObject({ status: 422, body: { code: 'sbom_invalid' } });
    expect(await post({ size: 3 * 1024 ** 3 })).toMatchObject({
      status: 413,
      body: { code: 'payload_too_large' },
    });
    const draft = await post({ sha256: 'cd'.repeat(32) });
    const id = String(draft.body.id);
    expect(await curl('PUT', `/api/v1/firmware/releases/${id}/artifact`, { file: image.file })).toMatchObject(
      {
        status: 422,
        body: { code: 'hash_mismatch' },
      },
    );
    expect(
      await curl('PUT', `/api/v1/firmware/releases/${id}/artifact`, { json: { not: 'bytes' } }),
    ).toMatchObject({
      status: 415,
    });

    // A connection that drops halfway through the body.
    const good = await post({ version: '3.0.1' });
    const goodId = String(good.body.id);
    await new Promise<void>((resolve) => {
      const req = https.request(`${s.httpsUrl}/api/v1/firmware/releases/${goodId}/artifact`, {
        method: 'PUT',
        ca: readFileSync(s.caFile, 'utf8'),
        headers: {
          authorization: `Bearer ${tokens.get('admin')}`,
          'content-type': 'application/octet-stream',
          'content-length': String(image.size),
        },
      });
      req.on('error', () => resolve());
      req.on('response', () => resolve());
      req.write(image.bytes.subarray(0, 40_000), () => setTimeout(() => req.destroy(), 100));
    });
    const deadline = Date.now() + 5000;
    let refused: { data: Record<string, unknown> } | undefined;
    while (!refused && Date.now() < deadline) {
      refused = (await s.platform.audit.readAfter(0, 100_000)).find(
        (e) => e.type === 'firmware.upload_refused' && e.data.version === '3.0.1',
      );
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(refused?.data).toMatchObject({ code: 'upload_incomplete' });
    expect(artifacts()).toEqual(before);
    expect(readdirSync(path.join(s.dataDir, 'firmware', 'tmp'))).toEqual([]);
    expect((await curl('GET', `/api/v1/firmware/releases/${goodId}`)).body.status).toBe('draft');
    // The same draft accepts the whole image afterwards.
    expect(
      (await curl('PUT', `/api/v1/firmware/releases/${goodId}/artifact`, { file: image.file })).status,
    ).toBe(200);
  });

  it('updates a device running bulwark-agent through a rollout, then flags it from a real OSV advisory', async () => {
    const ca = readFileSync(s.caFile, 'utf8');
    await s.platform.devices.add({ id: 'pump-17', group: 'pumps' }, 'test');
    const { token } = await s.platform.devices.issueToken('pump-17', 'test');
    const deviceDir = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-agent-fw-')), 'pump-17');
    await enrollDevice({ serverUrl: s.httpsUrl, deviceId: 'pump-17', token, dir: deviceDir, ca });
    const agent: Agent = await startAgent({
      dir: deviceDir,
      mqttUrl: s.mqttUrl,
      heartbeatIntervalMs: 60_000,
      firmware: { hardwareId: 'pump-v2', factory: { version: '0.9.0', securityVersion: 1 } },
    });
    const steps: FirmwareStatus[] = [];
    agent.on('firmware', (st) => steps.push(st));
    try {
      await agent.waitFor('connected', { timeoutMs: 5000 });
      // The agent said what it runs (the factory image).
      for (let i = 0; i < 50 && !(await s.platform.firmware.fleet.deviceState('pump-17')); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(await s.platform.firmware.fleet.deviceState('pump-17')).toMatchObject({
        hardware_id: 'pump-v2',
        version: '0.9.0',
        target_path: null,
      });

      // An operator starts a rollout of the signed release over the API.
      expect(
        await curl('POST', '/api/v1/firmware/rollouts', {
          role: 'viewer',
          json: { release: 'pump-fw@1.0.0', selector: { groups: ['pumps'] }, phases: [100] },
        }),
      ).toMatchObject({ status: 403 });
      const started = await curl('POST', '/api/v1/firmware/rollouts', {
        role: 'operator',
        json: {
          release: 'pump-fw@1.0.0',
          selector: { groups: ['pumps'] },
          phases: [100],
          failureThreshold: 0,
        },
      });
      expect(started).toMatchObject({ status: 201, body: { status: 'running' } });
      const done = await agent.waitFor('firmware', {
        timeoutMs: 15_000,
        filter: (st) => st.step === 'succeeded' || st.step === 'failed',
      });
      expect(done).toMatchObject({ step: 'succeeded', target: 'pump-fw/1.0.0/pump-fw-1.0.0.bin' });
      expect(steps.map((st) => st.step)).toEqual([
        'available',
        'downloading',
        'verifying',
        'installing',
        'rebooting',
        'succeeded',
      ]);
      expect(await agent.firmware?.installer.current()).toMatchObject({
        version: '1.0.0',
        securityVersion: 3,
      });
      let rollout: Answer | undefined;
      for (let i = 0; i < 50; i++) {
        rollout = await curl('GET', `/api/v1/firmware/rollouts/${String(started.body.id)}`, {
          role: 'viewer',
        });
        if (rollout.body.status === 'completed') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(rollout?.body).toMatchObject({ status: 'completed', phases: [{ devices: 1, succeeded: 1 }] });
      for (let i = 0; i < 50; i++) {
        if ((await s.platform.firmware.fleet.deviceState('pump-17'))?.version === '1.0.0') break;
        await new Promise((r) => setTimeout(r, 50));
      }

      // The OSV feed arrives: the device runs lodash 4.17.11 inside pump-fw 1.0.0.
      const imported = await s.cli(['firmware', 'advisories', 'import', FIXTURES]);
      expect(imported.stdout).toMatch(/2 imported, 0 unchanged, 2 release matches/);
      const exposure = await curl('GET', '/api/v1/firmware/exposure', { role: 'viewer' });
      expect(exposure.body.devices).toEqual([
        expect.objectContaining({
          deviceId: 'pump-17',
          worstSeverity: 'critical',
          worstScore: 9.1,
          release: expect.objectContaining({ name: 'pump-fw', version: '1.0.0' }) as unknown,
        }),
      ]);
      const show = JSON.parse((await s.cli(['firmware', 'show', 'pump-fw@1.0.0', '--json'])).stdout) as {
        vulnerabilities: { advisoryId: string; severity: string }[];
      };
      expect(show.vulnerabilities.map((v) => `${v.advisoryId}:${v.severity}`)).toEqual([
        'GHSA-jf85-cpcp-j695:critical',
        'GHSA-35jh-r3h4-6jhm:high',
      ]);
      const log = await s.platform.audit.readAfter(0, 100_000);
      expect(log.find((e) => e.type === 'vulnerability.exposure_alert')?.data).toMatchObject({
        advisoryId: 'GHSA-jf85-cpcp-j695',
        devices: 1,
      });
      // And an alert for the operator, one per advisory.
      const vulnerable = await s.platform.monitor.alerts.list({ detector: 'vulnerable_firmware' });
      expect(vulnerable.map((a) => [a.subject, a.severity])).toContainEqual([
        'advisory:GHSA-jf85-cpcp-j695',
        'critical',
      ]);
      expect(log.some((e) => e.type === 'firmware.update_succeeded' && e.subject === 'device:pump-17')).toBe(
        true,
      );
    } finally {
      await agent.stop();
    }
  });
});
