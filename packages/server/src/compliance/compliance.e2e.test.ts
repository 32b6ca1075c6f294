import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firmwareTopics } from '@bulwark/protocol';
import { connectMqtt } from '../test-support/clients.ts';
import { bulwarkCli } from '../test-support/cli.ts';
import {
  cycloneDx,
  initTuf,
  makeImage,
  publishTargets,
  releaseInput,
  type OfflineKeys,
} from '../test-support/firmware.ts';
import { startSyslogReceiver, type SyslogReceiver } from '../test-support/notify-receivers.ts';
import {
  enrollInProcess,
  signedInSession,
  startTestServer,
  type TestServer,
} from '../test-support/server.ts';
import { sleep, waitFor } from '../test-support/wait.ts';
import type { RunResult } from './model.ts';

/**
 * Issue 16's acceptance, as a new user would try it: the real server with the shipped defaults (default
 * security profile, firewall limits), one device enrolled with its certificate and connected over mutual TLS,
 * the real `bulwark` CLI. (1) The ETSI EN 303 645 report of a fresh install; (2) a table of misconfigurations,
 * each flipping exactly its checks, and back when undone. The OSCAL and HTML forms are checked in
 * report.*.test.ts (schema validation, headless Chromium); here they are produced by the CLI and parsed.
 */

/** Checks that pass only once the operator supplies what the platform cannot. */
const OPERATOR_CHECKS = [
  'audit.exported',
  'firmware.advisories-imported',
  'org.disclosure-contact',
  'org.support-period',
  'risk.tara-recorded',
];

/**
 * The configuration file the server and every CLI process read (as on a real install): the controller named
 * for the record of processing (GDPR Art. 30), as docs/privacy.md asks at install.
 */
const CONFIG = `privacy: { controller: { name: Acme Fleet GmbH, contact: privacy@acme.example } }\n`;

const FULL_BASELINE = `name: acme-fleet
description: the baseline of the acceptance test (every operator input given)
disclosure: { contact: 'mailto:security@acme.example', policyUrl: 'https://acme.example/security' }
product: { supportPeriodEnd: 2031-12-31, supportPeriodUrl: 'https://acme.example/support' }
`;

const ROOM_SCHEMA = `name: room-sensor
topic: devices/+/telemetry
schema:
  type: object
  additionalProperties: false
  required: [temp]
  properties:
    user_id: { type: string }
    temp: { type: number }
fields:
  user_id: { category: user.unique_id, transform: pseudonymise, lawfulBasis: contract, retention: 30d }
  temp: { category: system.operations, lawfulBasis: legitimate_interests }
`;

interface Row {
  name: string;
  /** A setting of the configuration: a CLI run with this environment sees it (and one without does not). */
  env?: () => Record<string, string>;
  /** Makes the misconfiguration (through the CLI, as an operator would) … */
  apply?(): Promise<void>;
  /** … and undoes it. */
  undo?(): Promise<void>;
  expect: string[];
}

