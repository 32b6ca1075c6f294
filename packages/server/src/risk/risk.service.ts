import type { AuditLog, EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { createFeeds } from './feeds.service.ts';
import type { RiskInventory } from './assets.ts';
import { createRegister, type RegisterDeps } from './register.service.ts';
import { vulnerabilityComplianceFacts } from './risk.facts.ts';
import { createVulnerabilityService, type FirmwareReads } from './vulnerability.service.ts';

export type { VulnerabilityComplianceFacts } from './risk.facts.ts';

export interface RiskDeps {
  db: Db;
  events: Pick<EventBus, 'emit' | 'atomically' | 'on'>;
  now: () => number;
  /** Releases, SBOM components and what the fleet runs, read through the firmware door. */
  firmware: FirmwareReads;
  /** The newest advisories import, for the compliance facts (without it: the newest stored advisory). */
  audit?: Pick<AuditLog, 'latest'> | undefined;
  /** What the register reads from the other modules (inventory, baseline, compliance, alerts). */
  register: {
    inventory: RiskInventory;
  } & Pick<RegisterDeps, 'baseline' | 'checkExists' | 'measuredLevel' | 'openAlerts' | 'onError'>;
}

/** Risk: known vulnerabilities of what was shipped and what runs (the TARA and risk register build on it). */
export function createRisk(deps: RiskDeps) {
  const feeds = createFeeds(deps);
  const vulnerabilities = createVulnerabilityService({ ...deps, feeds });
  return {
    vulnerabilities,
    /** Assets, TARAs, zone security levels and the live risk register. */
    register: createRegister({ ...deps, ...deps.register, vulnerabilities }),
    /** Offline threat-intelligence feeds: the CISA KEV catalog and FIRST EPSS scores. */
    feeds,
    /** The compliance engine's `vulnerabilities` source: advisories known, last import, fleet exposures. */
    complianceFacts: () => vulnerabilityComplianceFacts(deps),
  };
}

export type Risk = ReturnType<typeof createRisk>;
