import { baselineDocumentSchema, type Baseline } from '@bulwark/protocol';
import type { CertificateFact, ComplianceFacts } from '../facts.ts';
import type { SecurityLevelRequirement } from '../model.ts';
import { checkCatalog } from './index.ts';
import type { CheckInput, CheckOutcome } from './types.ts';

/**
 * Test fixtures shared by the checks' and the engine's tests: a small, well-run fleet on which every check
 * passes with `healthyBaseline()`, to be mutated one misconfiguration at a time.
 */

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** A fixed instant tests use as "now" (2026-12-01T00:00:00Z). */
export const FIXTURE_NOW = Date.UTC(2026, 11, 1);

const cert = (
  serial: string,
  opts: { subject: string; notBefore: number; notAfter: number },
): CertificateFact => ({
  serial,
  subject: opts.subject,
  notBefore: opts.notBefore,
  notAfter: opts.notAfter,
  keyType: 'ec-p256',
  keyDescription: 'ec-p256',
  publicKeySha256: `spki-${serial}`,
});

function pkiFacts(now: number): ComplianceFacts['pki'] {
  // Owners are subjects (`device:<id>`, `app:<name>`), written out: the fixtures stand for another module's door.
  const owners: Record<string, string> = { 'sensor-1': 'device:sensor-1', 'sensor-2': 'device:sensor-2' };
  const device = (id: string, serial: string) => ({
    ...cert(serial, { subject: `CN=${id}`, notBefore: now - 30 * DAY, notAfter: now + 60 * DAY }),
    deviceId: id,
  });
  const deviceCertificates = [device('sensor-1', '1001'), device('sensor-2', '1002')];
  const app = cert('2001', {
    subject: 'CN=app:dashboard',
    notBefore: now - 10 * DAY,
    notAfter: now + 80 * DAY,
  });
  return {
    ca: [
      cert('01', { subject: 'CN=Bulwark Root CA', notBefore: now - 100 * DAY, notAfter: now + 3650 * DAY }),
    ],
    server: cert('02', { subject: 'CN=bulwark.local', notBefore: now - 10 * DAY, notAfter: now + 355 * DAY }),
    deviceCertValidityMs: 90 * DAY,
    deviceCertificates,
    activeCertificates: [
      ...deviceCertificates.map(({ deviceId, ...c }) => ({ ...c, owner: owners[deviceId] ?? '' })),
      { ...app, owner: 'app:dashboard' },
    ],
  };
}

const listeners: ComplianceFacts['listeners'] = [
  {
    name: 'mqtt',
    port: 8883,
    transport: 'tls',
    authentication: 'mutual-tls-or-app-token',
    minTlsVersion: 'TLSv1.2',
  },
  { name: 'https', port: 8443, transport: 'tls', authentication: 'user-sign-in', minTlsVersion: 'TLSv1.2' },
  {
    name: 'https-device',
    port: 8444,
    transport: 'tls',
    authentication: 'mutual-tls',
    minTlsVersion: 'TLSv1.2',
  },
];

function deviceFacts(now: number): ComplianceFacts['devices'] {
  const base = {
    group: 'sensors',
    status: 'active' as const,
    quarantined: false,
    createdAt: now - 200 * DAY,
  };
  return {
    devices: [
      { ...base, id: 'sensor-1', connected: true, lastSeenAt: now - 60_000, zone: 'plant' },
      { ...base, id: 'sensor-2', connected: false, lastSeenAt: now - 2 * HOUR, zone: 'office' },
      // Registered and awaiting enrolment: no certificate yet, never seen, not a failure.
      {
        ...base,
        id: 'sensor-3',
        group: null,
        status: 'registered',
        connected: false,
        lastSeenAt: null,
        zone: 'office',
        createdAt: now - DAY,
      },
      // Retired: its certificate was revoked with it (pki lists no active one).
      {
        ...base,
        id: 'sensor-9',
        status: 'decommissioned',
        quarantined: false,
        connected: false,
        lastSeenAt: now - 20 * DAY,
        zone: 'plant',
        createdAt: now - 300 * DAY,
      },
    ],
    revokedButConnected: [],
    identityConflicts: [],
    conflictWindowMs: DAY,
  };
}

