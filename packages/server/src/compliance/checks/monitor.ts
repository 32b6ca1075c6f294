import type { MonitorComplianceFacts } from '../facts.ts';
import type { CheckDefinition, Evidence } from './types.ts';
import { atLeast, count, humanDuration, isoDate, outcome } from './util.ts';

type Profile = MonitorComplianceFacts['profiles'][number];

const NO_GROUP = '(no group)';
const covers = (p: Profile, group: string) =>
  p.attachedTo.includes('*') || p.attachedTo.includes(`group:${group}`);

/** Why a required profile does not protect the group, or null when it does. */
function profileGap(profiles: Profile[], name: string, group: string): string | null {
  const profile = profiles.find((p) => p.name === name);
  if (!profile) return `required profile ${name} does not exist`;
  if (!covers(profile, group))
    return `required profile ${name} is not attached to the group or to all devices`;
  if (profile.detectors.length === 0) return `required profile ${name} has no detector enabled`;
  return null;
}

const groupProfiles: CheckDefinition = {
  id: 'monitor.group-profiles',
  title: 'Every device group is covered by its required detection profiles',
  severity: 'high',
  rationale:
    'A group without detection goes unwatched: floods, credential attacks and tampering raise no alert (IEC 62443-3-3 SR 6.2).',
  remediation:
    'Create the profile (`bulwark security-profile put <name>`) and attach it (`bulwark security-profile attach <name> --group <group>` or `--all`), or change monitoring.requiredProfiles in the baseline.',
  reads: ['monitor'],
  run({ facts, baseline }) {
    const required = baseline.monitoring.requiredProfiles;
    const groups = new Set([
      ...facts.monitor.groups.map((g) => g.group),
      ...Object.keys(required).filter((k) => k !== '*'),
    ]);
    const evidence: Evidence[] = [];
    for (const group of groups) {
      const names = new Set([...(required['*'] ?? []), ...(required[group] ?? [])]);
      for (const name of names) {
        const gap = profileGap(facts.monitor.profiles, name, group);
        if (gap) evidence.push({ kind: 'group', id: group === '' ? NO_GROUP : group, detail: gap });
      }
    }
    return outcome({
      evidence,
      examined: groups.size,
      pass: `all ${count(groups.size, 'group')} are covered by their required profiles`,
      fail: () =>
        `${new Set(evidence.map((e) => e.id)).size} of ${groups.size} groups lack a required detection profile`,
    });
  },
};

const automaticResponse: CheckDefinition = {
  id: 'monitor.automatic-response',
  title: 'Detections on every device trigger an automatic response',
  severity: 'medium',
  rationale:
    'An automatic containment (quarantine, disconnect) acts within seconds, long before someone reads the alert.',
  remediation:
    'Configure a response in a profile attached to all devices (`bulwark security-profile put default` with responses, then `bulwark security-profile attach default --all`).',
  reads: ['monitor'],
  run({ facts }) {
    const fleetWide = facts.monitor.profiles.filter((p) => p.attachedTo.includes('*'));
    const evidence: Evidence[] = fleetWide.some((p) => p.responses.length > 0)
      ? []
      : fleetWide.length === 0
        ? [{ kind: 'profile', id: '*', detail: 'no profile is attached to all devices' }]
        : fleetWide.map((p) => ({
            kind: 'profile',
            id: p.name,
            detail: 'attached to all devices without an automatic response',
          }));
    return outcome({
      evidence,
      examined: facts.monitor.profiles.length,
      pass: 'a profile attached to all devices responds automatically',
      fail: () => 'no profile attached to all devices configures an automatic response',
    });
  },
};

const openAlerts: CheckDefinition = {
  id: 'monitor.open-alerts',
  title: 'Serious alerts are handled promptly',
  severity: 'high',
  rationale: 'An alert left open means a detected attack or fault has not been looked at.',
  remediation:
    'Work through the alerts named (`bulwark alerts show <id>`, then `bulwark alerts resolve <id>`); adjust monitoring.alertMaxAge in the baseline.',
  reads: ['monitor'],
  run({ facts, baseline, now }) {
    const { alertSeverity, alertMaxAge } = baseline.monitoring;
    const serious = facts.monitor.openAlerts.filter((a) => atLeast(a.severity, alertSeverity));
    const evidence: Evidence[] = serious
      .filter((a) => a.openedAt < now - alertMaxAge)
      .map((a) => ({
        kind: 'alert',
        id: a.id,
        detail: `${a.severity} ${a.detector} on ${a.subject}, open since ${isoDate(a.openedAt)}`,
      }));
    return outcome({
      evidence,
      examined: serious.length,
      pass: `no ${alertSeverity} alert open for more than ${humanDuration(alertMaxAge)}`,
      fail: (e) =>
        `${e.length} ${alertSeverity}-or-above alerts open for more than ${humanDuration(alertMaxAge)}`,
    });
  },
};

export const monitorChecks: readonly CheckDefinition[] = [groupProfiles, automaticResponse, openAlerts];
