import type { CheckDefinition, Evidence } from './types.ts';
import { count, humanDuration, isoDate, outcome } from './util.ts';

const notSeen: CheckDefinition = {
  id: 'devices.not-seen',
  title: 'Devices in service are seen regularly',
  severity: 'medium',
  rationale:
    'A device silent for long may be lost, stolen, broken or tampered with; its identity stays valid until someone acts.',
  remediation:
    'Find the device; when it is out of service decommission or revoke it (`bulwark device revoke <id>`); adjust devices.notSeenFor in the baseline for devices that report rarely.',
  reads: ['devices'],
  run({ facts, baseline, now }) {
    const limit = baseline.devices.notSeenFor;
    const active = facts.devices.devices.filter((d) => d.status === 'active');
    const evidence: Evidence[] = active
      .filter((d) => !d.connected && (d.lastSeenAt ?? d.createdAt) < now - limit)
      .map((d) => ({
        kind: 'device',
        id: d.id,
        detail:
          d.lastSeenAt === null
            ? `never seen since it was created on ${isoDate(d.createdAt)}`
            : `last seen ${isoDate(d.lastSeenAt)}, more than ${humanDuration(limit)} ago`,
      }));
    return outcome({
      evidence,
      examined: active.length,
      pass: `all ${count(active.length, 'active device')} seen within ${humanDuration(limit)}`,
      fail: (e) => `${e.length} of ${active.length} active devices not seen for ${humanDuration(limit)}`,
    });
  },
};

const identityConflicts: CheckDefinition = {
  id: 'devices.identity-conflicts',
  title: 'No two connections claim one device identity',
  severity: 'high',
  rationale:
    'Two connections with one client id mean a cloned identity or a misconfigured device kicking the real one off the broker.',
  remediation:
    'Investigate the devices named (`bulwark device show <id>`); revoke and re-enrol a cloned device (`bulwark device revoke <id>`).',
  reads: ['devices'],
  run({ facts }) {
    const window = humanDuration(facts.devices.conflictWindowMs);
    const evidence: Evidence[] = facts.devices.identityConflicts.map((c) => ({
      kind: 'device',
      id: c.deviceId ?? c.clientId,
      detail: `client id ${c.clientId}: ${count(c.count, 'conflicting connection')} in the last ${window}, last ${isoDate(c.lastAt)}`,
    }));
    return outcome({
      evidence,
      examined: facts.devices.devices.length,
      pass: `no identity conflict in the last ${window}`,
      fail: (e) => `${e.length} client ids had conflicting connections in the last ${window}`,
    });
  },
};

const revokedStillConnected: CheckDefinition = {
  id: 'devices.revoked-still-connected',
  title: 'Revoked devices are disconnected',
  severity: 'critical',
  rationale: 'Revocation that does not end live sessions leaves a compromised device with its access.',
  remediation:
    'Revoke the device again (`bulwark device revoke <id>`, which drops its sessions) and check the broker nodes share revocations.',
  reads: ['devices'],
  run({ facts }) {
    const evidence: Evidence[] = facts.devices.revokedButConnected.map((r) => ({
      kind: 'device',
      id: r.deviceId,
      detail: `still connected although revoked (certificates ${r.serials.join(', ') || 'none'})`,
    }));
    return outcome({
      evidence,
      examined: facts.devices.devices.length,
      pass: 'no revoked device holds a session',
      fail: (e) => `${e.length} revoked devices are still connected`,
    });
  },
};

const quarantined: CheckDefinition = {
  id: 'devices.quarantined',
  title: 'Quarantined devices are investigated and released or revoked',
  severity: 'low',
  rationale: 'A quarantine is an open containment: someone must decide whether the device is clean.',
  remediation:
    'Investigate each device; release it (`bulwark device release <id>`) or revoke it (`bulwark device revoke <id>`).',
  reads: ['devices'],
  run({ facts }) {
    const evidence: Evidence[] = facts.devices.devices
      .filter((d) => d.quarantined)
      .map((d) => ({ kind: 'device', id: d.id, detail: `quarantined (${d.status})` }));
    return outcome({
      evidence,
      examined: facts.devices.devices.length,
      pass: `none of ${count(facts.devices.devices.length, 'device')} is quarantined`,
      fail: (e) => `${e.length} of ${facts.devices.devices.length} devices are quarantined`,
    });
  },
};

export const deviceChecks: readonly CheckDefinition[] = [
  notSeen,
  identityConflicts,
  revokedStillConnected,
  quarantined,
];