function userFacts(now: number): ComplianceFacts['users'] {
  const account = {
    disabled: false,
    setupComplete: true,
    createdAt: now - 300 * DAY,
    lastSignInAt: now - DAY,
  };
  return {
    accounts: [
      { ...account, username: 'alice', role: 'admin', secondFactor: true },
      { ...account, username: 'sam', role: 'security-officer', secondFactor: true },
      { ...account, username: 'olga', role: 'operator', secondFactor: false },
      { ...account, username: 'audrey', role: 'auditor', secondFactor: true, lastSignInAt: now - 40 * DAY },
      {
        ...account,
        username: 'vic',
        role: 'viewer',
        secondFactor: false,
        disabled: true,
        lastSignInAt: null,
      },
    ],
    require2faForAll: false,
    lockout: { threshold: 10, lockoutMs: 15 * 60_000 },
    sessions: { idleMs: 30 * 60_000, absoluteMs: 12 * HOUR },
    apiTokens: [
      {
        id: 'tok-ci',
        username: 'olga',
        createdAt: now - 10 * DAY,
        expiresAt: now + 80 * DAY,
        lastUsedAt: now - HOUR,
      },
    ],
  };
}

const auditFacts = (now: number): ComplianceFacts['audit'] => ({
  chain: { ok: true, entries: 1234, brokenAt: null, reason: null },
  exporters: [
    { name: 'siem', kind: 'syslog', enabled: true, lag: 0, failures: 0, lastDeliveredAt: now - 60_000 },
  ],
});

const monitorFacts = (now: number): ComplianceFacts['monitor'] => ({
  profiles: [
    {
      name: 'default',
      attachedTo: ['*'],
      detectors: ['auth_failures', 'message_flood', 'identity_conflict', 'tamper_report'],
      responses: [
        { detector: 'message_flood', action: 'quarantine' },
        { detector: 'tamper_report', action: 'quarantine' },
      ],
    },
    {
      name: 'sensors-strict',
      attachedTo: ['group:sensors'],
      detectors: ['device_silent', 'tamper_report'],
      responses: [],
    },
  ],
  groups: [
    { group: 'sensors', devices: 2 },
    { group: '', devices: 1 },
  ],
  openAlerts: [
    {
      id: 'alert-1',
      detector: 'device_silent',
      severity: 'medium',
      subject: 'device:sensor-2',
      openedAt: now - 3 * DAY,
    },
  ],
});

const accessFacts: ComplianceFacts['access'] = {
  policies: [
    {
      name: 'sensor-telemetry',
      attachedTo: ['group:sensors'],
      statements: [
        { effect: 'allow', actions: ['mqtt:publish'], topics: ['devices/${device.id}/telemetry/#'] },
        { effect: 'deny', actions: ['mqtt:subscribe'], topics: ['#'] },
      ],
    },
    {
      name: 'fleet-connect',
      attachedTo: ['*'],
      statements: [{ effect: 'allow', actions: ['mqtt:connect'], topics: ['#'] }],
    },
  ],
  zones: [
    { name: 'plant', securityLevel: 2, devices: 1 },
    { name: 'office', securityLevel: 1, devices: 2 },
  ],
  conduits: [
    {
      name: 'plant-to-office',
      from: 'plant',
      to: 'office',
      direction: 'one-way',
      topics: ['devices/+/telemetry/#'],
      rateCap: 100,
    },
  ],
  devicesInNoZone: [],
  appGrants: [
    { app: 'dashboard', effect: 'allow', actions: ['mqtt:subscribe'], topics: ['devices/+/telemetry/#'] },
  ],
};

const firewallFacts: ComplianceFacts['firewall'] = {
  limits: {
    connectRate: 20,
    maxConnectionsPerAddress: 200,
    failureThreshold: 10,
    banDurationMs: 10 * 60_000,
    publishRate: 100,
    maxPayloadBytes: 256 * 1024,
    maxSubscriptions: 100,
  },
  activeBans: 0,
};

