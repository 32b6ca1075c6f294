import type { EventBus } from '../events/index.ts';
import type { Db } from '../store/index.ts';
import { createVulnerabilityService, type FirmwareReads } from './vulnerability.service.ts';

export interface RiskDeps {
  db: Db;
  events: Pick<EventBus, 'emit'>;
  now: () => number;
  /** Releases, SBOM components and what the fleet runs, read through the firmware door. */
  firmware: FirmwareReads;
}

/** Risk: known vulnerabilities of what was shipped and what runs (the TARA and risk register build on it). */
export function createRisk(deps: RiskDeps) {
  return { vulnerabilities: createVulnerabilityService(deps) };
}

export type Risk = ReturnType<typeof createRisk>;
