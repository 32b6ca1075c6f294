import type { Baseline } from '@bulwark/protocol';
import { describe, expect, it } from 'vitest';
import type { ComplianceFacts } from '../facts.ts';
import { FIXTURE_NOW as now, failingChecks, healthyBaseline, healthyFacts, runCatalog } from './fixtures.ts';
import { checkIds, type CheckId } from './types.ts';

const DAY = 86_400_000;
const HOUR = 3_600_000;

function at<T>(list: T[], index: number): T {
  const item = list[index];
  if (item === undefined) throw new Error(`fixture has no item ${index}`);
  return item;
}

interface Mutation {
  name: string;
  mutate: (f: ComplianceFacts, b: Baseline) => void;
  /** The checks that must fail, each with its evidence ids (sorted); every other check must pass. */
  fails: Partial<Record<CheckId, string[]>>;
}

/** Security levels drop when a check a level needs fails (securityLevelsFixture): plant targets SL 2, office SL 1. */
const belowLevel1 = { 'zones.security-level': ['office', 'plant'] };
const belowLevel2 = { 'zones.security-level': ['plant'] };

const mutations: Mutation[] = [
  // pki
  {
    name: 'CA within its expiry window',
    mutate: (f) => void (at(f.pki.ca, 0).notAfter = now + 100 * DAY),
    fails: { 'pki.ca-expiry': ['01'] },
  },
  {
    name: 'CA expired',
    mutate: (f) => void (at(f.pki.ca, 0).notAfter = now - DAY),
    fails: { 'pki.ca-expiry': ['01'] },
  },
  {
    name: 'server certificate near expiry',
    mutate: (f) => void (f.pki.server && (f.pki.server.notAfter = now + 10 * DAY)),
    fails: { 'pki.server-certificate-expiry': ['02'] },
  },
  {
    name: 'no server certificate yet (before first start)',
    mutate: (f) => void (f.pki.server = null),
    fails: {},
  },
  {
    name: 'device certificate within its expiry window',
    mutate: (f) => void (at(f.pki.deviceCertificates, 0).notAfter = now + 5 * DAY),
    fails: { 'pki.device-certificate-expiry': ['sensor-1'] },
  },
  {
    name: 'a shorter deviceExpiryWarning in the baseline',
    mutate: (f, b) => {
      at(f.pki.deviceCertificates, 0).notAfter = now + 5 * DAY;
      b.certificates.deviceExpiryWarning = 3 * DAY;
    },
    fails: {},
  },
  {
    name: 'device certificate validity above the baseline maximum',
    mutate: (f) => void (f.pki.deviceCertValidityMs = 400 * DAY),
    fails: { 'pki.device-certificate-lifetime': ['pki.deviceCertValidity'] },
  },
  {
    name: 'baseline maximum lifetime below the issued certificates',
    mutate: (_f, b) => void (b.certificates.deviceMaxLifetime = 30 * DAY),
    fails: { 'pki.device-certificate-lifetime': ['pki.deviceCertValidity', 'sensor-1', 'sensor-2'] },
  },
  {
    name: 'an app certificate with a weak RSA key',
    mutate: (f) => {
      const c = at(f.pki.activeCertificates, 2);
      c.keyType = null;
      c.keyDescription = 'rsa-1024';
    },
    fails: { 'pki.accepted-key-types': ['2001'] },
  },
  {
    name: 'baseline accepting only ec-p384',
    mutate: (_f, b) => void (b.certificates.acceptedKeyTypes = ['ec-p384']),
    fails: { 'pki.accepted-key-types': ['01', '02', '1001', '1002', '2001'] },
  },
  {
    name: 'two devices sharing one key',
    mutate: (f) =>
      void (at(f.pki.activeCertificates, 1).publicKeySha256 = at(
        f.pki.activeCertificates,
        0,
      ).publicKeySha256),
    fails: { 'pki.shared-keys': ['1001', '1002'] },
  },
  {
    name: 'an active device without a certificate',
    mutate: (f) => void (f.pki.deviceCertificates = f.pki.deviceCertificates.slice(0, 1)),
    fails: { 'pki.devices-without-certificate': ['sensor-2'] },
  },
  // listeners
  {
    name: 'the development listener enabled (plaintext, no authentication)',
    mutate: (f) =>
      void f.listeners.push({
        name: 'mqtt-dev',
        port: 1883,
        transport: 'tcp',
        authentication: 'none',
        minTlsVersion: null,
      }),
    fails: {
      'net.plaintext-listener': ['mqtt-dev'],
      'net.unauthenticated-listener': ['mqtt-dev'],
      ...belowLevel1,
    },
  },
  {
    name: 'the console served over plaintext',
    mutate: (f) => {
      const https = at(f.listeners, 1);
      https.transport = 'tcp';
      https.minTlsVersion = null;
    },
    fails: { 'net.plaintext-listener': ['https'], ...belowLevel1 },
  },
  {
    name: 'TLS 1.1 accepted',
    mutate: (f) => void (at(f.listeners, 1).minTlsVersion = 'TLSv1.1'),
    fails: { 'net.tls-version': ['https'] },
  },
  {
    name: 'the MQTT listener without client certificates',
    mutate: (f) => void (at(f.listeners, 0).authentication = 'user-sign-in'),
    fails: { 'net.device-mutual-tls': ['mqtt'] },
  },
  // devices
  {
    name: 'a device silent for 31 days',
    mutate: (f) => void (at(f.devices.devices, 1).lastSeenAt = now - 31 * DAY),
    fails: { 'devices.not-seen': ['sensor-2'] },
  },
  {
    name: 'an active device never seen since long ago',
    mutate: (f) => void (at(f.devices.devices, 1).lastSeenAt = null),
    fails: { 'devices.not-seen': ['sensor-2'] },
  },
  {
    name: 'a silent device that is connected now',
    mutate: (f) => {
      const d = at(f.devices.devices, 1);
      d.lastSeenAt = now - 31 * DAY;
      d.connected = true;
    },
    fails: {},
  },
  {
    name: 'an identity conflict',
    mutate: (f) =>
      void f.devices.identityConflicts.push({
        clientId: 'sensor-1',
        deviceId: 'sensor-1',
        count: 3,
        lastAt: now - HOUR,
      }),
    fails: { 'devices.identity-conflicts': ['sensor-1'] },
  },
  {
    name: 'a revoked device still connected',
    mutate: (f) => void f.devices.revokedButConnected.push({ deviceId: 'sensor-9', serials: ['1009'] }),
    fails: { 'devices.revoked-still-connected': ['sensor-9'] },
  },
  {
    name: 'a quarantined device',
    mutate: (f) => void (at(f.devices.devices, 0).quarantined = true),
    fails: { 'devices.quarantined': ['sensor-1'] },
  },
  // accounts
  {
    name: "a security officer's second factor removed",
    mutate: (f) => void (at(f.users.accounts, 1).secondFactor = false),
    fails: { 'accounts.privileged-second-factor': ['sam'], ...belowLevel2 },
  },
  {
    name: 'an admin without a second factor who has not finished setup',
    mutate: (f) => {
      const a = at(f.users.accounts, 0);
      a.secondFactor = false;
      a.setupComplete = false;
    },
    fails: {},
  },
  {
    name: 'baseline requiring a second factor for all',
    mutate: (_f, b) => void (b.accounts.secondFactor = 'all'),
    fails: { 'accounts.second-factor-policy': ['auth.require2faForAll', 'olga'] },
  },
  {
    name: 'baseline requiring a second factor for all, met',
    mutate: (f, b) => {
      b.accounts.secondFactor = 'all';
      f.users.require2faForAll = true;
      at(f.users.accounts, 2).secondFactor = true;
    },
    fails: {},
  },
  {
    name: 'a dormant account',
    mutate: (f) => void (at(f.users.accounts, 3).lastSignInAt = now - 100 * DAY),
    fails: { 'accounts.dormant': ['audrey'] },
  },
  {
    name: 'an account used only through its API token (not dormant)',
    mutate: (f) => void (at(f.users.accounts, 2).lastSignInAt = now - 200 * DAY),
    fails: {},
  },
  {
    name: 'an account whose sign-in and API token are both old',
    mutate: (f) => {
      at(f.users.accounts, 2).lastSignInAt = now - 200 * DAY;
      at(f.users.apiTokens, 0).lastUsedAt = now - 100 * DAY;
    },
    fails: { 'accounts.dormant': ['olga'] },
  },
  {
    name: 'an account whose API token was never used, not signed in for long',
    mutate: (f) => {
      at(f.users.accounts, 2).lastSignInAt = now - 200 * DAY;
      at(f.users.apiTokens, 0).lastUsedAt = null;
    },
    fails: { 'accounts.dormant': ['olga'] },
  },
  {
    name: 'a shorter dormantAfter in the baseline',
    mutate: (_f, b) => void (b.accounts.dormantAfter = 30 * DAY),
    fails: { 'accounts.dormant': ['audrey'] },
  },
  {
    name: 'lockout threshold too high',
    mutate: (f) => void (f.users.lockout.threshold = 20),
    fails: { 'accounts.lockout': ['auth.lockoutThreshold'] },
  },
  {
    name: 'lockout too short',
    mutate: (f) => void (f.users.lockout.lockoutMs = 60_000),
    fails: { 'accounts.lockout': ['auth.lockoutDuration'] },
  },
  {
    name: 'idle sessions kept for two hours',
    mutate: (f) => void (f.users.sessions.idleMs = 2 * HOUR),
    fails: { 'accounts.session-limits': ['auth.sessionIdle'] },
  },
  {
    name: 'sessions lasting a day',
    mutate: (f) => void (f.users.sessions.absoluteMs = 24 * HOUR),
    fails: { 'accounts.session-limits': ['auth.sessionAbsolute'] },
  },
  {
    name: 'an API token valid 400 days',
    mutate: (f) => {
      const t = at(f.users.apiTokens, 0);
      t.expiresAt = t.createdAt + 400 * DAY;
    },
    fails: { 'accounts.api-token-lifetime': ['tok-ci'] },
  },
  {
    name: 'more admins than the baseline allows',
    mutate: (f, b) => {
      b.accounts.maxAdmins = 1;
      f.users.accounts.push({ ...at(f.users.accounts, 0), username: 'bob' });
    },
    fails: { 'accounts.admin-count': ['alice', 'bob'] },
  },
  {
    name: 'no enabled admin',
    mutate: (f) => void (at(f.users.accounts, 0).disabled = true),
    fails: { 'accounts.admin-count': ['admins'] },
  },
  // audit
  {
    name: 'the audit chain broken',
    mutate: (f) => void (f.audit.chain = { ok: false, entries: 1234, brokenAt: 17, reason: 'hash mismatch' }),
    fails: { 'audit.chain-intact': ['entry 17'] },
  },
  {
    name: 'the only audit channel disabled',
    mutate: (f) => void (at(f.audit.exporters, 0).enabled = false),
    fails: { 'audit.exported': ['audit.requireExport'] },
  },
  {
    name: 'no channel, export not required by the baseline',
    mutate: (f, b) => {
      f.audit.exporters = [];
      b.audit.requireExport = false;
    },
    fails: {},
  },
  {
    name: 'an audit channel far behind',
    mutate: (f) => void (at(f.audit.exporters, 0).lag = 20_000),
    fails: { 'audit.export-healthy': ['siem'] },
  },
  {
    name: 'an audit channel failing for two hours',
    mutate: (f) =>
      Object.assign(at(f.audit.exporters, 0), { failures: 3, lag: 5, lastDeliveredAt: now - 2 * HOUR }),
    fails: { 'audit.export-healthy': ['siem'] },
  },
  // monitoring
  {
    name: 'the default detection profile deleted',
    mutate: (f) => void (f.monitor.profiles = f.monitor.profiles.slice(1)),
    fails: {
      'monitor.group-profiles': ['(no group)', 'sensors'],
      'monitor.automatic-response': ['*'],
      'physical.tamper-response': ['*'],
    },
  },
  {
    name: 'a group requiring a profile that does not exist',
    mutate: (_f, b) =>
      void (b.monitoring.requiredProfiles = { '*': ['default'], sensors: ['sensors-strict', 'ot-strict'] }),
    fails: { 'monitor.group-profiles': ['sensors'] },
  },
  {
    name: 'a required profile with every detector off',
    mutate: (f) => void (at(f.monitor.profiles, 0).detectors = []),
    // tamper_report is off too: the profile no longer turns tamper reports into alerts anywhere.
    fails: { 'monitor.group-profiles': ['(no group)', 'sensors'], 'physical.tamper-response': ['default'] },
  },
  {
    name: 'no automatic response',
    mutate: (f) => void (at(f.monitor.profiles, 0).responses = []),
    fails: { 'monitor.automatic-response': ['default'], 'physical.tamper-response': ['default'] },
  },
  {
    name: 'a critical alert open for two days',
    mutate: (f) =>
      void f.monitor.openAlerts.push({
        id: 'alert-2',
        detector: 'message_flood',
        severity: 'critical',
        subject: 'device:sensor-1',
        openedAt: now - 2 * DAY,
      }),
    fails: { 'monitor.open-alerts': ['alert-2'] },
  },
  {
    name: 'baseline alert severity lowered to medium',
    mutate: (_f, b) => void (b.monitoring.alertSeverity = 'medium'),
    fails: { 'monitor.open-alerts': ['alert-1'] },
  },
  // access and zones
  {
    name: 'a device policy granting every device’s telemetry',
    mutate: (f) => void (at(at(f.access.policies, 0).statements, 0).topics = ['devices/+/telemetry/#']),
    fails: { 'access.wildcard-device-grants': ['sensor-telemetry'] },
  },
  {
    name: 'a device policy granting +/+/commands',
    mutate: (f) => void (at(at(f.access.policies, 0).statements, 0).topics = ['+/+/commands']),
    fails: { 'access.wildcard-device-grants': ['sensor-telemetry'] },
  },
  {
    name: 'an app granted #',
    mutate: (f) => void (at(f.access.appGrants, 0).topics = ['#']),
    fails: { 'access.app-broad-grants': ['dashboard'] },
  },
  {
    name: 'a policy on all devices allowing # for subscribe',
    mutate: (f) =>
      void (at(at(f.access.policies, 1).statements, 0).actions = ['mqtt:connect', 'mqtt:subscribe']),
    fails: {
      'access.deny-by-default': ['fleet-connect'],
      'access.wildcard-device-grants': ['fleet-connect'],
    },
  },
  {
    name: 'a policy on all devices allowing +/# for publish',
    mutate: (f) =>
      void (at(f.access.policies, 1).statements = [
        { effect: 'allow', actions: ['mqtt:connect', 'mqtt:publish'], topics: ['+/#'] },
      ]),
    fails: {
      'access.deny-by-default': ['fleet-connect'],
      'access.wildcard-device-grants': ['fleet-connect'],
    },
  },
  {
    name: 'a device in no zone',
    mutate: (f) => void (f.access.devicesInNoZone = ['sensor-3']),
    fails: { 'zones.device-coverage': ['sensor-3'] },
  },
  {
    name: 'no zones while the baseline requires them',
    mutate: (f, b) => {
      f.access = {
        ...f.access,
        zones: [],
        conduits: [],
        devicesInNoZone: ['sensor-1', 'sensor-2', 'sensor-3'],
      };
      b.zones.requireZoneForEveryDevice = true;
    },
    fails: { 'zones.device-coverage': ['sensor-1', 'sensor-2', 'sensor-3'] },
  },
  {
    name: 'no zones, not required',
    mutate: (f) =>
      void (f.access = {
        ...f.access,
        zones: [],
        conduits: [],
        devicesInNoZone: ['sensor-1', 'sensor-2', 'sensor-3'],
      }),
    fails: {},
  },
  {
    name: 'zones without conduits',
    mutate: (f) => void (f.access.conduits = []),
    fails: { 'zones.without-conduits': ['office', 'plant'] },
  },
  {
    name: 'an any-to-any conduit',
    mutate: (f) => void (at(f.access.conduits, 0).topics = ['+/#']),
    fails: { 'zones.any-to-any-conduits': ['plant-to-office'] },
  },
  {
    name: 'a conduit into an SL 2 zone without a rate cap',
    mutate: (f) => void (at(f.access.conduits, 0).rateCap = null),
    fails: { 'zones.conduit-rate-caps': ['plant-to-office'] },
  },
  {
    name: 'an uncapped conduit between SL 1 zones',
    mutate: (f) => {
      at(f.access.conduits, 0).rateCap = null;
      at(f.access.zones, 0).securityLevel = 1;
    },
    fails: {},
  },
  {
    name: 'an uncapped conduit into a zone the baseline targets at SL 3',
    mutate: (f, b) => {
      at(f.access.conduits, 0).rateCap = null;
      at(f.access.zones, 0).securityLevel = 1;
      b.zones.targets = { office: 3 };
    },
    fails: { 'zones.conduit-rate-caps': ['plant-to-office'] },
  },
  {
    name: 'a zone targeting SL 4 while shared keys block level 4',
    mutate: (f, b) => {
      at(f.pki.activeCertificates, 1).publicKeySha256 = at(f.pki.activeCertificates, 0).publicKeySha256;
      b.zones.targets = { plant: 4 };
    },
    fails: { 'pki.shared-keys': ['1001', '1002'], 'zones.security-level': ['plant'] },
  },
  // firewall
  {
    name: 'a loose connect rate',
    mutate: (f) => void (f.firewall.limits.connectRate = 500),
    fails: { 'firewall.connection-limits': ['firewall.connectRate'] },
  },
  {
    name: 'many connections per address',
    mutate: (f) => void (f.firewall.limits.maxConnectionsPerAddress = 5000),
    fails: { 'firewall.connection-limits': ['firewall.maxConnectionsPerAddress'] },
  },
  {
    name: 'large payloads',
    mutate: (f) => void (f.firewall.limits.maxPayloadBytes = 2 * 1024 * 1024),
    fails: { 'firewall.publish-limits': ['firewall.maxPayloadBytes'] },
  },
  {
    name: 'a loose publish rate',
    mutate: (f) => void (f.firewall.limits.publishRate = 5000),
    fails: { 'firewall.publish-limits': ['firewall.publishRate'] },
  },
  // firmware and organisation
  {
    name: 'firmware with a critical advisory deployed',
    mutate: (f) =>
      void f.vulnerabilities.exposures.push({
        advisory: 'OSV-2026-99',
        severity: 'critical',
        score: 9.8,
        releases: ['rel-1'],
        devices: ['sensor-1', 'sensor-2'],
      }),
    fails: { 'firmware.known-vulnerabilities': ['sensor-1', 'sensor-2'] },
  },
  {
    name: 'baseline vulnerability threshold lowered to medium',
    mutate: (_f, b) => void (b.firmware.vulnerabilitySeverity = 'medium'),
    fails: { 'firmware.known-vulnerabilities': ['sensor-1'] },
  },
  {
    name: 'targets metadata about to expire',
    mutate: (f) => void (at(f.firmware.metadata, 1).expiresAt = now + HOUR),
    fails: { 'firmware.metadata-expiry': ['targets'] },
  },
  {
    name: 'timestamp near expiry without automatic re-signing',
    mutate: (f) => void (f.firmware.autoRefresh = false),
    fails: { 'firmware.metadata-expiry': ['timestamp'] },
  },
  {
    name: 'timestamp expired despite automatic re-signing',
    mutate: (f) => void (at(f.firmware.metadata, 3).expiresAt = now - 1),
    fails: { 'firmware.metadata-expiry': ['timestamp'] },
  },
  {
    name: 'a rollout to the whole fleet at once',
    mutate: (f) => void (at(f.firmware.activeRollouts, 0).phases = [{ percent: 100 }]),
    fails: { 'firmware.staged-rollouts': ['ro-1'] },
  },
  {
    name: 'an unstaged rollout when the baseline allows it',
    mutate: (f, b) => {
      at(f.firmware.activeRollouts, 0).phases = [{ percent: 100 }];
      b.firmware.requireStagedRollouts = false;
    },
    fails: {},
  },
  {
    name: 'a device on firmware older than a year',
    mutate: (f) => void (at(f.firmware.devices, 1).releaseCreatedAt = now - 400 * DAY),
    fails: { 'firmware.max-age': ['sensor-2'] },
  },
  {
    name: 'a deployed release without SBOM',
    mutate: (f) => void (at(f.firmware.releases, 0).hasSbom = false),
    fails: { 'firmware.sbom': ['rel-1'] },
  },
  {
    name: 'a rollout of a release without SBOM',
    mutate: (f) => void (at(f.firmware.activeRollouts, 0).release = 'rel-0'),
    fails: { 'firmware.sbom': ['rel-0'] },
  },
  {
    name: 'no advisories imported',
    mutate: (f) => void (f.vulnerabilities = { advisories: 0, lastImportAt: null, exposures: [] }),
    fails: { 'firmware.advisories-imported': ['import'] },
  },
  {
    name: 'advisories last imported 40 days ago',
    mutate: (f) => void (f.vulnerabilities.lastImportAt = now - 40 * DAY),
    fails: { 'firmware.advisories-imported': ['import'] },
  },
  {
    name: 'no support period published',
    mutate: (_f, b) => void (b.product.supportPeriodEnd = undefined),
    fails: { 'org.support-period': ['product.supportPeriodEnd'] },
  },
  {
    name: 'the support period ended yesterday',
    mutate: (_f, b) => void (b.product.supportPeriodEnd = '2026-11-30'),
    fails: { 'org.support-period': ['product.supportPeriodEnd'] },
  },
  {
    name: 'the support period ends today',
    mutate: (_f, b) => void (b.product.supportPeriodEnd = '2026-12-01'),
    fails: {},
  },
  {
    name: 'no disclosure contact',
    mutate: (_f, b) => void (b.disclosure.contact = undefined),
    fails: { 'org.disclosure-contact': ['disclosure.contact'] },
  },
  // privacy and apps
  {
    name: 'personal data kept 400 days',
    mutate: (f) => void (at(at(f.privacy.schemas, 0).personalFields, 0).retentionMs = 400 * DAY),
    fails: { 'privacy.retention-limits': ['sensor-location'] },
  },
  {
    name: 'personal data stored without retention',
    mutate: (f) => void (at(at(f.privacy.schemas, 0).personalFields, 1).store = 'plain'),
    fails: { 'privacy.retention-limits': ['sensor-location'] },
  },
  {
    name: 'telemetry kept forever',
    mutate: (f) => void (at(f.privacy.telemetryPatterns, 0).retentionMs = 0),
    fails: { 'privacy.telemetry-retention': ['devices/+/telemetry/#'] },
  },
  {
    name: 'an overdue data-subject request',
    mutate: (f) => void (at(f.privacy.openRequests, 0).dueAt = now - 1),
    fails: { 'privacy.overdue-requests': ['dsr-1'] },
  },
  {
    name: 'no controller contact',
    mutate: (f) => void (f.privacy.controller.contact = null),
    fails: { 'privacy.controller-named': ['privacy.controller.contact'] },
  },
  {
    name: 'unclassified stored telemetry',
    mutate: (f) =>
      void f.privacy.telemetryPatterns.push({
        pattern: 'devices/+/debug',
        retentionMs: 7 * DAY,
        classified: false,
      }),
    fails: { 'privacy.unclassified-telemetry': ['devices/+/debug'] },
  },
  {
    name: 'an app without purpose',
    mutate: (f) => void (at(f.apps.apps, 0).purpose = null),
    fails: { 'apps.purpose-declared': ['dashboard'] },
  },
  {
    name: 'an app token that never expires',
    mutate: (f) => void (at(at(f.apps.apps, 0).tokens, 0).expiresAt = null),
    fails: { 'apps.token-expiry': ['apptok-1'] },
  },
  // physical security and attestation
  {
    name: 'a device contraindicated and one overdue',
    mutate: (f) => {
      f.attestation.standings = { affirming: 0, warning: 0, contraindicated: 1, overdue: 1, none: 1 };
      f.attestation.contraindicated = ['sensor-1'];
      f.attestation.overdue = ['sensor-2'];
    },
    fails: { 'attestation.no-contraindicated': ['sensor-1', 'sensor-2'] },
  },
  {
    name: 'more held devices than the facts list',
    mutate: (f) => {
      f.attestation.standings = { affirming: 0, warning: 0, contraindicated: 23, overdue: 0, none: 1 };
      f.attestation.contraindicated = Array.from({ length: 20 }, (_, i) => `pump-${i + 10}`);
    },
    fails: {
      'attestation.no-contraindicated': [
        ...Array.from({ length: 20 }, (_, i) => `pump-${i + 10}`),
        '…',
      ].sort(),
    },
  },
  {
    name: 'an attestation key pending for two days',
    mutate: (f) => void (f.attestation.keys.oldestPendingAt = now - 2 * DAY),
    fails: { 'attestation.keys-bound': ['pending'] },
  },
  {
    name: 'tamper reports raise alerts but nothing contains the device',
    mutate: (f) =>
      void (at(f.monitor.profiles, 0).responses = [{ detector: 'message_flood', action: 'quarantine' }]),
    fails: { 'physical.tamper-response': ['default'] },
  },
  {
    name: 'a tamper report only notifies',
    mutate: (f) =>
      void (at(f.monitor.profiles, 0).responses = [
        { detector: 'message_flood', action: 'quarantine' },
        { detector: 'tamper_report', action: 'notify' },
      ]),
    fails: { 'physical.tamper-response': ['default'] },
  },
  {
    name: 'one response quarantining on every detector (*)',
    mutate: (f) => void (at(f.monitor.profiles, 0).responses = [{ detector: '*', action: 'quarantine' }]),
    fails: {},
  },
  {
    name: 'a group profile turning tamper_report off',
    mutate: (f) => void (at(f.monitor.profiles, 1).detectors = ['device_silent']),
    fails: { 'physical.tamper-response': ['sensors-strict'] },
  },
  {
    name: 'a lost device whose certificate was not revoked, and a decommissioned one',
    mutate: (f) => {
      // A lost device is held in quarantine until found (devices.quarantined lists it).
      Object.assign(at(f.devices.devices, 1), { status: 'lost', quarantined: true, connected: false });
      f.pki.activeCertificates.push({
        ...at(f.pki.activeCertificates, 0),
        serial: '1009',
        subject: 'CN=sensor-9',
        publicKeySha256: 'spki-1009',
        owner: 'device:sensor-9',
      });
    },
    fails: { 'physical.lost-revoked': ['1002', '1009'], 'devices.quarantined': ['sensor-2'] },
  },
  {
    name: 'site access past its review date',
    mutate: (f) => {
      const site = at(f.physical.sites, 0);
      site.overdueReviews = 1;
      site.overdue = [{ id: 'acc-7', role: 'maintenance', reviewAt: now - 3 * DAY }];
    },
    fails: { 'physical.site-access-reviewed': ['acc-7'] },
  },
  {
    name: 'a site without an owner',
    mutate: (f) => void (at(f.physical.sites, 0).owner = ''),
    fails: { 'physical.site-access-reviewed': ['plant-hall-1'] },
  },
  {
    name: 'no site recorded (the baseline does not require sites)',
    mutate: (f) => void (f.physical = { sites: [], groupsWithoutSite: ['sensors'] }),
    fails: {},
  },
  {
    name: 'two security reports refused',
    mutate: (f) => void (f.attestation.reportsRejected = 2),
    fails: { 'physical.reports-verified': ['rejected'] },
  },
  // risk
  {
    name: 'no TARA saved with the fleet',
    mutate: (f) => void (f.risk.taras = []),
    fails: { 'risk.tara-recorded': ['none'] },
  },
  {
    name: 'an open risk past its re-assessment date (a closed one is not counted)',
    mutate: (f) => void (at(f.risk.risks, 0).reviewDueAt = now - DAY),
    fails: { 'risk.tara-recorded': ['R-1'] },
  },
  {
    name: 'an open risk without an owner',
    mutate: (f) => void (at(f.risk.risks, 0).owner = null),
    fails: { 'risk.treatment-current': ['R-1'] },
  },
  {
    name: 'an open risk past its due date',
    mutate: (f) => void (at(f.risk.risks, 0).dueAt = now - DAY),
    fails: { 'risk.treatment-current': ['R-1'] },
  },
  {
    name: 'an open risk raised by live facts since its assessment',
    mutate: (f) => void Object.assign(at(f.risk.risks, 0), { risk: 5, raised: true }),
    fails: { 'risk.treatment-current': ['R-1'] },
  },
  {
    name: 'a raised risk its owner accepted at the higher value',
    mutate: (f) => void Object.assign(at(f.risk.risks, 0), { risk: 5, raised: true, status: 'accepted' }),
    fails: {},
  },
];

