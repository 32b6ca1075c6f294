import type { Baseline } from '@bulwark/protocol';
import type { AccessComplianceFacts } from '../facts.ts';
import type { CheckDefinition, CheckId, CheckInput, Evidence } from './types.ts';
import { count, outcome } from './util.ts';

const connectOnly = (actions: string[]) => actions.every((a) => a === 'mqtt:connect');
const fleetWide = (topic: string) => topic === '#' || topic === '+/#';
const WILDCARD = new Set(['+', '#']);

/**
 * Does an allowed topic filter reach other devices' topics (`devices/<id>/…`)? `#`, or a wildcard where the
 * device id goes (`devices/+/…`, `devices/#`, `+/+/…`, `+/#`). `devices/${device.id}/#` reaches only the
 * principal's own topics: a variable fills a whole level with a plain value (policy/variables.ts).
 */
export function reachesOtherDevices(topic: string): boolean {
  const [first = '', second] = topic.split('/');
  if (first === '#') return true;
  if (first !== 'devices' && first !== '+') return false;
  return second !== undefined && WILDCARD.has(second);
}

const wildcardDeviceGrants: CheckDefinition = {
  id: 'access.wildcard-device-grants',
  title: 'Device policies grant each device its own topics only',
  severity: 'high',
  rationale:
    'A wildcard over the device level lets one compromised device read or command every other device (least privilege, IEC 62443-3-3 SR 2.1).',
  remediation:
    'Rewrite the statement with `devices/${device.id}/…` (or list the target devices) and save it with `bulwark policy put <name>`.',
  reads: ['access'],
  run({ facts }) {
    const evidence: Evidence[] = [];
    for (const policy of facts.access.policies)
      policy.statements.forEach((s, i) => {
        if (s.effect !== 'allow' || connectOnly(s.actions)) return;
        for (const topic of s.topics.filter(reachesOtherDevices))
          evidence.push({
            kind: 'policy',
            id: policy.name,
            detail: `statement ${i + 1} allows ${s.actions.join(', ')} on "${topic}" (attached to ${policy.attachedTo.join(', ') || 'nothing'}): it reaches other devices' topics`,
          });
      });
    return outcome({
      evidence,
      examined: facts.access.policies.length,
      pass: `none of ${count(facts.access.policies.length, 'operator policy')} grants other devices' topics`,
      fail: () =>
        `${new Set(evidence.map((e) => e.id)).size} of ${facts.access.policies.length} policies grant wildcards over other devices' topics`,
    });
  },
};

const appBroadGrants: CheckDefinition = {
  id: 'access.app-broad-grants',
  title: 'Applications are not granted every topic',
  severity: 'high',
  rationale:
    'An app allowed `#` reads and commands the whole fleet: a leaked app credential becomes a fleet compromise.',
  remediation:
    'Replace the grant with topics and groups the app needs (`bulwark app ungrant <name> <grant>`, then `bulwark app grant <name> <grant>`).',
  reads: ['access', 'apps'],
  run({ facts }) {
    // A revoked app keeps its grants on record but can no longer connect: only apps in service count.
    const active = new Set(facts.apps.apps.filter((a) => a.status === 'active').map((a) => a.name));
    const grants = facts.access.appGrants.filter((g) => active.has(g.app));
    const evidence: Evidence[] = grants
      .filter((g) => g.effect === 'allow' && !connectOnly(g.actions))
      .flatMap((g) =>
        g.topics.filter(fleetWide).map((topic): Evidence => ({
          kind: 'grant',
          id: g.app,
          detail: `allows ${g.actions.join(', ')} on "${topic}": every topic of the fleet`,
        })),
      );
    return outcome({
      evidence,
      examined: grants.length,
      pass: `none of ${count(grants.length, 'app grant')} covers every topic`,
      fail: () => `${new Set(evidence.map((e) => e.id)).size} apps are granted every topic`,
    });
  },
};

