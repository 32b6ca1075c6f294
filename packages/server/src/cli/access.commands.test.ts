import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compilePolicies,
  DEFAULT_POLICY,
  grantsToPolicy,
  parsePolicyDocument,
  type PolicyContext,
} from '../policy/index.ts';
import { explainDecision } from './access.commands.ts';
import { withPlatform } from './context.ts';
import { bulwarkInProcess } from '../test-support/cli-in-process.ts';

/** `bulwark …` in-process: what it printed and its exit code (stderr is checked where it matters). */
async function bulwark(...args: string[]): Promise<{ stdout: string; code: number }> {
  const { stdout, code } = await bulwarkInProcess(...args);
  return { stdout, code };
}

// The example of docs/policies.md.
const parsed = parsePolicyDocument({
  version: '2026-11',
  statements: [
    {
      sid: 'line-status',
      effect: 'allow',
      actions: ['mqtt:publish'],
      resources: ['lines/${device.attr.line}/status'],
      conditions: {
        sourceAddress: ['10.1.0.0/16'],
        deviceState: ['active'],
        timeWindow: { from: '06:00', to: '22:00' },
        certificate: { O: 'Acme' },
      },
    },
    {
      sid: 'no-firmware',
      effect: 'deny',
      actions: ['mqtt:publish'],
      resources: ['devices/${device.id}/firmware/#'],
    },
  ],
});
if (!parsed.ok) throw new Error(parsed.problems.join('; '));
const lines = { name: 'lines', version: 1, document: parsed.document };

function decide(ctx: Partial<PolicyContext>, topic: string, atMinute = 12 * 60) {
  const access = compilePolicies({
    ctx: {
      deviceId: 'pump-1',
      group: 'plant-a',
      zone: null,
      attributes: { line: 'l1' },
      cert: { cn: 'pump-1', O: 'Acme' },
      state: 'active',
      sourceAddress: '10.1.2.3',
      ...ctx,
    },
    policies: [DEFAULT_POLICY, lines],
    segmentation: { zones: [], conduits: [] },
    deviceZone: () => undefined,
    clock: () => atMinute,
  });
  const decision = access.publish(topic);
  return { ...decision, action: 'publish', topic, zone: access.zone, explain: access.describe() };
}

describe('policy test: why a publish is denied', () => {
  it('names the deciding statement of an explicit deny', () => {
    expect(explainDecision(decide({}, 'devices/pump-1/firmware/image'))).toEqual([
      'decided by statement no-firmware of policy lines',
    ]);
  });

  it('names the condition that kept a statement from applying', () => {
    expect(explainDecision(decide({ sourceAddress: '192.0.2.7' }, 'lines/l1/status'))).toEqual([
      'no statement allows publish on lines/l1/status (no match is a deny)',
      "statement line-status of policy lines does not apply to this device: source address not in the statement's set",
    ]);
    expect(explainDecision(decide({ cert: { cn: 'pump-1', O: 'Other' } }, 'lines/l1/status'))).toContain(
      'statement line-status of policy lines does not apply to this device: certificate O does not match',
    );
    expect(explainDecision(decide({ attributes: {} }, 'lines/l1/status'))).toContain(
      'statement line-status of policy lines does not apply to this device: ${device.attr.line} has no value for this device',
    );
  });

  it('names a statement whose time window is closed', () => {
    const d = decide({}, 'lines/l1/status', 23 * 60);
    expect(d.allow).toBe(false);
    expect(explainDecision(d)).toEqual([
      'no statement allows publish on lines/l1/status (no match is a deny)',
      'statement line-status of policy lines fits but did not apply now (outside its time window)',
    ]);
  });

  it('says nothing more for an allow by a statement than the statement', () => {
    const d = decide({}, 'lines/l1/status');
    expect(d.allow).toBe(true);
    expect(explainDecision(d)).toEqual(['decided by statement line-status of policy lines']);
  });
});

describe("policy test --app: an app's decision, with its zone and purpose", { timeout: 60_000 }, () => {
  let data: string;

  beforeAll(async () => {
    data = mkdtempSync(path.join(tmpdir(), 'bulwark-policy-test-app-'));
    await withPlatform(
      { data },
      async (p) => {
        await p.devices.add({ id: 'pump-1', group: 'pumps' }, 'test');
        await p.devices.add({ id: 'valve-1', group: 'valves' }, 'test');
        await p.apps.add(
          {
            name: 'dashboard',
            purpose: 'analytics.reporting',
            grants: ['subscribe devices/+/telemetry group:pumps'],
          },
          'test',
        );
        // The apps module refuses such a grant; written straight through the access door, the engine drops it.
        await p.apps.add({ name: 'nopurpose' }, 'test');
        const grants = grantsToPolicy(['subscribe devices/+/telemetry']);
        if (!grants.ok) throw new Error(grants.problems.join('; '));
        await p.access.putAppPolicy('app.nopurpose', grants.document, 'test');
        await p.access.attach('app.nopurpose', { kind: 'app', target: 'nopurpose' }, 'test');
      },
      { create: true },
    );
  });

  it('allows what a grant covers, naming the grant', async () => {
    const sub = ['--action', 'subscribe', '--topic', 'devices/+/telemetry', '--data', data];
    expect(await bulwark('policy', 'test', '--app', 'dashboard', ...sub)).toEqual({
      stdout:
        'ALLOW subscribe devices/+/telemetry: allowed by statement grant-1 of policy app.dashboard (zone: none)\n',
      code: 0,
    });
    const json = await bulwark(
      'policy',
      'test',
      '--app',
      'dashboard',
      '--instance',
      'w1',
      '--action',
      'receive',
      '--topic',
      'devices/valve-1/telemetry',
      '--data',
      data,
      '--json',
    );
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({
      allow: false,
      reason: 'no_matching_statement',
      app: 'dashboard',
      instance: 'w1',
      why: [
        'no statement allows receive on devices/valve-1/telemetry (no match is a deny)',
        'statement grant-1 of policy app.dashboard fits but is limited to devices of group:pumps',
      ],
    });
  });

  it('explains that an app without a purpose gets no device data', async () => {
    const r = await bulwark(
      'policy',
      'test',
      '--app',
      'nopurpose',
      '--action',
      'subscribe',
      '--topic',
      'devices/+/telemetry',
      '--data',
      data,
    );
    expect(r.code).toBe(3);
    expect(r.stdout).toContain(
      'statement grant-1 of policy app.nopurpose does not apply to this app: app has no declared purpose',
    );
  });

  it('refuses an unknown app, and neither or both of --device and --app', async () => {
    let written = '';
    for (const who of [['--app', 'ghost'], [], ['--app', 'dashboard', '--device', 'pump-1']]) {
      const r = await bulwarkInProcess('policy', 'test', ...who, '--action', 'connect', '--data', data);
      expect(r.code).not.toBe(0);
      written += r.stderr;
    }
    expect(written).toMatch(/ghost/);
    expect(written).toMatch(/name either --device ID or --app NAME/);
  });
});
