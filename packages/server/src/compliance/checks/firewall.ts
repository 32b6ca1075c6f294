import type { CheckDefinition, Evidence } from './types.ts';
import { outcome } from './util.ts';

interface Limit {
  setting: string;
  value: number;
  max: number;
  unit: string;
}

const overLimits = (limits: Limit[]): Evidence[] =>
  limits
    .filter((l) => l.value > l.max)
    .map((l) => ({ kind: 'setting', id: l.setting, detail: `${l.value} ${l.unit}, more than ${l.max}` }));

const connectionLimits: CheckDefinition = {
  id: 'firewall.connection-limits',
  title: 'The broker limits connections per address',
  severity: 'medium',
  rationale: 'Connection floods exhaust the broker (IEC 62443-4-2 CR 7.1); limits per address contain them.',
  remediation:
    'Lower firewall.connectRate and firewall.maxConnectionsPerAddress in the configuration to the baseline firewall section.',
  reads: ['firewall'],
  run({ facts, baseline }) {
    const { limits } = facts.firewall;
    const evidence = overLimits([
      {
        setting: 'firewall.connectRate',
        value: limits.connectRate,
        max: baseline.firewall.maxConnectRate,
        unit: 'connections per second',
      },
      {
        setting: 'firewall.maxConnectionsPerAddress',
        value: limits.maxConnectionsPerAddress,
        max: baseline.firewall.maxConnectionsPerAddress,
        unit: 'connections per address',
      },
    ]);
    return outcome({
      evidence,
      examined: 2,
      pass: `${limits.connectRate} connections per second and ${limits.maxConnectionsPerAddress} per address, within the baseline`,
      fail: (e) => `${e.length} connection limits are looser than the baseline`,
    });
  },
};

const publishLimits: CheckDefinition = {
  id: 'firewall.publish-limits',
  title: 'The broker limits publish rate and payload size',
  severity: 'medium',
  rationale: 'A device flooding messages or sending huge payloads degrades service for the whole fleet.',
  remediation:
    'Lower firewall.publishRate and firewall.maxPayloadBytes in the configuration to the baseline firewall section.',
  reads: ['firewall'],
  run({ facts, baseline }) {
    const { limits } = facts.firewall;
    const evidence = overLimits([
      {
        setting: 'firewall.publishRate',
        value: limits.publishRate,
        max: baseline.firewall.maxPublishRate,
        unit: 'messages per second',
      },
      {
        setting: 'firewall.maxPayloadBytes',
        value: limits.maxPayloadBytes,
        max: baseline.firewall.maxPayloadBytes,
        unit: 'bytes',
      },
    ]);
    return outcome({
      evidence,
      examined: 2,
      pass: `${limits.publishRate} messages per second and ${limits.maxPayloadBytes} bytes per payload, within the baseline`,
      fail: (e) => `${e.length} publish limits are looser than the baseline`,
    });
  },
};

export const firewallChecks: readonly CheckDefinition[] = [connectionLimits, publishLimits];