const denyByDefault: CheckDefinition = {
  id: 'access.deny-by-default',
  title: 'Access is denied unless a policy allows it',
  severity: 'critical',
  rationale:
    'A policy on all devices that allows `#` turns the broker’s deny-by-default into allow-all (IEC 62443-4-2 CR 2.1).',
  remediation:
    'Remove the `#` statement from the policy (`bulwark policy put <name>`) or detach it from all devices; grant what each group needs instead.',
  reads: ['access'],
  run({ facts }) {
    const everywhere = facts.access.policies.filter((p) => p.attachedTo.includes('*'));
    // `+/#` allows every topic of two levels or more: every device topic, as `#` does.
    const evidence: Evidence[] = everywhere.flatMap((p) => {
      const topics = p.statements
        .filter((s) => s.effect === 'allow' && !connectOnly(s.actions))
        .flatMap((s) => s.topics.filter(fleetWide));
      if (topics.length === 0) return [];
      const shown = [...new Set(topics)].map((t) => `"${t}"`).join(' and ');
      return [{ kind: 'policy', id: p.name, detail: `attached to all devices and allows ${shown}` }];
    });
    return outcome({
      evidence,
      examined: everywhere.length,
      pass: 'no policy attached to all devices allows every topic',
      fail: (e) => `${e.length} policies attached to all devices allow every topic`,
    });
  },
};

/** A zone's target security level (SL-T): the baseline's per-zone target, else the higher of the default and the zone's own. */
export function zoneTarget(baseline: Baseline, zone: { name: string; securityLevel?: number }): number {
  return baseline.zones.targets[zone.name] ?? Math.max(baseline.zones.defaultTarget, zone.securityLevel ?? 0);
}

const deviceCoverage: CheckDefinition = {
  id: 'zones.device-coverage',
  title: 'Every device belongs to a zone',
  severity: 'medium',
  rationale:
    'Once the fleet is segmented, a device in no zone escapes the conduits that bound its traffic (IEC 62443-3-2 ZCR 3).',
  remediation:
    'Put the devices named in a zone (`bulwark zone put` with a file naming their group or ids), or set zones.requireZoneForEveryDevice: false when no zone is used.',
  reads: ['access'],
  run({ facts, baseline }) {
    const required = baseline.zones.requireZoneForEveryDevice || facts.access.zones.length > 0;
    const evidence: Evidence[] = required
      ? facts.access.devicesInNoZone.map((id) => ({ kind: 'device', id, detail: 'in no zone' }))
      : [];
    return outcome({
      evidence,
      examined: facts.access.zones.reduce((n, z) => n + z.devices, 0) + facts.access.devicesInNoZone.length,
      pass: required ? 'every device is in a zone' : 'no zone exists and the baseline does not require them',
      fail: (e) => `${e.length} devices are in no zone`,
    });
  },
};

const named = (conduits: AccessComplianceFacts['conduits']) =>
  new Set(conduits.flatMap((c) => [c.from, c.to]));

const withoutConduits: CheckDefinition = {
  id: 'zones.without-conduits',
  title: 'Zones communicate only through declared conduits',
  severity: 'medium',
  rationale:
    'A zone no conduit names is either isolated by mistake or its flows are undeclared (IEC 62443-3-3 SR 5.1).',
  remediation:
    'Declare the flows the zone needs (`bulwark conduit put` with the conduit file), or remove the zone.',
  reads: ['access'],
  run({ facts }) {
    const { zones, conduits } = facts.access;
    const connected = named(conduits);
    const evidence: Evidence[] =
      zones.length < 2
        ? []
        : zones
            .filter((z) => !connected.has(z.name))
            .map((z) => ({ kind: 'zone', id: z.name, detail: 'no conduit leads to or from this zone' }));
    return outcome({
      evidence,
      examined: zones.length,
      pass:
        zones.length < 2
          ? `${count(zones.length, 'zone')}: no conduit needed`
          : `all ${zones.length} zones have a conduit`,
      fail: (e) => `${e.length} of ${zones.length} zones have no conduit`,
    });
  },
};

const anyToAny: CheckDefinition = {
  id: 'zones.any-to-any-conduits',
  title: 'Conduits carry named topics, not everything',
  severity: 'high',
  rationale: 'A conduit carrying `#` joins two zones into one and defeats the segmentation.',
  remediation:
    'Narrow the conduit to the topics the flow needs (`bulwark conduit put` with the conduit file).',
  reads: ['access'],
  run({ facts }) {
    const { conduits } = facts.access;
    const evidence: Evidence[] = conduits
      .filter((c) => c.topics.some(fleetWide))
      .map((c) => ({
        kind: 'conduit',
        id: c.name,
        detail: `${c.from} → ${c.to} carries every topic (${c.topics.join(', ')})`,
      }));
    return outcome({
      evidence,
      examined: conduits.length,
      pass: `none of ${count(conduits.length, 'conduit')} carries every topic`,
      fail: (e) => `${e.length} of ${conduits.length} conduits carry every topic`,
    });
  },
};