describe('each misconfiguration fails exactly the expected checks', () => {
  it.each(mutations)('$name', ({ mutate, fails }) => {
    const facts = healthyFacts(now);
    const baseline = healthyBaseline();
    mutate(facts, baseline);
    const outcomes = runCatalog({ facts, baseline, now });
    expect(failingChecks(outcomes).sort()).toEqual(Object.keys(fails).sort());
    for (const [id, ids] of Object.entries(fails)) {
      const outcome = outcomes.get(id);
      expect(outcome?.evidence.map((e) => e.id).sort(), id).toEqual(ids);
      for (const e of outcome?.evidence ?? []) expect(e.detail.length, id).toBeGreaterThan(5);
    }
  });

  it('covers every check with at least one failing mutation', () => {
    const covered = new Set(mutations.flatMap((m) => Object.keys(m.fails)));
    expect(checkIds.filter((id) => !covered.has(id))).toEqual([]);
  });
});

describe('accounts.dormant names the newest use', () => {
  it('a sign-in, an API token, or neither', () => {
    const facts = healthyFacts(now);
    const baseline = healthyBaseline();
    at(facts.users.accounts, 2).lastSignInAt = now - 200 * DAY;
    at(facts.users.apiTokens, 0).lastUsedAt = now - 100 * DAY;
    at(facts.users.accounts, 3).lastSignInAt = now - 120 * DAY;
    at(facts.users.accounts, 1).lastSignInAt = null;
    facts.users.apiTokens.push({
      id: 'tok-old',
      username: 'olga',
      createdAt: now - 150 * DAY,
      expiresAt: now + 10 * DAY,
      lastUsedAt: now - 140 * DAY,
    });
    const details = runCatalog({ facts, baseline, now }).get('accounts.dormant')?.evidence;
    const detail = (id: string) => details?.find((e) => e.id === id)?.detail;
    expect(detail('olga')).toMatch(/last used through API token tok-ci on /);
    expect(detail('audrey')).toMatch(/last signed in /);
    expect(detail('sam')).toMatch(/never signed in nor used an API token/);
  });
});