const firmwareFacts = (now: number): ComplianceFacts['firmware'] => ({
  metadata: [
    { role: 'root', version: 1, expiresAt: now + 300 * DAY },
    { role: 'targets', version: 4, expiresAt: now + 60 * DAY },
    { role: 'snapshot', version: 20, expiresAt: now + 5 * DAY },
    // Re-signed automatically, so a timestamp closer than the warning window is fine while not expired.
    { role: 'timestamp', version: 300, expiresAt: now + 2 * HOUR },
  ],
  autoRefresh: true,
  releases: [
    { id: 'rel-1', version: 'sensor@1.2.0', createdAt: now - 60 * DAY, hasSbom: true, devices: 2 },
    { id: 'rel-2', version: 'sensor@1.3.0', createdAt: now - 2 * DAY, hasSbom: true, devices: 0 },
    { id: 'rel-0', version: 'sensor@0.9.0', createdAt: now - 500 * DAY, hasSbom: false, devices: 0 },
  ],
  activeRollouts: [
    {
      id: 'ro-1',
      release: 'rel-2',
      status: 'running',
      phases: [{ percent: 5 }, { percent: 50 }, { percent: 100 }],
    },
  ],
  devices: [
    { deviceId: 'sensor-1', version: '1.2.0', releaseId: 'rel-1', releaseCreatedAt: now - 60 * DAY },
    { deviceId: 'sensor-2', version: '1.2.0', releaseId: 'rel-1', releaseCreatedAt: now - 60 * DAY },
  ],
});

const vulnerabilityFacts = (now: number): ComplianceFacts['vulnerabilities'] => ({
  advisories: 120,
  lastImportAt: now - 2 * DAY,
  // Below the default threshold (critical): known, tracked, not failing.
  exposures: [
    { advisory: 'OSV-2026-17', severity: 'medium', score: 5.3, releases: ['rel-1'], devices: ['sensor-1'] },
  ],
});

const privacyFacts = (now: number): ComplianceFacts['privacy'] => ({
  schemas: [
    {
      name: 'sensor-location',
      topic: 'devices/+/telemetry/location',
      personalFields: [
        { path: 'lat', category: 'user.location', retentionMs: 90 * DAY, store: 'pseudonymize' },
        { path: 'operator', category: 'user.name', retentionMs: null, store: 'none' },
      ],
    },
  ],
  openRequests: [{ id: 'dsr-1', kind: 'access', receivedAt: now - 2 * DAY, dueAt: now + 28 * DAY }],
  controller: { name: 'Acme Fleet GmbH', contact: 'mailto:dpo@acme.example' },
  telemetryPatterns: [{ pattern: 'devices/+/telemetry/#', retentionMs: 30 * DAY, classified: true }],
});

const appFacts = (now: number): ComplianceFacts['apps'] => ({
  apps: [
    {
      name: 'dashboard',
      status: 'active',
      purpose: 'operations.monitoring',
      tokens: [
        { id: 'apptok-1', createdAt: now - 10 * DAY, expiresAt: now + 80 * DAY, lastUsedAt: now - HOUR },
      ],
    },
    { name: 'legacy', status: 'revoked', purpose: null, tokens: [] },
  ],
});

const attestationFacts = (now: number): ComplianceFacts['attestation'] => ({
  // sensor-1 attests; a key registered an hour ago awaits its credential activation (not yet a failure).
  keys: { bound: 1, pending: 1, oldestPendingAt: now - HOUR },
  standings: { affirming: 1, warning: 0, contraindicated: 0, overdue: 0, none: 1 },
  contraindicated: [],
  overdue: [],
  reportsRejected: 0,
});

const physicalFacts = (): ComplianceFacts['physical'] => ({
  sites: [
    {
      name: 'plant-hall-1',
      owner: 'facility-manager',
      groups: ['sensors'],
      access: 3,
      overdueReviews: 0,
      expired: 0,
      overdue: [],
    },
  ],
  groupsWithoutSite: [],
});