const conduitRateCaps: CheckDefinition = {
  id: 'zones.conduit-rate-caps',
  title: 'Conduits into higher-level zones are rate-capped',
  severity: 'medium',
  rationale:
    'Zones with a target security level of 2 or more must bound what flows in, so a flood in one zone cannot starve another (IEC 62443-3-3 SR 7.1).',
  remediation: 'Set a rate cap on the conduit (rateCap in the conduit file, `bulwark conduit put`).',
  reads: ['access'],
  run({ facts, baseline }) {
    const { zones, conduits } = facts.access;
    const target = (name: string) => zoneTarget(baseline, zones.find((z) => z.name === name) ?? { name });
    const evidence: Evidence[] = conduits
      .filter((c) => c.rateCap === null && Math.max(target(c.from), target(c.to)) >= 2)
      .map((c) => ({
        kind: 'conduit',
        id: c.name,
        detail: `${c.from} (SL-T ${target(c.from)}) → ${c.to} (SL-T ${target(c.to)}) has no rate cap`,
      }));
    return outcome({
      evidence,
      examined: conduits.length,
      pass: `every conduit touching a zone of target level 2 or more is rate-capped (${count(conduits.length, 'conduit')})`,
      fail: (e) => `${e.length} conduits touching zones of target level 2 or more have no rate cap`,
    });
  },
};

/** The checks each level needs, cumulative (level n includes every lower level's). */
function levelChecks(securityLevels: CheckInput['securityLevels']): Map<number, CheckId[]> {
  const byLevel = new Map<number, CheckId[]>();
  const all = new Set<CheckId>();
  for (const level of [1, 2, 3, 4]) {
    for (const r of securityLevels) if (r.level === level) for (const id of r.checks) all.add(id);
    byLevel.set(level, [...all]);
  }
  return byLevel;
}

/** The highest security level whose checks all passed in phase 1 (0 when level 1's do not), and what blocks each level. */
export function achievedLevel(input: {
  results: ReadonlyMap<string, { status: string }>;
  securityLevels: CheckInput['securityLevels'];
}): {
  achieved: number;
  blocking: (level: number) => CheckId[];
} {
  const byLevel = levelChecks(input.securityLevels);
  const blocking = (level: number) =>
    // The level's own check (phase 2) is what this computes: it cannot block itself.
    (byLevel.get(level) ?? []).filter(
      (id) => id !== 'zones.security-level' && input.results.get(id)?.status !== 'pass',
    );
  let achieved = 0;
  for (const level of [1, 2, 3, 4]) {
    if (blocking(level).length > 0) break;
    achieved = level;
  }
  return { achieved, blocking };
}

const securityLevel: CheckDefinition = {
  id: 'zones.security-level',
  title: 'Each zone achieves its target security level',
  severity: 'high',
  rationale:
    'The target security level (SL-T) of a zone is met only when the controls its level requires pass (IEC 62443-3-3 system requirements by level).',
  remediation:
    'Fix the failing checks named for each zone, or lower the zone target (zones.targets in the baseline) when the risk assessment allows it.',
  reads: ['access'],
  phase: 2,
  run(input) {
    const { facts, baseline } = input;
    const { achieved, blocking } = achievedLevel(input);
    const evidence: Evidence[] = facts.access.zones.flatMap((z): Evidence[] => {
      const target = zoneTarget(baseline, z);
      if (achieved >= target) return [];
      return [
        {
          kind: 'zone',
          id: z.name,
          detail: `target SL ${target}, achieved SL ${achieved}: blocked by ${blocking(target).join(', ')}`,
        },
      ];
    });
    return outcome({
      evidence,
      examined: facts.access.zones.length,
      pass: `all ${count(facts.access.zones.length, 'zone')} achieve their target (measured SL ${achieved})`,
      fail: (e) =>
        `${e.length} of ${facts.access.zones.length} zones fall below their target security level (measured SL ${achieved})`,
    });
  },
};

export const accessChecks: readonly CheckDefinition[] = [
  wildcardDeviceGrants,
  appBroadGrants,
  denyByDefault,
  deviceCoverage,
  withoutConduits,
  anyToAny,
  conduitRateCaps,
  securityLevel,
];
