import type { Baseline, KeyType } from '@bulwark/protocol';

/**
 * What the compliance checks read: plain values each owning module states through its door (DESIGN.md rule 2),
 * gathered once per run (platform.ts wires each source to its module). Lists name the concrete objects so a
 * failing check can cite them as evidence. A source that fails makes the checks reading it `error`, never pass.
 * Times are epoch milliseconds.
 */
export interface ComplianceFacts {
  pki: PkiComplianceFacts;
  listeners: ListenerFact[];
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

/** A certificate as the checks see it. `keyType` is null when the key is of a type not in `keyTypes`. */
export interface CertificateFact {
  serial: string;
  subject: string;
  notBefore: number;
  notAfter: number;
  keyType: KeyType | null;
  /** What the key is when keyType is null (`rsa-1024`, `ec-secp256k1`, …). */
  keyDescription: string;
  /** sha256 of the SubjectPublicKeyInfo (DER), hex: equal keys have equal fingerprints. */
  publicKeySha256: string;
}

export interface PkiComplianceFacts {
  /** The CA chain the platform issues from: root first. */
  ca: CertificateFact[];
  /** The TLS server certificate of the listeners; null before the first start. */
  server: CertificateFact | null;
  /** The validity new device certificates get (config pki.deviceCertValidity). */
  deviceCertValidityMs: number;
  /** Per device in service (registered, active, disabled), its newest certificate not revoked. */
  deviceCertificates: (CertificateFact & { deviceId: string })[];
  /** Every certificate not revoked and not expired, of devices and apps, with its owner (`device:x`, `app:y`). */
  activeCertificates: (CertificateFact & { owner: string })[];
}

/** A listener the server runs (or would run with this configuration). */
export interface ListenerFact {
  name: 'mqtt' | 'mqtt-dev' | 'https' | 'https-device';
  /** The configured port (0: ephemeral). */
  port: number;
  transport: 'tls' | 'tcp';
  /** How clients authenticate: by certificate, by certificate or app token, by user sign-in, or not at all. */
  authentication: 'mutual-tls' | 'mutual-tls-or-app-token' | 'user-sign-in' | 'none';
  /** The lowest TLS version the listener accepts; null for plaintext. */
  minTlsVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' | null;
}

export interface DeviceFact {
  id: string;
  group: string | null;
  /** registered, active, disabled, revoked, decommissioned (a status added later reads as itself). */
  status: string;
  quarantined: boolean;
  /** At least one MQTT session open now (as the server records it). */
  connected: boolean;
  lastSeenAt: number | null;
  createdAt: number;
  zone: string | null;
}

export interface DeviceComplianceFacts {
  devices: DeviceFact[];
  /** Devices whose certificate was revoked (or that were revoked) and that still hold an MQTT session. */
  revokedButConnected: { deviceId: string; serials: string[] }[];
  /** Two connections claiming one identity (mqtt.identity_conflict) in the window, by client id. */
  identityConflicts: { clientId: string; deviceId: string | null; count: number; lastAt: number }[];
  /** The window identityConflicts covers. */
  conflictWindowMs: number;
}

export interface AccountFact {
  username: string;
  role: 'admin' | 'security-officer' | 'operator' | 'auditor' | 'viewer';
  disabled: boolean;
  /** Setup finished (a password set). */
  setupComplete: boolean;
  secondFactor: boolean;
  lastSignInAt: number | null;
  createdAt: number;
}

export interface UserComplianceFacts {
  accounts: AccountFact[];
  require2faForAll: boolean;
  lockout: { threshold: number; lockoutMs: number };
  sessions: { idleMs: number; absoluteMs: number };
  /** Active API tokens (not revoked, not expired). */
  apiTokens: {
    id: string;
    username: string;
    createdAt: number;
    expiresAt: number;
    lastUsedAt: number | null;
  }[];
}

export interface AuditComplianceFacts {
  /** The hash chain verified end to end (events/audit-verify). */
  chain: { ok: boolean; entries: number; brokenAt: number | null; reason: string | null };
  /** Notification channels that deliver the audit log (webhooks, syslog/CEF). */
  exporters: {
    name: string;
    kind: string;
    enabled: boolean;
    /** Entries not yet delivered. */
    lag: number;
    failures: number;
    lastDeliveredAt: number | null;
  }[];
}

export interface MonitorComplianceFacts {
  profiles: {
    name: string;
    /** Where it is attached: `*` all devices, `group:<g>`, `device:<id>`. */
    attachedTo: string[];
    /** Detectors enabled in the profile. */
    detectors: string[];
    /** Automatic responses configured (detector → action). */
    responses: { detector: string; action: string }[];
  }[];
  /** Device groups in the fleet with their device counts (`null` group as ''). */
  groups: { group: string; devices: number }[];
  openAlerts: { id: string; detector: string; severity: string; subject: string; openedAt: number }[];
}

export interface AccessComplianceFacts {
  /** Operator-written policies with their statements and attachments (`*`, `group:<g>`, `device:<id>`). */
  policies: {
    name: string;
    attachedTo: string[];
    statements: { effect: 'allow' | 'deny'; actions: string[]; topics: string[] }[];
  }[];
  zones: { name: string; securityLevel: number; devices: number }[];
  conduits: {
    name: string;
    from: string;
    to: string;
    direction: string;
    topics: string[];
    rateCap: number | null;
  }[];
  /** Devices no zone takes in (every device when no zone exists). */
  devicesInNoZone: string[];
  /** App grants (apps are principals with their own policy). */
  appGrants: { app: string; effect: 'allow' | 'deny'; actions: string[]; topics: string[] }[];
}

export interface FirewallComplianceFacts {
  limits: {
    connectRate: number;
    maxConnectionsPerAddress: number;
    failureThreshold: number;
    banDurationMs: number;
    publishRate: number;
    maxPayloadBytes: number;
    maxSubscriptions: number;
  };
  activeBans: number;
}

export interface FirmwareComplianceFacts {
  /** The TUF roles' current signed metadata. */
  metadata: { role: 'root' | 'targets' | 'snapshot' | 'timestamp'; version: number; expiresAt: number }[];
  /** True when the platform re-signs timestamp/snapshot before they expire (the rollout loop). */
  autoRefresh: boolean;
  releases: { id: string; version: string; createdAt: number; hasSbom: boolean; devices: number }[];
  /** Rollouts not finished (running, paused, scheduled) with their phases. */
  activeRollouts: { id: string; release: string; status: string; phases: { percent: number }[] }[];
  /** What each device in service reports it runs; releaseCreatedAt null when the version is no known release. */
  devices: { deviceId: string; version: string; releaseId: string | null; releaseCreatedAt: number | null }[];
}

export interface VulnerabilityComplianceFacts {
  advisories: number;
  lastImportAt: number | null;
  /** Advisories matched to releases devices run. */
  exposures: {
    advisory: string;
    severity: 'critical' | 'high' | 'medium' | 'low' | 'unknown';
    score: number | null;
    releases: string[];
    devices: string[];
  }[];
}

export interface PrivacyComplianceFacts {
  schemas: {
    name: string;
    topic: string;
    personalFields: { path: string; category: string; retentionMs: number | null; store: string }[];
  }[];
  openRequests: { id: string; kind: string; receivedAt: number; dueAt: number }[];
  controller: { name: string | null; contact: string | null };
  /** Telemetry store patterns, their retention and whether a data schema covers the topics they store. */
  telemetryPatterns: { pattern: string; retentionMs: number; classified: boolean }[];
}

export interface AppComplianceFacts {
  apps: {
    name: string;
    status: string;
    purpose: string | null;
    tokens: { id: string; createdAt: number; expiresAt: number | null; lastUsedAt: number | null }[];
  }[];
}

/** What a source may use to shape its facts: the baseline of the run (devices: its conflict window). */
export interface FactContext {
  baseline: Baseline;
}

/** Each source, read through its module's door (platform.ts builds this). */
export type ComplianceSources = {
  [K in FactSource]: (context: FactContext) => Promise<ComplianceFacts[K]>;
};
