import { describe, expect, it } from 'vitest';
import type { AttestationStanding } from '@bulwark/protocol';
import {
  compilePolicies,
  DEFAULT_POLICY,
  parsePolicyDocument,
  POLICY_VERSION,
  type AttachedPolicy,
  type PolicyContext,
} from './index.ts';

/** The `attestation` condition (issue 17): a statement applies only when the device's standing is one listed. */
const doc = (attestation: unknown) => ({
  version: POLICY_VERSION,
  statements: [
    {
      sid: 'attested-only',
      effect: 'allow',
      actions: ['mqtt:publish'],
      resources: ['fleet/secure/#'],
      conditions: { attestation },
    },
  ],
});

function attested(): AttachedPolicy {
  const parsed = parsePolicyDocument(doc(['affirming', 'warning']));
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return { name: 'attested', version: 1, document: parsed.document };
}

const deviceCtx = (attestation?: AttestationStanding): PolicyContext => ({
  deviceId: 'd1',
  group: null,
  zone: null,
  attributes: {},
  cert: { cn: 'd1' },
  state: 'active',
  sourceAddress: null,
  ...(attestation ? { attestation } : {}),
});

const compile = (ctx: PolicyContext, policies: AttachedPolicy[] = [DEFAULT_POLICY, attested()]) =>
  compilePolicies({
    ctx,
    policies,
    segmentation: { zones: [], conduits: [] },
    deviceZone: () => undefined,
  });

describe('policy: the attestation condition', () => {
  it('parses a list of standings', () => {
    expect(parsePolicyDocument(doc(['affirming', 'none']))).toMatchObject({ ok: true });
  });

  it('refuses an unknown standing, naming the statement and the allowed values', () => {
    expect(parsePolicyDocument(doc(['trusted']))).toEqual({
      ok: false,
      problems: [
        'statement 1 (attested-only) conditions.attestation.0: unknown attestation standing "trusted": ' +
          'must be one of affirming, warning, contraindicated, overdue, none',
      ],
    });
    const empty = parsePolicyDocument(doc([]));
    expect(empty.ok).toBe(false);
    if (!empty.ok) expect(empty.problems.join()).toMatch(/at least one attestation standing \(affirming, /);
    expect(parsePolicyDocument(doc('affirming')).ok).toBe(false);
  });

  it.each<[AttestationStanding | undefined, boolean]>([
    ['affirming', true],
    ['warning', true],
    ['none', false],
    [undefined, false],
  ])('applies only when the standing matches (%s → %s)', (standing, allowed) => {
    const access = compile(deviceCtx(standing));
    expect(access.publish('fleet/secure/x').allow).toBe(allowed);
    // The device's own topics do not depend on the condition.
    expect(access.publish('devices/d1/telemetry').allow).toBe(true);
    const { dropped } = access.describe();
    if (allowed) expect(dropped).toEqual([]);
    else
      expect(dropped).toEqual([
        {
          policy: 'attested',
          statement: 'attested-only',
          reason: `attestation standing is ${standing ?? 'none'}`,
        },
      ]);
  });

  it('an app compiles with standing none: statements for none apply, the others not', () => {
    const forNone = parsePolicyDocument(doc(['none']));
    if (!forNone.ok) throw new Error(forNone.problems.join('; '));
    const app: PolicyContext = {
      principal: 'app',
      app: { name: 'dash', instance: null, purpose: 'analytics' },
      deviceId: '',
      group: null,
      zone: null,
      attributes: {},
      cert: { cn: 'dash' },
      state: 'active',
      sourceAddress: null,
      attestation: 'none',
    };
    expect(compile(app, [attested()]).publish('fleet/secure/x').allow).toBe(false);
    expect(
      compile(app, [{ name: 'for-none', version: 1, document: forNone.document }]).publish('fleet/secure/x'),
    ).toMatchObject({ allow: true, policy: 'for-none' });
  });

  it('lists statements left out before compiling first in describe()', () => {
    const access = compilePolicies({
      ctx: deviceCtx('contraindicated'),
      policies: [DEFAULT_POLICY],
      segmentation: { zones: [], conduits: [] },
      deviceZone: () => undefined,
      leftOut: [{ policy: 'x', statement: 'y', reason: 'held by attestation: contraindicated' }],
    });
    expect(access.describe().dropped).toEqual([
      { policy: 'x', statement: 'y', reason: 'held by attestation: contraindicated' },
    ]);
  });
});
