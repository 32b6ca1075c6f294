import type { Db } from '../store/index.ts';
import { builtinDetectors, type SecurityProfile } from './profile.ts';

/**
 * The monitor's compliance facts (the `monitor` source of the compliance engine; IEC 62443-3-3 SR 6.2,
 * NIST SP 800-82 §6.2.17 continuous monitoring): which profiles watch which devices, with what detectors
 * and automatic responses, the fleet's groups, and the alerts not resolved.
 */
export interface MonitorComplianceFacts {
  profiles: {
    name: string;
    /** Where it is attached: `*` all devices, `group:<g>`, `zone:<z>`, `device:<id>`. */
    attachedTo: string[];
    /** Built-in detectors the profile leaves enabled, and its behaviours (each one a detector). */
    detectors: string[];
    /** Automatic responses (detector → action); `*` answers every detector. */
    responses: { detector: string; action: string }[];
  }[];
  /** Device groups in the fleet with their devices in service (no group as ''). */
  groups: { group: string; devices: number }[];
  /** Alerts not resolved (open or acknowledged); openedAt is when first seen. */
  openAlerts: { id: string; detector: string; severity: string; subject: string; openedAt: number }[];
}

export interface MonitorFactsDeps {
  db: Db;
  profiles: { list(): Promise<SecurityProfile[]> };
  /** The fleet's groups (the devices door's `groups()`). */
  groups?: (() => Promise<{ group: string; devices: number }[]>) | undefined;
}

export function profileFact(profile: SecurityProfile): MonitorComplianceFacts['profiles'][number] {
  const { document } = profile;
  return {
    name: profile.name,
    attachedTo: profile.attachments.map((a) => (a.kind === 'all' ? '*' : `${a.kind}:${a.target}`)),
    detectors: [
      ...builtinDetectors.filter((d) => document.builtins[d].enabled),
      ...document.behaviours.map((b) => b.name),
    ],
    responses: document.responses
      .filter((r) => r.mode === 'automatic')
      .flatMap((r) => r.detectors.map((detector) => ({ detector, action: r.action }))),
  };
}

async function openAlerts(db: Db): Promise<MonitorComplianceFacts['openAlerts']> {
  const rows = await db
    .selectFrom('alerts')
    .select(['id', 'detector', 'severity', 'subject', 'first_seen'])
    .where('status', '!=', 'resolved')
    .orderBy('first_seen')
    .orderBy('id')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    detector: r.detector,
    severity: r.severity,
    subject: r.subject,
    openedAt: Number(r.first_seen),
  }));
}

export async function monitorComplianceFacts(deps: MonitorFactsDeps): Promise<MonitorComplianceFacts> {
  const { groups } = deps;
  // Without the fleet's groups the per-group check would pass on nothing: refuse instead (the check errs).
  if (!groups) throw new Error('the monitor has no source for the fleet groups (MonitorDeps.groups)');
  const [profiles, fleetGroups, alerts] = await Promise.all([
    deps.profiles.list(),
    groups(),
    openAlerts(deps.db),
  ]);
  return { profiles: profiles.map(profileFact), groups: fleetGroups, openAlerts: alerts };
}
