import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enrollDevice, startAgent, type Agent } from '@bulwark/device';
import { api } from '@bulwark/protocol';
import { exec, workDir } from '../test-support/clients.ts';
import { cycloneDx, initTuf, shipRelease, type OfflineKeys } from '../test-support/firmware.ts';
import { apiToken, startTestServer, type TestServer } from '../test-support/server.ts';
import { waitFor } from '../test-support/wait.ts';

const FIXTURES = fileURLToPath(new URL('./fixtures/osv', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../../docs/examples/pump-controller.tara.yaml', import.meta.url));

interface Answer {
  status: number;
  headers: string;
  body: string;
}

/**
 * Issue 18, acceptance 3, as an operator meets it: a TARA saved with the fleet (CLI), a device running
 * bulwark-agent updated by rollouts, an OSV feed that marks the deployed release critical — the linked risk
 * rises and alerts — and a rollout of the fixed release that lowers it and resolves the alert. The register is
 * read through the API (curl) and the CLI in its own process.
 */
describe('the risk register follows the fleet', { timeout: 180_000 }, () => {
  let s: TestServer;
  let keys: OfflineKeys;
  let admin: string;
  let viewer: string;
  let agent: Agent | undefined;

  async function curl(method: string, url: string, token: string, json?: unknown): Promise<Answer> {
    const args = ['-sS', '-X', method, '--cacert', s.caFile, '-D', '-', `${s.httpsUrl}${url}`];
    args.push('-H', `Authorization: Bearer ${token}`);
    if (json !== undefined)
      args.push('-H', 'Content-Type: application/json', '--data-binary', JSON.stringify(json));
    const { stdout } = await exec('curl', args, { maxBuffer: 16 * 1024 * 1024 });
    const split = stdout.indexOf('\r\n\r\n');
    const headers = stdout.slice(0, split);
    return { status: Number(/^HTTP\/\S+ (\d+)/.exec(headers)?.[1]), headers, body: stdout.slice(split + 4) };
  }

  async function rollout(version: string) {
    const release = await s.platform.firmware.releases.get(`pump-fw@${version}`);
    const created = await s.platform.firmware.rollouts.create(
      {
        release: release.id,
        selector: { groups: ['pumps'] },
        settings: {
          phases: [{ percent: 100, soakMs: 0 }],
          failureThreshold: 0,
          maxRetries: 0,
          retryDelayMs: 0,
        },
      },
      'test',
    );
    await waitFor(
      `rollout of ${version}`,
      async () => (await s.platform.firmware.rollouts.get(created.id)).status === 'completed',
    );
    await waitFor(
      `pump-1 on ${version}`,
      async () => (await s.platform.firmware.fleet.deviceState('pump-1'))?.version === version,
    );
  }

  const ts3 = async () => {
    const risks = await s.platform.risk.register.list();
    return risks.find((r) => r.source.kind === 'tara' && r.source.threat === 'TS3');
  };

  beforeAll(async () => {
    s = await startTestServer({ 'firmware.rolloutInterval': 200 });
    admin = await apiToken(s, 'risk-admin');
    viewer = await apiToken(s, 'risk-viewer', 'viewer');
    keys = await initTuf(s.platform);
    await shipRelease(s.platform, keys, {
      version: '1.0.0',
      securityVersion: 1,
      sbom: cycloneDx(['pkg:npm/lodash@4.17.11']),
    });
    await shipRelease(s.platform, keys, {
      version: '1.1.0',
      securityVersion: 2,
      sbom: cycloneDx(['pkg:npm/lodash@4.17.21']),
    });
    await s.platform.devices.add({ id: 'pump-1', group: 'pumps' }, 'test');
    const { token } = await s.platform.devices.issueToken('pump-1', 'test');
    const dir = path.join(mkdtempSync(path.join(tmpdir(), 'bulwark-risk-agent-')), 'pump-1');
    await enrollDevice({
      serverUrl: s.httpsUrl,
      deviceId: 'pump-1',
      token,
      dir,
      ca: readFileSync(s.caFile, 'utf8'),
    });
    agent = await startAgent({
      dir,
      mqttUrl: s.mqttUrl,
      heartbeatIntervalMs: 60_000,
      firmware: { hardwareId: 'pump-v2', factory: { version: '0.9.0', securityVersion: 1 } },
    });
    await agent.waitFor('connected', { timeoutMs: 10_000 });
    await rollout('1.0.0');
  });
  afterAll(async () => {
    await agent?.stop();
    await s?.stop();
  });

  it('raises the linked risk when an OSV advisory marks the deployed release critical, and lowers it after the fix', async () => {
    // The sample TARA, its firmware asset linked to the inventory; the OTA path rated by physical access (very low).
    const doc = parseYaml(readFileSync(SAMPLE, 'utf8')) as {
      assets: { id: string; ref?: string }[];
      threatScenarios: { id: string; attackPaths: unknown[] }[];
    };
    for (const a of doc.assets) if (a.id === 'firmware') a.ref = 'firmware:pump-fw';
    for (const t of doc.threatScenarios)
      if (t.id === 'TS3')
        t.attackPaths = [{ description: 'Replay an old image over JTAG', attackVector: 'physical' }];
    const file = path.join(workDir(), 'pc-200.tara.yaml');
    writeFileSync(file, stringify(doc));

    // A TARA naming an asset the inventory lacks is refused, naming the field; nothing stored.
    const wrong = path.join(workDir(), 'wrong.yaml');
    writeFileSync(
      wrong,
      stringify({ ...doc, assets: doc.assets.map((a) => (a.ref ? { ...a, ref: 'firmware:nope' } : a)) }),
    );
    const refused = await s.cli(['risk', 'tara', wrong, '--save', 'pc-200']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^bulwark: assets\.2\.ref: firmware:nope is not in the inventory/);
    expect(await s.platform.risk.register.taras()).toEqual([]);

    const saved = await s.cli(['risk', 'tara', file, '--save', 'pc-200']);
    expect(saved).toMatchObject({ code: 0 });
    expect(saved.stdout).toMatch(/saved as TARA pc-200 version 1: 3 risks created, 0 updated, 0 closed/);
    const before = await waitFor('TS3 in the register', ts3);
    expect(before).toMatchObject({ assets: ['firmware:pump-fw'], baseRisk: 2, risk: 2, raised: false });

    // The OSV feed arrives: pump-fw 1.0.0 carries lodash 4.17.11 (GHSA-jf85-cpcp-j695, critical 9.1).
    const imported = await s.cli(['firmware', 'advisories', 'import', FIXTURES]);
    expect(imported.stdout).toMatch(/2 imported/);
    const raised = await waitFor('TS3 raised', async () => {
      const r = await ts3();
      return r?.raised ? r : undefined;
    });
    expect(raised).toMatchObject({ feasibility: 'high', risk: 5 });
    expect(raised.factors).toEqual([
      expect.objectContaining({ kind: 'vulnerability', ref: 'GHSA-jf85-cpcp-j695', feasibility: 'high' }),
    ]);
    expect(raised.factors[0]?.detail).toMatch(/^critical 9\.1; on pump-fw@1\.0\.0: 1 device$/);
    const alert = await waitFor('risk_raised alert', async () =>
      (await s.platform.monitor.alerts.list({ detector: 'risk_raised' })).find(
        (a) => a.subject === `risk:${raised.id}`,
      ),
    );
    expect(alert).toMatchObject({ severity: 'critical', status: 'open' });
    expect(alert.title).toBe(
      `Risk ${raised.id} rose from 2 to 5: Installing a rolled-back, vulnerable firmware image over the air`,
    );

    // The API shows it (and only to roles holding risk:read).
    const listed = await curl('GET', '/api/v1/risk/register?minRisk=5', admin);
    expect(listed.status).toBe(200);
    const body = api.riskRegister.register.response[200].parse(JSON.parse(listed.body));
    expect(body.risks.map((r) => [r.id, r.risk, r.raised])).toEqual([[raised.id, 5, true]]);
    expect((await curl('GET', '/api/v1/risk/register', viewer)).status).toBe(403);

    // The fixed release rolls out: the risk falls back and the alert resolves.
    await rollout('1.1.0');
    const lowered = await waitFor('TS3 lowered', async () => {
      const r = await ts3();
      return r && !r.raised ? r : undefined;
    });
    expect(lowered).toMatchObject({ risk: 2, feasibility: 'very low', factors: [] });
    await waitFor(
      'alert resolved',
      async () => (await s.platform.monitor.alerts.get(alert.id)).status === 'resolved',
    );

    // The CLI, in its own process, reads the same register and the risk's history.
    const shown = await s.cli(['risk', 'show', raised.id, '--json']);
    const detail = api.riskRegister.getRisk.response[200].parse(JSON.parse(shown.stdout));
    expect(detail.history.map((h) => [h.change, h.from, h.to])).toEqual([
      ['lowered', 5, 2],
      ['raised', 2, 5],
      ['created', null, 2],
    ]);

    // The register report, as a self-contained page under its own CSP.
    const report = await curl('GET', '/api/v1/risk/register/report.html', admin);
    expect(report.status).toBe(200);
    expect(report.headers).toMatch(/content-security-policy: default-src 'none'; style-src 'sha256-/i);
    expect(report.body).toContain(`id="risk-${raised.id}"`);
    const log = await s.platform.audit.readAfter(0, 100_000);
    expect(log.filter((e) => e.subject === `risk:${raised.id}`).map((e) => e.type)).toEqual([
      'risk.created',
      'risk.changed',
      'risk.raised',
      'alert.raised',
      'risk.changed',
      'risk.lowered',
      'alert.resolved',
    ]);
  });
});
