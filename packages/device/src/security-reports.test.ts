import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  jwsAlgorithmFor,
  securityReportSchema,
  securityTopics,
  signedReportSchema,
  type SecurityReport,
} from '@bulwark/protocol';
import { startAgent, type Agent } from './agent.ts';
import { main } from './cli.ts';
import { openIdentityStore } from './identity-store.ts';
import { generateDeviceKey, keyTypes } from './keys.ts';
import {
  locationOf,
  openReportSequence,
  parseOnOff,
  REPORT_SEQUENCE_FILE,
  signerOf,
  signSecurityReport,
} from './security-reports.ts';
import { createTestCa, startFakeBroker, type FakeBroker, type TestCa } from './test-support/index.ts';

let ca: TestCa;
let root: string;

beforeAll(async () => {
  ca = await createTestCa();
  root = await mkdtemp(join(tmpdir(), 'bulwark-reports-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** Verifies a JWS as the server does: with the public key of the certificate named by `kid`. */
async function verified(jws: string, certPem: string): Promise<SecurityReport> {
  const { payload, protectedHeader } = await compactVerify(jws, new X509Certificate(certPem).publicKey, {
    algorithms: ['ES256', 'ES384', 'RS256'],
  });
  expect(protectedHeader.kid).toBe(
    new X509Certificate(certPem).serialNumber.toLowerCase().replace(/^0+/, ''),
  );
  return securityReportSchema.parse(JSON.parse(new TextDecoder().decode(payload)));
}

describe.each(keyTypes)('signSecurityReport with a %s device key', (keyType) => {
  it("signs a JWS that verifies with the device certificate's public key, alg by key type", async () => {
    const key = await generateDeviceKey(keyType);
    const cert = await ca.issue({ subject: 'CN=pump-17', publicKey: key.keyPair.publicKey });
    const certPem = cert.toString('pem');
    const report: SecurityReport = {
      kind: 'tamper',
      deviceId: 'pump-17',
      ts: 1_700_000_000_000,
      seq: 7,
      reason: 'enclosure-opened',
      detail: 'lid switch',
    };
    const signed = await signSecurityReport(report, signerOf({ keyPem: key.privateKeyPem, certPem }));
    expect(signedReportSchema.parse(signed)).toEqual(signed);
    expect(decodeProtectedHeader(signed.jws).alg).toBe(jwsAlgorithmFor[keyType]);
    expect(await verified(signed.jws, certPem)).toEqual(report);
  });
});

describe('signSecurityReport', () => {
  it('refuses a report that the schema refuses, before signing anything', async () => {
    const device = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    const bad = {
      kind: 'tamper',
      deviceId: 'pump-17',
      ts: 1,
      seq: 1,
      reason: 'aliens',
    } as unknown as SecurityReport;
    await expect(signSecurityReport(bad, signerOf(device))).rejects.toThrow();
  });

  it('a changed payload no longer verifies', async () => {
    const device = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    const { jws } = await signSecurityReport(
      { kind: 'health', deviceId: 'pump-17', ts: 1, seq: 1, secureBoot: true },
      signerOf(device),
    );
    const [header, , signature] = jws.split('.');
    const forged = Buffer.from(
      JSON.stringify({ kind: 'health', deviceId: 'pump-17', ts: 1, seq: 1, secureBoot: false }),
    ).toString('base64url');
    await expect(verified(`${header}.${forged}.${signature}`, device.certPem)).rejects.toThrow();
  });
});

describe('openReportSequence', () => {
  it('increases across calls and across restarts, and never repeats after the file is lost', async () => {
    const dir = await mkdtemp(join(root, 'seq-'));
    let clock = 1_000;
    const first = openReportSequence(dir, () => clock);
    const a = await first.next();
    const b = await first.next();
    expect(b).toBeGreaterThan(a);
    // concurrent callers get distinct numbers
    const batch = await Promise.all([first.next(), first.next(), first.next()]);
    expect(new Set(batch).size).toBe(3);
    expect(Math.min(...batch)).toBeGreaterThan(b);

    // a new process (the CLI beside the agent) continues from the file, even with the clock behind
    clock = 0;
    const reopened = openReportSequence(dir, () => clock);
    const c = await reopened.next();
    expect(c).toBe(Math.max(...batch) + 1);
    expect(JSON.parse(await readFile(join(dir, REPORT_SEQUENCE_FILE), 'utf8'))).toEqual({ seq: c });

    // a lost file (reflashed data partition): the clock keeps the numbers above anything used before
    await rm(join(dir, REPORT_SEQUENCE_FILE));
    clock = 5_000;
    expect(await openReportSequence(dir, () => clock).next()).toBe(5_000);
  });
});

describe('CLI helpers', () => {
  it('reads on/off and a location whose two halves go together', () => {
    expect(parseOnOff('on')).toBe(true);
    expect(parseOnOff('OFF')).toBe(false);
    expect(() => parseOnOff('maybe')).toThrow(/not on or off/);
    expect(locationOf({})).toBeUndefined();
    expect(locationOf({ lat: 48.85, lon: 2.35 })).toEqual({ lat: 48.85, lon: 2.35 });
    expect(() => locationOf({ lat: 48.85 })).toThrow(/--lat and --lon go together/);
    expect(() => locationOf({ lat: 91, lon: 0 })).toThrow(/latitude/);
  });
});

describe('reports over MQTT', () => {
  let broker: FakeBroker;
  let dir: string;
  let certPem: string;
  let agent: Agent | undefined;

  beforeEach(async () => {
    broker = await startFakeBroker(ca);
    dir = join(await mkdtemp(join(root, 'mqtt-')), 'identity');
    const issued = await ca.issueKeyAndCert({ subject: 'CN=pump-17' });
    certPem = issued.certPem;
    await openIdentityStore(dir).save({
      deviceId: 'pump-17',
      serverUrl: 'https://127.0.0.1:1',
      mqttUrl: broker.url,
      keyPem: issued.keyPem,
      certPem,
      caPem: ca.certPem,
    });
  });
  afterEach(async () => {
    await agent?.stop();
    agent = undefined;
    await broker.close();
  });

  async function cli(argv: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await main(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) });
    return { code, stdout, stderr };
  }

  it('agent.reportTamper publishes a signed report with QoS 1 on the tamper topic; seq increases', async () => {
    agent = await startAgent({ dir, heartbeatIntervalMs: 60_000 });
    await agent.waitFor('connected');
    const published = broker.next('publish', (p) => p.topic === securityTopics.tamper('pump-17'));
    const report = await agent.reportTamper('enclosure-opened', 'lid switch');
    const publish = await published;
    expect(publish.qos).toBe(1);
    const { jws } = signedReportSchema.parse(JSON.parse(publish.payload));
    expect(await verified(jws, certPem)).toEqual(report);
    expect(report).toMatchObject({ kind: 'tamper', deviceId: 'pump-17', reason: 'enclosure-opened' });

    const health = await agent.reportHealth({ secureBoot: false, debugPortEnabled: true });
    expect(health.seq).toBeGreaterThan(report.seq);
    expect(broker.publishes.some((p) => p.topic === securityTopics.health('pump-17'))).toBe(true);
  });

  it('agent.reportTamper rejects while the agent is not connected', async () => {
    broker.refuseWith = 5;
    agent = await startAgent({ dir, heartbeatIntervalMs: 60_000 });
    await expect(agent.reportTamper('other')).rejects.toThrow(/not connected/);
  });

  it('`report tamper` and `report health` connect as the device, publish one signed report and exit', async () => {
    const tamper = await cli([
      'report',
      'tamper',
      '--dir',
      dir,
      '--reason',
      'enclosure-opened',
      '--detail',
      'lid',
    ]);
    expect(tamper.stderr).toBe('');
    expect(tamper.code).toBe(0);
    expect(tamper.stdout).toMatch(/^sent tamper report \(enclosure-opened\) for pump-17, seq \d+\n$/);
    const health = await cli([
      ...['report', 'health', '--dir', dir, '--secure-boot', 'off', '--debug-port', 'on'],
      ...['--enclosure', 'open', '--lat', '48.85', '--lon', '2.35', '--json'],
    ]);
    expect(health.code, health.stderr).toBe(0);
    const sent = securityReportSchema.parse(JSON.parse(health.stdout));
    expect(sent).toMatchObject({
      kind: 'health',
      secureBoot: false,
      debugPortEnabled: true,
      enclosureClosed: false,
      location: { lat: 48.85, lon: 2.35 },
    });
    const reports = broker.publishes.filter((p) => p.topic.startsWith('devices/pump-17/security/'));
    expect(reports.map((p) => [p.topic, p.qos])).toEqual([
      [securityTopics.tamper('pump-17'), 1],
      [securityTopics.health('pump-17'), 1],
    ]);
    const payloads = await Promise.all(
      reports.map((p) => verified(signedReportSchema.parse(JSON.parse(p.payload)).jws, certPem)),
    );
    expect(payloads[1]).toEqual(sent);
    expect((payloads[1]?.seq ?? 0) > (payloads[0]?.seq ?? 0)).toBe(true);
  });

  it('refuses bad arguments with a one-line reason naming what is allowed', async () => {
    const reason = await cli(['report', 'tamper', '--dir', dir, '--reason', 'aliens']);
    expect(reason.code).toBe(1);
    expect(reason.stderr).toMatch(
      /^error: option '--reason <reason>' argument 'aliens' is invalid\. Allowed choices are enclosure-opened, debug-port-enabled, secure-boot-disabled, unexpected-reboot, location-jump, other\.\n$/,
    );
    const missing = await cli(['report', 'tamper', '--dir', dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/--reason <reason>' not specified/);
    const half = await cli(['report', 'health', '--dir', dir, '--lat', '1']);
    expect(half).toMatchObject({ code: 1, stderr: 'error: --lat and --lon go together\n' });
    const onOff = await cli(['report', 'health', '--dir', dir, '--secure-boot', 'maybe']);
    expect(onOff.stderr).toMatch(
      /--secure-boot <on\|off>' argument 'maybe' is invalid\. "maybe" is not on or off/,
    );
    const handle = await cli(['attest', '--dir', dir, '--ak-handle', '0x1234']);
    expect(handle.stderr).toMatch(/"0x1234" is not a persistent handle \(0x81000000-0x81FFFFFF\)/);
    const algorithm = await cli(['attest', '--dir', dir, '--ak-algorithm', 'dsa']);
    expect(algorithm.stderr).toMatch(/Allowed choices are ecc, rsa/);
    expect(broker.publishes.filter((p) => p.topic.includes('/security/'))).toEqual([]);
  });

  it('has --help for attest and report', async () => {
    const attest = await cli(['attest', '--help']);
    expect(attest.code).toBe(0);
    expect(attest.stdout).toMatch(/--tcti <tcti>/);
    expect(attest.stdout).toMatch(/exit 1 when\s+contraindicated/);
    const report = await cli(['report', 'health', '--help']);
    expect(report.stdout).toMatch(/--secure-boot <on\|off>/);
  });
});
