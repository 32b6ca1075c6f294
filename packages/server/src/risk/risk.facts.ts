import type { AuditLog } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { matchesWithSeverity, scoreOf, severityOf } from './advisory.store.ts';
import type { AdvisorySeverity } from './severity.ts';
import type { FirmwareReads } from './vulnerability.service.ts';

/**
 * The risk module's compliance facts (the `vulnerabilities` source of the compliance engine; ETSI EN 303 645
 * 5.2, IEC 62443-4-1 SVV, ISO/SAE 21434 §8 vulnerability management): how many advisories are known, when the
 * feed was last imported, and which advisories affect releases devices run.
 */
export interface VulnerabilityComplianceFacts {
  /** Advisories in force (imported, not withdrawn). */
  advisories: number;
  /** The newest import (an advisories_imported event, or the newest stored advisory); null: never. */
  lastImportAt: number | null;
  /** Advisories matched to releases devices run: the releases (`name@version`) and the devices running them. */
  exposures: {
    advisory: string;
    severity: 'critical' | 'high' | 'medium' | 'low' | 'unknown';
    score: number | null;
    releases: string[];
    devices: string[];
  }[];
}

export interface RiskFactsDeps {
  db: Db;
  firmware: Pick<FirmwareReads, 'fleet'>;
  /** The audit log: an import that changed nothing (the same feed again) still counts as an import. */
  audit?: Pick<AuditLog, 'latest'> | undefined;
}

type Exposure = VulnerabilityComplianceFacts['exposures'][number];

/** CVSS rates 0.0 `none`: no severity above low, so it counts as low (reported, never above a threshold). */
const factSeverity = (s: AdvisorySeverity): Exposure['severity'] => (s === 'none' ? 'low' : s);

async function advisoryFigures(deps: RiskFactsDeps): Promise<{ count: number; lastImportAt: number | null }> {
  const [inForce, newest, event] = await Promise.all([
    deps.db
      .selectFrom('firmware_advisories')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('withdrawn', 'is', null)
      .executeTakeFirst(),
    deps.db
      .selectFrom('firmware_advisories')
      .select((eb) => eb.fn.max('imported_at').as('last'))
      .executeTakeFirst(),
    deps.audit?.latest('vulnerability.advisories_imported'),
  ]);
  const stored = newest?.last === null || newest?.last === undefined ? null : Number(newest.last);
  const times = [stored, event?.ts ?? null].filter((t): t is number => t !== null);
  return { count: Number(inForce?.n ?? 0), lastImportAt: times.length ? Math.max(...times) : null };
}

async function exposures(deps: RiskFactsDeps): Promise<Exposure[]> {
  const deployed = await deps.firmware.fleet.deployments();
  const byRelease = new Map<string, { name: string; devices: string[] }>();
  for (const d of deployed) {
    const entry = byRelease.get(d.release.id) ?? {
      name: `${d.release.name}@${d.release.version}`,
      devices: [],
    };
    entry.devices.push(d.deviceId);
    byRelease.set(d.release.id, entry);
  }
  const out = new Map<string, Exposure>();
  for (const m of await matchesWithSeverity(deps.db)) {
    const release = byRelease.get(m.release_id);
    if (!release) continue;
    const entry = out.get(m.advisory_id) ?? {
      advisory: m.advisory_id,
      severity: factSeverity(severityOf(m.severity)),
      score: scoreOf(m.score_tenths),
      releases: [],
      devices: [],
    };
    if (!entry.releases.includes(release.name)) {
      entry.releases.push(release.name);
      entry.devices.push(...release.devices);
    }
    out.set(m.advisory_id, entry);
  }
  return [...out.values()]
    .map((e) => ({ ...e, releases: e.releases.sort(), devices: [...new Set(e.devices)].sort() }))
    .sort((a, b) => a.advisory.localeCompare(b.advisory));
}

export async function vulnerabilityComplianceFacts(
  deps: RiskFactsDeps,
): Promise<VulnerabilityComplianceFacts> {
  const [figures, exposed] = await Promise.all([advisoryFigures(deps), exposures(deps)]);
  return { advisories: figures.count, lastImportAt: figures.lastImportAt, exposures: exposed };
}
