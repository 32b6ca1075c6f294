import type { AuditLog, EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { vulnerabilityComplianceFacts } from './risk.facts.ts';
import { createVulnerabilityService, type FirmwareReads } from './vulnerability.service.ts';

export type { VulnerabilityComplianceFacts } from './risk.facts.ts';

export interface RiskDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  /** Releases, SBOM components and what the fleet runs, read through the firmware door. */
  firmware: FirmwareReads;
  /** The newest advisories import, for the compliance facts (without it: the newest stored advisory). */
  audit?: Pick<AuditLog, 'latest'> | undefined;
}

/** Risk: known vulnerabilities of what was shipped and what runs (the TARA and risk register build on it). */
export function createRisk(deps: RiskDeps) {
  return {
    vulnerabilities: createVulnerabilityService(deps),
    /** The compliance engine's `vulnerabilities` source: advisories known, last import, fleet exposures. */
    complianceFacts: () => vulnerabilityComplianceFacts(deps),
  };
}

export type Risk = ReturnType<typeof createRisk>;
