import { describe, expect, it } from 'vitest';
import {
  compilePolicies,
  exportNftables,
  POLICY_VERSION,
  type AttachedPolicy,
  type PolicyContext,
} from './index.ts';

const ctx = (attributes: Record<string, string>): PolicyContext => ({
  deviceId: 'd1',
  group: null,
  zone: null,
  attributes,
  cert: { cn: 'd1' },
  state: 'active',
  sourceAddress: null,
});
const fleet: AttachedPolicy = {
  name: 'fleet',
  version: 1,
  document: {
    version: POLICY_VERSION,
    statements: [
      { sid: 'allow-fleet', effect: 'allow', actions: ['mqtt:publish'], resources: ['fleet/#'] },
      {
        sid: 'deny-site-admin',
        effect: 'deny',
        actions: ['mqtt:publish'],
        resources: ['fleet/${device.attr.site}/admin'],
      },
    ],
  },
};

describe('policy compiler: deny always wins', () => {
  it.each<Record<string, string>>([{}, { site: '+' }, { site: '#' }, { site: '..' }, { site: 'a/b' }])(
    'a deny whose variable cannot be filled in (%o) widens instead of disappearing',
    (attributes) => {
      const access = compilePolicies({
        ctx: ctx(attributes),
        policies: [fleet],
        segmentation: { zones: [], conduits: [] },
        deviceZone: () => undefined,
      });
      expect(access.publish('fleet/x/admin')).toMatchObject({ allow: false, statement: 'deny-site-admin' });
      expect(access.publish('fleet/x/status').allow).toBe(true);
    },
  );

  it('a filled-in deny stays precise', () => {
    const access = compilePolicies({
      ctx: ctx({ site: 'north' }),
      policies: [fleet],
      segmentation: { zones: [], conduits: [] },
      deviceZone: () => undefined,
    });
    expect(access.publish('fleet/north/admin').allow).toBe(false);
    expect(access.publish('fleet/south/admin').allow).toBe(true);
  });
});

describe('nftables export', () => {
  it('refuses anything that is not an address where addresses go', () => {
    const seg = { zones: [], conduits: [] };
    expect(() =>
      exportNftables(seg, { brokerAddresses: ['10.9.0.1 } tcp dport { 8883 } accept\n accept'] }),
    ).toThrow(/not an IP address or CIDR/);
    expect(() => exportNftables(seg, { tableName: 'x; flush ruleset' })).toThrow(/plain identifier/);
    expect(exportNftables(seg, { brokerAddresses: ['10.9.0.1', 'fd00::1'] })).toMatch(/policy drop;/);
  });
});
