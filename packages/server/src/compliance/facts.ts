import type { Baseline } from '@bulwark/protocol';
import type { AccessComplianceFacts } from '../access/index.ts';
import type { AppComplianceFacts } from '../apps/index.ts';
import type { AttestationComplianceFacts, PhysicalComplianceFacts } from '../attestation/index.ts';
import type { ListenerFacts } from '../broker/index.ts';
import type { DeviceComplianceFact, DeviceComplianceFacts } from '../devices/index.ts';
import type { AuditChainFacts } from '../events/index.ts';
import type { FirewallComplianceFacts } from '../firewall/index.ts';
import type { FirmwareComplianceFacts } from '../firmware/index.ts';
import type { MonitorComplianceFacts } from '../monitor/index.ts';
import type { ExporterFact } from '../notify/index.ts';
import type { PkiCertificateFact, PkiFacts } from '../pki/index.ts';
import type { PrivacyComplianceFacts } from '../privacy/index.ts';
import type { RiskComplianceFacts, VulnerabilityComplianceFacts } from '../risk/index.ts';
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
  /** TPM attestation keys and standings, refused security reports (attestation/). */
  attestation: AttestationComplianceFacts;
  /** Physical sites and their access records (attestation/ physical sites). */
  physical: PhysicalComplianceFacts;
  /** Saved TARAs and the risk register (risk/). */
  risk: RiskComplianceFacts;
}
export type FactSource = keyof ComplianceFacts;

/** The audit log's chain (events/) and the channels that export it (notify/). */
export interface AuditComplianceFacts {
  chain: AuditChainFacts;
  exporters: ExporterFact[];
}

/** Subjects in the facts (a certificate's `owner`) are read with the one parser (events/subject.ts). */
export { deviceIdOf } from '../events/index.ts';

/** Names the checks use for single objects of the modules' facts. */
export type CertificateFact = PkiCertificateFact;
export type ListenerFact = ListenerFacts;
export type DeviceFact = DeviceComplianceFact;
export type AccountFact = AccountComplianceFact;
export type {
  AccessComplianceFacts,
  AppComplianceFacts,
  AttestationComplianceFacts,
  DeviceComplianceFacts,
  FirewallComplianceFacts,
  FirmwareComplianceFacts,
  MonitorComplianceFacts,
  PhysicalComplianceFacts,
  PrivacyComplianceFacts,
  RiskComplianceFacts,
  UserComplianceFacts,
  VulnerabilityComplianceFacts,
};

/** What a source is given: the baseline of the run (a window it reads may come from it). */
export interface FactContext {
  baseline: Baseline;
}

/**
 * Sources a platform may leave unbound (bound by the composition root once the module exists, e.g. not in a
 * tool that builds no attestation service): the checks reading an unbound source are `error`, never pass.
 */
export type OptionalFactSource = Extract<FactSource, 'attestation' | 'physical' | 'risk'>;

export type FactReader<K extends FactSource> = (context: FactContext) => Promise<ComplianceFacts[K]>;

/** Each source, read through its module's door (platform.ts builds this). */
export type ComplianceSources = {
  [K in Exclude<FactSource, OptionalFactSource>]: FactReader<K>;
} & {
  [K in OptionalFactSource]?: FactReader<K> | undefined;
};

const unbound = (source: FactSource) => () => Promise.reject(new Error(`no ${source} source is bound`));

/** Every source, an unbound optional one answering with the error that makes its checks `error`. */
export function everySource(sources: ComplianceSources): { [K in FactSource]: FactReader<K> } {
  return {
    ...sources,
    attestation: sources.attestation ?? unbound('attestation'),
    physical: sources.physical ?? unbound('physical'),
    risk: sources.risk ?? unbound('risk'),
  };
}
