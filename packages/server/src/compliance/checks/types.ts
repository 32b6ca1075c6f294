import type { Baseline } from '@bulwark/protocol';
import type { ComplianceFacts, FactSource } from '../facts.ts';
import type { SecurityLevelRequirement } from '../model.ts';

export type CheckSeverity = 'critical' | 'high' | 'medium' | 'low';

/** One concrete object a check found (failing) or examined: which device, certificate, account, listener … */
export interface Evidence {
  kind:
    | 'device'
    | 'certificate'
    | 'account'
    | 'api_token'
    | 'listener'
    | 'setting'
    | 'audit'
    | 'channel'
    | 'profile'
    | 'group'
    | 'alert'
    | 'policy'
    | 'grant'
    | 'zone'
    | 'conduit'
    | 'release'
    | 'rollout'
    | 'metadata'
    | 'advisory'
    | 'data_schema'
    | 'telemetry_pattern'
    | 'request'
    | 'app'
    | 'baseline'
    | 'attestation_key'
    | 'security_report'
    | 'site'
    | 'site_access'
    | 'tara'
    | 'risk';
  /** The object's id (device id, serial, username, listener name, baseline path …). */
  id: string;
  /** What about it, in one line (`expires 2027-01-03, within the 14-day window`). */
  detail: string;
}

/** What one check found. Failing evidence lists every offending object (capped by the engine at 200). */
export interface CheckOutcome {
  status: 'pass' | 'fail';
  /** One line: `2 of 40 devices have certificates expiring within 14 days`. */
  summary: string;
  /** How many objects were examined. */
  examined: number;
  evidence: Evidence[];
}

export interface CheckInput {
  facts: ComplianceFacts;
  baseline: Baseline;
  now: number;
  /** Outcomes of the checks of earlier phases (phase 2 checks read phase 1 outcomes). */
  results: ReadonlyMap<string, Omit<CheckOutcome, 'status'> & { status: 'pass' | 'fail' | 'error' }>;
  /** IEC 62443 security levels and the checks each needs (from the iec-62443-3-3 framework). */
  securityLevels: readonly SecurityLevelRequirement[];
}

export interface CheckDefinition {
  id: CheckId;
  title: string;
  severity: CheckSeverity;
  /** Why it matters (one or two sentences). */
  rationale: string;
  /** What to do when it fails. */
  remediation: string;
  /** The fact sources it reads: when one could not be read, the check is `error`. */
  reads: readonly FactSource[];
  /**
   * `operator`: the check passes only once the operator supplies something the platform cannot (a disclosure
   * contact, a support period, an export channel, advisories, the controller's name). Reports label these.
   */
  needs?: 'operator';
  /** 1 (default) or 2: phase 2 runs after phase 1 and reads its outcomes (zone security levels). */
  phase?: 1 | 2;
  run(input: CheckInput): CheckOutcome;
}

/**
 * Every automated check, by id (binding: the framework files map clauses to these ids; the catalog test
 * asserts each id has exactly one definition). Grouped by the area whose facts they read.
 */
export const checkIds = [
  // pki
  'pki.ca-expiry',
  'pki.server-certificate-expiry',
  'pki.device-certificate-expiry',
  'pki.device-certificate-lifetime',
  'pki.accepted-key-types',
  'pki.shared-keys',
  'pki.devices-without-certificate',
  // network listeners
  'net.plaintext-listener',
  'net.unauthenticated-listener',
  'net.tls-version',
  'net.device-mutual-tls',
  // devices and connections
  'devices.not-seen',
  'devices.identity-conflicts',
  'devices.revoked-still-connected',
  'devices.quarantined',
  // accounts
  'accounts.privileged-second-factor',
  'accounts.second-factor-policy',
  'accounts.dormant',
  'accounts.lockout',
  'accounts.session-limits',
  'accounts.api-token-lifetime',
  'accounts.admin-count',
  // audit and export
  'audit.chain-intact',
  'audit.exported',
  'audit.export-healthy',
  // monitoring
  'monitor.group-profiles',
  'monitor.automatic-response',
  'monitor.open-alerts',
  // access control and segmentation
  'access.wildcard-device-grants',
  'access.app-broad-grants',
  'access.deny-by-default',
  'zones.device-coverage',
  'zones.without-conduits',
  'zones.any-to-any-conduits',
  'zones.conduit-rate-caps',
  'zones.security-level',
  // firewall
  'firewall.connection-limits',
  'firewall.publish-limits',
  // firmware and vulnerabilities
  'firmware.known-vulnerabilities',
  'firmware.metadata-expiry',
  'firmware.staged-rollouts',
  'firmware.max-age',
  'firmware.sbom',
  'firmware.advisories-imported',
  // organisation
  'org.support-period',
  'org.disclosure-contact',
  // privacy
  'privacy.retention-limits',
  'privacy.telemetry-retention',
  'privacy.overdue-requests',
  'privacy.controller-named',
  'privacy.unclassified-telemetry',
  'apps.purpose-declared',
  'apps.token-expiry',
  // physical security and attestation
  'attestation.no-contraindicated',
  'attestation.keys-bound',
  'physical.tamper-response',
  'physical.lost-revoked',
  'physical.site-access-reviewed',
  'physical.reports-verified',
  // risk assessment (ISO/SAE 21434 clause 15, NIST SP 800-82 RA-3)
  'risk.tara-recorded',
  'risk.treatment-current',
] as const;
export type CheckId = (typeof checkIds)[number];