const riskFacts = (now: number): ComplianceFacts['risk'] => ({
  taras: [{ id: 'sensor-node', version: 2, savedAt: now - 30 * DAY }],
  risks: [
    {
      id: 'R-1',
      title: 'Tampering with the sensor enclosure',
      status: 'treating',
      owner: 'device-engineering',
      dueAt: now + 60 * DAY,
      risk: 3,
      baseRisk: 3,
      raised: false,
      reviewDueAt: now + 300 * DAY,
    },
    {
      id: 'R-2',
      title: 'Reading telemetry on the plant network',
      status: 'closed',
      owner: null,
      dueAt: null,
      risk: 2,
      baseRisk: 2,
      raised: false,
      reviewDueAt: now - DAY,
    },
  ],
});

/**
 * A small, well-run fleet: two connected sensors and one awaiting enrolment, two zones joined by a capped
 * conduit, an enabled audit exporter, current firmware with SBOMs, a staged rollout, a sensor that attests,
 * tamper reports answered by quarantine, one site whose access is reviewed. Every check passes on it
 * with `healthyBaseline()`.
 */
export function healthyFacts(now: number): ComplianceFacts {
  return {
    pki: pkiFacts(now),
    listeners: listeners.map((l) => ({ ...l })),
    devices: deviceFacts(now),
    users: userFacts(now),
    audit: auditFacts(now),
    monitor: monitorFacts(now),
    access: structuredClone(accessFacts),
    firewall: structuredClone(firewallFacts),
    firmware: firmwareFacts(now),
    vulnerabilities: vulnerabilityFacts(now),
    privacy: privacyFacts(now),
    apps: appFacts(now),
    attestation: attestationFacts(now),
    physical: physicalFacts(),
    risk: riskFacts(now),
  };
}

/** The built-in baseline plus what only the operator can state: a disclosure contact and a support period. */
export function healthyBaseline(): Baseline {
  return baselineDocumentSchema.parse({
    name: 'test',
    disclosure: { contact: 'mailto:security@acme.example', policyUrl: 'https://acme.example/security' },
    product: { supportPeriodEnd: '2031-12-31', supportPeriodUrl: 'https://acme.example/support' },
  });
}

/** IEC 62443-3-3 levels with a few checks each (cumulative, as securityLevelRequirements returns them). */
export const securityLevelsFixture: readonly SecurityLevelRequirement[] = [
  { level: 1, checks: ['net.plaintext-listener', 'net.unauthenticated-listener'] },
  {
    level: 2,
    checks: ['net.plaintext-listener', 'net.unauthenticated-listener', 'accounts.privileged-second-factor'],
  },
  {
    level: 3,
    checks: [
      'net.plaintext-listener',
      'net.unauthenticated-listener',
      'accounts.privileged-second-factor',
      'audit.exported',
      'monitor.group-profiles',
    ],
  },
  {
    level: 4,
    checks: [
      'net.plaintext-listener',
      'net.unauthenticated-listener',
      'accounts.privileged-second-factor',
      'audit.exported',
      'monitor.group-profiles',
      'pki.shared-keys',
    ],
  },
];

/** Runs the catalog as the engine does (phase 1, then phase 2 reading phase 1), without error handling. */
export function runCatalog(
  input: Omit<CheckInput, 'results' | 'securityLevels'> & { securityLevels?: CheckInput['securityLevels'] },
): Map<string, CheckOutcome> {
  const results = new Map<string, CheckOutcome>();
  const securityLevels = input.securityLevels ?? securityLevelsFixture;
  for (const phase of [1, 2])
    for (const check of checkCatalog.filter((c) => (c.phase ?? 1) === phase))
      results.set(check.id, check.run({ ...input, results, securityLevels }));
  return results;
}

/** The ids of the failing checks, in catalog order. */
export const failingChecks = (outcomes: ReadonlyMap<string, CheckOutcome>) =>
  [...outcomes].filter(([, o]) => o.status === 'fail').map(([id]) => id);
