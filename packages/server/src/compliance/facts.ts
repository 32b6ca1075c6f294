import type { Baseline } from '@bulwark/protocol';
import type { AccessComplianceFacts } from '../access/index.ts';
import type { AppComplianceFacts } from '../apps/index.ts';
import type { ListenerFacts } from '../broker/index.ts';
import type { DeviceComplianceFact, DeviceComplianceFacts } from '../devices/index.ts';
import type { AuditChainFacts } from '../events/index.ts';
import type { FirewallComplianceFacts } from '../firewall/index.ts';
import type { FirmwareComplianceFacts } from '../firmware/index.ts';
import type { MonitorComplianceFacts } from '../monitor/index.ts';
import type { ExporterFact } from '../notify/index.ts';
import type { PkiCertificateFact, PkiFacts } from '../pki/index.ts';
import type { PrivacyComplianceFacts } from '../privacy/index.ts';
import type { VulnerabilityComplianceFacts } from '../risk/index.ts';
import type { AccountComplianceFact, UserComplianceFacts } from '../users/index.ts';

/**
 * What the compliance checks read: plain values each owning module states through its door (DESIGN.md rule 2),
 * gathered once per run (platform.ts wires each source to its module). Each shape is the module's own (its
 * door exports it); lists name the concrete objects so a failing check can cite them as evidence. A source
 * that fails makes the checks reading it `error`, never pass. Times are epoch milliseconds.
 */
export interface ComplianceFacts {
  pki: PkiFacts;
  listeners: ListenerFacts[];
  devices: DeviceComplianceFacts;
  users: UserComplianceFacts;
  audit: AuditComplianceFacts;
  monitor: MonitorComplianceFacts;
  access: AccessComplianceFacts;
  firewall: FirewallComplianceFacts;
  firmware: FirmwareComplianceFacts;
  vulnerabilities: VulnerabilityComplianceFacts;
  privacy: PrivacyComplianceFacts;
  apps: AppComplianceFacts;
}
export type FactSource = keyof ComplianceFacts;

/** The audit log's chain (events/) and the channels that export it (notify/). */
export interface AuditComplianceFacts {
  chain: AuditChainFacts;
  exporters: ExporterFact[];
}

/** Names the checks use for single objects of the modules' facts. */
export type CertificateFact = PkiCertificateFact;
export type ListenerFact = ListenerFacts;
export type DeviceFact = DeviceComplianceFact;
export type AccountFact = AccountComplianceFact;
export type {
  AccessComplianceFacts,
  AppComplianceFacts,
  DeviceComplianceFacts,
  FirewallComplianceFacts,
  FirmwareComplianceFacts,
  MonitorComplianceFacts,
  PrivacyComplianceFacts,
  UserComplianceFacts,
  VulnerabilityComplianceFacts,
};

/** What a source is given: the baseline of the run (a window it reads may come from it). */
export interface FactContext {
  baseline: Baseline;
}

/** Each source, read through its module's door (platform.ts builds this). */
export type ComplianceSources = {
  [K in FactSource]: (context: FactContext) => Promise<ComplianceFacts[K]>;
};