describe('security baseline and continuous compliance (issue 16 acceptance)', { timeout: 600_000 }, () => {
  let s: TestServer;
  let ca: string;
  let sensor: MqttClient;
  let sensorKey: string;
  let syslog: SyslogReceiver;
  let configPath: string;
  let tufKeys: OfflineKeys | undefined;
  const workFile = (name: string, text: string) => {
    const file = path.join(s.dataDir, name);
    writeFileSync(file, text);
    return file;
  };
  const cli = async (args: string[], env: Record<string, string> = {}) => {
    const r = await bulwarkCli(s.dataDir, args, { BULWARK_CONFIG: configPath, ...env });
    if (r.code !== 0) throw new Error(`bulwark ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const cliRun = async (env: Record<string, string> = {}) =>
    JSON.parse(await cli(['compliance', 'run', '--json'], env)) as RunResult;
  const failing = (run: RunResult) =>
    run.checks
      .filter((c) => c.status !== 'pass')
      .map((c) => c.id)
      .sort();
  /**
   * The failing checks once the server has followed the change (the CLI's changes reach the server's caches
   * through the audit-log tail within events.tailInterval): runs until the set is stable, at most 10 s.
   */
  async function runUntil(expected: string[]): Promise<RunResult> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const run = await s.platform.compliance.run({ trigger: 'manual', actor: 'test' });
      if (JSON.stringify(failing(run)) === JSON.stringify([...expected].sort()) || Date.now() > deadline)
        return run;
      await sleep(150);
    }
  }
  /** `standard clause` of every clause that fails (or errs) in a run. */
  const failingClauses = (run: RunResult) =>
    run.standards
      .flatMap((st) =>
        st.clauses.filter((c) => c.status === 'fail' || c.status === 'error').map((c) => `${st.id} ${c.id}`),
      )
      .sort();
  /** `standard clause` of every clause the given checks evidence (from the frameworks, as the run reports). */
  const clausesOf = (run: RunResult, checks: string[]) =>
    [
      ...new Set(
        run.checks
          .filter((c) => checks.includes(c.id))
          .flatMap((c) =>
            Object.entries(c.clauses).flatMap(([st, list]) => (list ?? []).map((id) => `${st} ${id}`)),
          ),
      ),
    ].sort();
  const applyBaseline = async (extra: string) =>
    cli(['baseline', 'apply', workFile('baseline.yaml', `${FULL_BASELINE}${extra}`)]);

  const SERVER = {
    // A fresh install as shipped: the default security profile, the firewall's default limits.
    'monitor.defaultProfile': true,
    'firewall.connectRate': 20,
    'firewall.connectBurst': 50,
    'firewall.failureThreshold': 10,
    'firewall.flapThreshold': 20,
    'compliance.scheduled': false,
    // The configuration file's settings (CONFIG).
    'privacy.controller.name': 'Acme Fleet GmbH',
    'privacy.controller.contact': 'privacy@acme.example',
  };
  let sensorCreds: Awaited<ReturnType<typeof enrollInProcess>>;

  /** Restarts the server on the same data directory with these settings; the sensor connects again. */
  async function restart(settings: Record<string, unknown>) {
    sensor.end(true);
    await s.stop({ keepData: true });
    s = await startTestServer({ ...SERVER, ...settings }, { dataDir: s.dataDir });
    sensor = await connectMqtt(s.mqttUrl, ca, sensorCreds);
  }

  beforeAll(async () => {
    s = await startTestServer(SERVER);
    configPath = workFile('bulwark.yaml', CONFIG);
    ca = readFileSync(s.caFile, 'utf8');
    sensorCreds = await enrollInProcess(s, 'sensor-1', 'sensors');
    sensorKey = sensorCreds.key;
    sensor = await connectMqtt(s.mqttUrl, ca, sensorCreds);
  }, 120_000);

  afterAll(async () => {
    sensor?.end(true);
    await syslog?.close();
    await s?.stop();
  });

  it('1: a fresh install with one device: every ETSI EN 303 645 provision reported; the automatable ones pass', async () => {
    const run = await cliRun();
    // Only what needs the operator's input fails on a fresh install.
    expect(failing(run)).toEqual(OPERATOR_CHECKS);

    const out = path.join(s.dataDir, 'etsi.json');
    await cli(['compliance', 'report', '--standard', 'etsi-en-303-645', '--format', 'json', '--out', out]);
    const report = JSON.parse(readFileSync(out, 'utf8')) as {
      standard: { id: string };
      score: number | null;
      clauses: { id: string; status: string; mode: string; checks: { id: string; status: string }[] }[];
    };
    expect(report.standard.id).toBe('etsi-en-303-645');
    expect(report.clauses).toHaveLength(78); // every provision of V3.1.3
    for (const clause of report.clauses)
      expect(['pass', 'fail', 'manual', 'not_applicable']).toContain(clause.status);
    const operatorOnly = new Set(OPERATOR_CHECKS);
    for (const clause of report.clauses.filter((c) => c.mode === 'automated')) {
      if (clause.checks.some((c) => operatorOnly.has(c.id))) continue;
      expect({ clause: clause.id, status: clause.status }).toEqual({ clause: clause.id, status: 'pass' });
    }
    // Failing provisions carry their evidence; not-applicable ones their justification.
    const evidenced = run.checks.filter((c) => c.status === 'fail');
    for (const check of evidenced) expect(check.evidence.length).toBeGreaterThan(0);

    // The OSCAL and HTML forms come from the same run.
    const oscal = path.join(s.dataDir, 'etsi.oscal.json');
    await cli(['compliance', 'report', '--standard', 'etsi-en-303-645', '--format', 'oscal', '--out', oscal]);
    const ar = JSON.parse(readFileSync(oscal, 'utf8')) as { 'assessment-results': { results: unknown[] } };
    expect(ar['assessment-results'].results).toHaveLength(1);
    const html = path.join(s.dataDir, 'etsi.html');
    await cli(['compliance', 'report', '--standard', 'etsi-en-303-645', '--format', 'html', '--out', html]);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/i);
    expect(page).not.toMatch(/<script|src="http|href="http[^"]*\.css/i);
  });

  it('gives the operator inputs; then nothing fails', async () => {
    await applyBaseline('');
    syslog = await startSyslogReceiver();
    await cli([
      'notify',
      'add',
      'siem',
      '--syslog',
      `127.0.0.1:${syslog.port}`,
      '--transport',
      'tcp',
      '--types',
      '*',
    ]);
    await cli(['firmware', 'advisories', 'import', path.join(import.meta.dirname, '../risk/fixtures/osv')]);
    // A data schema and an account setup the rows below change.
    await cli(['data-schema', 'put', workFile('room.yaml', ROOM_SCHEMA)]);
    await cli(['app', 'add', 'ops', '--purpose', 'essential.service.operations']);
    // The product's TARA, saved with the fleet (its treatments cite no check: the rows below flip checks, and
    // a failing check a treatment cites would raise its risk and flip risk.treatment-current as well).
    const tara = readFileSync(
      path.join(import.meta.dirname, '../../../../docs/examples/pump-controller.tara.yaml'),
      'utf8',
    );
    await cli([
      'risk',
      'tara',
      workFile('pc-200.tara.yaml', tara.replace(/^\s+checks: .*\n/gm, '')),
      '--save',
      'pc-200',
    ]);
    await signedInSession(s, 'alice', 'admin');
    await signedInSession(s, 'adam', 'admin');
    await signedInSession(s, 'olga', 'operator');
    // Firmware: a signed repository, the release the device runs (its SBOM names modbus-parse 2.4.0).
    tufKeys = await initTuf(s.platform);
    await shipAndRun('1.0.0', 'pkg:npm/modbus-parse@2.4.0');
    const run = await runUntil([]);
    expect(failing(run)).toEqual([]);
    // No clause fails either (manual clauses wait for their attestations).
    expect(failingClauses(run)).toEqual([]);
  });

  /** Creates a release with an SBOM of one package and has the device report that it runs it. */
  async function shipAndRun(version: string, purl: string) {
    const image = makeImage(2048);
    const release = await s.platform.firmware.releases.create(
      releaseInput(image, { version, sbom: cycloneDx([purl]) }),
      'test',
    );
    const { createReadStream } = await import('node:fs');
    await s.platform.firmware.releases.upload(release.id, createReadStream(image.file), 'test');
    // Signed into the TUF targets (what a rollout needs), as `bulwark firmware tuf sign-targets` does.
    if (tufKeys) await publishTargets(s.platform, tufKeys);
    await sensor.publishAsync(
      firmwareTopics.state('sensor-1'),
      JSON.stringify({
        hardwareId: 'pump-v2',
        target: release.targetPath,
        version,
        securityVersion: 1,
        ts: Date.now(),
      }),
      { qos: 1 },
    );
    for (let i = 0; i < 100; i++) {
      const state = await s.platform.firmware.fleet.deviceState('sensor-1');
      if (state?.version === version) return release;
      await sleep(50);
    }
    throw new Error(`sensor-1 does not report ${version}`);
  }

  /** Zones plant (the sensors) and office, as an operator writes them (docs/policies.md). */
  async function putZones() {
    await cli([
      'zone',
      'put',
      '--file',
      workFile('plant.yaml', 'name: plant\nsecurityLevel: 1\nmembers: { groups: [sensors] }\n'),
    ]);
    await cli([
      'zone',
      'put',
      '--file',
      workFile('office.yaml', 'name: office\nsecurityLevel: 1\nmembers: { groups: [office] }\n'),
    ]);
  }
  async function putConduit(topics: string[]) {
    const doc = `name: up\nfrom: plant\nto: office\ntopics: ${JSON.stringify(topics)}\ndirection: one-way\nrateCap: 100\n`;
    await cli(['conduit', 'put', '--file', workFile('up.yaml', doc)]);
  }
  async function deleteZones() {
    await cli(['conduit', 'delete', 'up']).catch(() => undefined);
    await cli(['zone', 'delete', 'plant']);
    await cli(['zone', 'delete', 'office']);
  }

  /** The configuration file with a setting changed, for one CLI run. */
  const configFile = (name: string, text: string) => ({ BULWARK_CONFIG: workFile(name, `${CONFIG}${text}`) });
  const ids: Record<string, string> = {};

  const rows: Row[] = [
    {
      // The server records the listeners it bound (platform.started); the checks read that record.
      name: 'the server restarted with the development listener (plaintext, no authentication)',
      apply: () => restart({ 'mqtt.devListener.port': 0 }),
      undo: () => restart({}),
      expect: ['net.plaintext-listener', 'net.unauthenticated-listener'],
    },
    {
      name: 'lockout loosened to 50 failed sign-ins',
      env: () => configFile('lockout.yaml', 'auth: { lockoutThreshold: 50 }\n'),
      expect: ['accounts.lockout'],
    },
    {
      name: 'sessions idle for 8 hours',
      env: () => configFile('sessions.yaml', 'auth: { sessionIdle: 8h }\n'),
      expect: ['accounts.session-limits'],
    },
    {
      name: 'device certificates issued for 800 days',
      env: () => ({ BULWARK_DEVICE_CERT_VALIDITY: '800d' }),
      expect: ['pki.device-certificate-lifetime'],
    },
    {
      name: 'the connection rate limit raised to 500/s',
      env: () => configFile('firewall.yaml', 'firewall: { connectRate: 500 }\n'),
      expect: ['firewall.connection-limits'],
    },
    {
      name: 'an operator without a second factor promoted to admin',
      apply: async () => void (await s.platform.users.update('olga', { role: 'admin' }, 'user:alice')),
      undo: async () => void (await s.platform.users.update('olga', { role: 'operator' }, 'user:alice')),
      expect: ['accounts.privileged-second-factor'],
    },
    {
      name: 'an app granted # (everything)',
      apply: async () =>
        void (await cli([
          'app',
          'add',
          'wide',
          '--purpose',
          'essential.service.operations',
          '--grant',
          'subscribe #',
        ])),
      undo: async () => void (await cli(['app', 'revoke', 'wide'])),
      expect: ['access.app-broad-grants'],
    },
    {
      name: 'a device certificate within its expiry window (the baseline warns 100 days ahead)',
      apply: async () => void (await applyBaseline('certificates: { deviceExpiryWarning: 100d }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['pki.device-certificate-expiry'],
    },
    {
      name: 'the firmware the device runs is marked critical by an imported OSV advisory',
      apply: async () =>
        void (await cli([
          'firmware',
          'advisories',
          'import',
          path.join(import.meta.dirname, '../risk/fixtures/osv-valid/BWK-2026-0001.json'),
        ])),
      // The device updates to the fixed release.
      undo: async () => void (await shipAndRun('1.0.1', 'pkg:npm/modbus-parse@2.4.1')),
      expect: ['firmware.known-vulnerabilities'],
    },
    {
      name: 'the default detection profile detached from the fleet',
      apply: async () => void (await cli(['security-profile', 'detach', 'default', '--all'])),
      undo: async () => void (await cli(['security-profile', 'attach', 'default', '--all'])),
      // Tamper reports go unanswered as well (no profile attached to all devices).
      expect: ['monitor.automatic-response', 'monitor.group-profiles', 'physical.tamper-response'],
    },
    {
      name: 'a policy lets devices subscribe to every device telemetry (devices/+/telemetry)',
      apply: async () => {
        const doc = `version: '2026-11'\nstatements:\n  - { sid: fleet-read, effect: allow, actions: [mqtt:subscribe, mqtt:receive], resources: ['devices/+/telemetry'] }\n`;
        await cli(['policy', 'put', 'fleet-read', '--file', workFile('fleet-read.yaml', doc)]);
        await cli(['policy', 'attach', 'fleet-read', '--to', 'group:sensors']);
      },
      undo: async () => void (await cli(['policy', 'delete', 'fleet-read'])),
      expect: ['access.wildcard-device-grants'],
    },
    {
      name: 'a policy attached to all devices allows #',
      apply: async () => {
        const doc = `version: '2026-11'\nstatements:\n  - { sid: all, effect: allow, actions: [mqtt:publish, mqtt:subscribe, mqtt:receive], resources: ['#'] }\n`;
        await cli(['policy', 'put', 'allow-all', '--file', workFile('allow-all.yaml', doc)]);
        await cli(['policy', 'attach', 'allow-all', '--to', 'all']);
      },
      undo: async () => void (await cli(['policy', 'delete', 'allow-all'])),
      expect: ['access.deny-by-default', 'access.wildcard-device-grants'],
    },
    {
      name: 'a rollout to the fleet in one phase of 100 %',
      apply: async () => {
        const out = await cli([
          'firmware',
          'rollout',
          'create',
          'pump-fw@1.0.1',
          '--device',
          'sensor-1',
          '--phases',
          '100',
          '--json',
        ]);
        ids.rollout = (JSON.parse(out) as { id: string }).id;
      },
      undo: async () => void (await cli(['firmware', 'rollout', 'abort', ids.rollout ?? ''])),
      expect: ['firmware.staged-rollouts'],
    },
    {
      name: 'two zones without a conduit between them (segmentation below its target level)',
      apply: () => putZones(),
      undo: () => deleteZones(),
      // SR 5.1/5.2 fail, so the zones' measured level (IEC 62443-3-3) falls below their target SL 1.
      expect: ['zones.security-level', 'zones.without-conduits'],
    },
    {
      name: 'a conduit that lets everything through (#)',
      apply: async () => {
        await putZones();
        await putConduit(['#']);
      },
      undo: () => deleteZones(),
      expect: ['zones.any-to-any-conduits', 'zones.security-level'],
    },
    {
      name: 'the support period removed from the baseline',
      apply: async () =>
        void (await cli([
          'baseline',
          'apply',
          workFile('b.yaml', FULL_BASELINE.replace(/^product:.*\n/m, '')),
        ])),
      undo: async () => void (await applyBaseline('')),
      expect: ['org.support-period'],
    },
    {
      name: 'the vulnerability-disclosure contact removed from the baseline',
      apply: async () =>
        void (await cli([
          'baseline',
          'apply',
          workFile('b.yaml', FULL_BASELINE.replace(/^disclosure:.*\n/m, '')),
        ])),
      undo: async () => void (await applyBaseline('')),
      expect: ['org.disclosure-contact'],
    },
    {
      name: 'the audit log no longer exported (SIEM channel removed)',
      apply: async () => void (await cli(['notify', 'remove', 'siem'])),
      undo: async () =>
        void (await cli([
          'notify',
          'add',
          'siem',
          '--syslog',
          `127.0.0.1:${syslog.port}`,
          '--transport',
          'tcp',
          '--types',
          '*',
        ])),
      expect: ['audit.exported'],
    },
    {
      name: 'device messages stored that no data schema classifies',
      apply: async () =>
        void (await cli(['telemetry', 'enable', 'devices/+/diagnostics', '--retention', '30d'])),
      undo: async () => void (await cli(['telemetry', 'disable', 'devices/+/diagnostics'])),
      expect: ['privacy.unclassified-telemetry'],
    },
    {
      name: 'classified telemetry kept for 400 days',
      apply: async () =>
        void (await cli(['telemetry', 'enable', 'devices/+/telemetry', '--retention', '400d'])),
      undo: async () => void (await cli(['telemetry', 'disable', 'devices/+/telemetry'])),
      expect: ['privacy.telemetry-retention'],
    },
    {
      name: 'personal data kept longer than the baseline allows (7 days)',
      apply: async () => void (await applyBaseline('retention: { personalDataMax: 7d }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['privacy.retention-limits'],
    },
    {
      name: 'an app without a declared purpose',
      apply: async () => void (await cli(['app', 'add', 'legacy'])),
      undo: async () => void (await cli(['app', 'revoke', 'legacy'])),
      expect: ['apps.purpose-declared'],
    },
    {
      name: 'an app token that never expires',
      apply: async () => {
        ids.appToken = (JSON.parse(await cli(['app', 'token', 'ops', '--json'])) as { id: string }).id;
      },
      undo: async () => void (await cli(['app', 'token-revoke', 'ops', ids.appToken ?? ''])),
      expect: ['apps.token-expiry'],
    },
    {
      name: "a second device enrolled with the first device's private key (a cloned key)",
      apply: async () => {
        const key = workFile('sensor-1.key', sensorKey);
        const csr = execFileSync('openssl', [
          'req',
          '-new',
          '-key',
          key,
          '-subj',
          '/CN=clone-1',
          '-outform',
          'DER',
        ]);
        await s.platform.devices.add({ id: 'clone-1', group: 'sensors' }, 'test');
        const { token } = await s.platform.devices.issueToken('clone-1', 'test');
        await (await s.platform.pki()).enroll({ deviceId: 'clone-1', token, csr: csr.toString('base64') });
      },
      undo: async () => void (await cli(['device', 'revoke', 'clone-1'])),
      expect: ['pki.shared-keys'],
    },
    {
      name: 'a device left in quarantine',
      apply: async () => void (await cli(['device', 'quarantine', 'sensor-1', '--reason', 'investigating'])),
      undo: async () => void (await cli(['device', 'release', 'sensor-1'])),
      expect: ['devices.quarantined'],
    },
    {
      name: 'the baseline asks every account for a second factor (an operator has none)',
      apply: async () => void (await applyBaseline('accounts: { secondFactor: all }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['accounts.second-factor-policy'],
    },
    {
      name: 'the baseline allows one admin (there are two)',
      apply: async () => void (await applyBaseline('accounts: { maxAdmins: 1 }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['accounts.admin-count'],
    },
    {
      name: 'the baseline accepts only RSA-4096 keys',
      apply: async () => void (await applyBaseline('certificates: { acceptedKeyTypes: [rsa-4096] }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['pki.accepted-key-types'],
    },
    {
      name: 'signed update metadata within the 400-day warning window',
      apply: async () => void (await applyBaseline('firmware: { metadataExpiryWarning: 400d }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['firmware.metadata-expiry'],
    },
    {
      name: 'every device must be in a zone (none is)',
      apply: async () => void (await applyBaseline('zones: { requireZoneForEveryDevice: true }\n')),
      undo: async () => void (await applyBaseline('')),
      expect: ['zones.device-coverage'],
    },
  ];

  it.each(rows.map((r, i) => [i + 1, r.name, r] as const))(
    '2.%i: %s — flips exactly its checks, and back when undone',
    async (_n, _name, row) => {
      const env = row.env?.();
      const openAlerts = async () =>
        (await s.platform.monitor.alerts.list({ status: ['open'] }))
          .filter((a) => a.detector === 'compliance_regression')
          .map((a) => a.subject);
      let after: RunResult;
      try {
        await row.apply?.();
        after = env ? await cliRun(env) : await runUntil(row.expect);
        // Each regression raised an alert through the monitor (compliance_regression) …
        for (const id of row.expect)
          await waitFor(`the alert of ${id}`, async () => (await openAlerts()).includes(`check:${id}`));
      } finally {
        // Undone even when a step failed, so that one row's failure does not spill into the next.
        await row.undo?.();
      }
      expect(failing(after)).toEqual([...row.expect].sort());
      // Exactly the clauses those checks evidence fail, in every standard; each check has evidence.
      const clauses = clausesOf(after, row.expect);
      expect(clauses.length).toBeGreaterThan(0);
      expect(failingClauses(after)).toEqual(clauses);
      for (const id of row.expect)
        expect(after.checks.find((c) => c.id === id)?.evidence.length).toBeGreaterThan(0);
      const back = env ? await cliRun() : await runUntil([]);
      expect(failing(back)).toEqual([]);
      expect(failingClauses(back)).toEqual([]);
      // … resolved once the check passes again.
      for (const id of row.expect)
        await waitFor(
          `the alert of ${id} resolved`,
          async () => !(await openAlerts()).includes(`check:${id}`),
        );
    },
  );
});
