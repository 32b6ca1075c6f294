import { describe, expect, it } from 'vitest';
import { compilePolicies, DEFAULT_POLICY, parsePolicyDocument, type PolicyContext } from '../policy/index.ts';
import { explainDecision } from './access.commands.ts';

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
