import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { api, BulwarkError, est, tufPaths } from '@bulwark/protocol';
import { can, createAuthz, requestVisibility, type Authz } from './authz/index.ts';
import { accessRoutes, createAccessService, type AccessService } from './access/index.ts';
import { appRoutes, createAppService, type AppService } from './apps/index.ts';
import { commandRoutes, createCommands, type Commands } from './commands/index.ts';
import { CONSOLE_DIST, consoleRoutes } from './console/index.ts';
import {
  createBroker,
  createIngressRouter,
  createRetainedStore,
  createSqlSessionJournal,
  type Broker,
  type ListenerFacts,
} from './broker/index.ts';
import { createFirewallService, firewallRoutes, type FirewallService } from './firewall/index.ts';
import { describeConfig, type Config } from './config/index.ts';
import {
  createDeviceService,
  deviceRoutes,
  eraseAcross,
  type Device,
  type DeviceService,
} from './devices/index.ts';
import {
  attestationDeviceRoutes,
  attestationRoutes,
  createAttestationService,
  createPhysicalSites,
  physicalRoutes,
  type AttestationService,
  type PhysicalSites,
} from './attestation/index.ts';
import {
  authRoutes,
  createThrottle,
  createUserService,
  createWebauthnService,
  userRoutes,
  webauthnOrigins,
  webauthnRoutes,
  type UserService,
  type WebauthnService,
} from './users/index.ts';
import {
  createAuditLog,
  createEventBus,
  createEventRateLimit,
  auditRoutes,
  auditChainFacts,
  latestPerSubject,
  type AuditEntry,
  type AuditLog,
  type EventBus,
  type Subject,
} from './events/index.ts';
import { createFirmware, firmwareRoutes, tufRoutes, type Firmware } from './firmware/index.ts';
import {
  baselineRoutes,
  checkIds,
  complianceRoutes,
  createBaselineService,
  createCompliance,
  frameworkClauses,
  type Compliance,
  type ComplianceSources,
} from './compliance/index.ts';
import { createRisk, registerRoutes, riskRoutes, type Risk } from './risk/index.ts';
import {
  createTelemetryService,
  createTelemetryStage,
  telemetryRoutes,
  type TelemetryService,
} from './telemetry/index.ts';
import { createNotifyService, notifyNodeId, notifyRoutes, type NotifyService } from './notify/index.ts';
import { bulkRoutes, createBulkOperations, type BulkOperations } from './operations/index.ts';
import {
  createPrivacyService,
  privacyRoutes,
  type AuditFilter,
  type PrivacyService,
  type PrivacySources,
} from './privacy/index.ts';
import {
  createHttpApp,
  createDeviceApp,
  deviceListenerRedirects,
  httpListenerFacts,
  type RouteEntry,
} from './http/index.ts';
import {
  createMetricsRegistry,
  createMonitor,
  installDefaultProfile,
  monitorRoutes,
  type Monitor,
} from './monitor/index.ts';
import {
  createPkiService,
  deviceCertificateSummaries,
  estReenrollRoutes,
  estRoutes,
  loadOrCreatePki,
  revokeDeviceCertificates,
  type PkiService,
} from './pki/index.ts';
import { zoneOf } from './policy/index.ts';
import { AUDIT_HEAD_FILE, CA_CHAIN_FILE, openDataDir } from './data-dir.ts';
import {
  healthRoutes,
  isBusy,
  isConnectionLoss,
  isUniqueViolation,
  reportStoreOutages,
  type Store,
} from './store/index.ts';
import type { SecretBox } from './secrets/index.ts';
import { VERSION } from './version.ts';

export { SQLITE_FILE, CA_CHAIN_FILE, AUDIT_HEAD_FILE } from './data-dir.ts';

export interface Platform {
  config: Config;
  logger: Logger;
  store: Store;
  audit: AuditLog;
  events: EventBus;
  devices: DeviceService;
  users: UserService;
  /** Roles, permissions and the one visibility check (routes, SSE streams, CLI). */
  authz: Authz;
  /** Passkeys (WebAuthn): the server's routes and the CLI's credential management. */
  webauthn: WebauthnService;
  access: AccessService;
  /** Applications: principals with grants, tokens and certificates (docs/apps.md). */
  apps: AppService;
  firewall: FirewallService;
  firmware: Firmware;
  /** Known vulnerabilities (OSV advisories × SBOMs) and fleet exposure. */
  risk: Risk;
  /** Device metrics, detectors, alerts and responses. */
  monitor: Monitor;
  /** Notification channels (webhooks, syslog/CEF) following the audit log. */
  notify: NotifyService;
  /** The optional telemetry store: topic patterns, stored device messages, retention. */
  telemetry: TelemetryService;
  /** Commands to devices, through the audit log (any process sends; the server publishes). */
  commands: Commands;
  /** Data schemas, data subjects and consent, GDPR requests, retention (docs/privacy.md). */
  privacy: PrivacyService;
  /** TPM attestation and signed tamper and health reports (docs/physical-security.md). */
  attestation: AttestationService;
  /** Sites and who may enter them (docs/physical-security.md). */
  physical: PhysicalSites;
  /** The organisation baseline, the compliance checks, runs, attestations, waivers, reports (docs/compliance.md). */
  compliance: Compliance;
  /** Bulk device actions under dual control (docs/operations.md). */
  operations: BulkOperations;
  /** The clock every service reads (tests pass a controllable one). */
  now: () => number;
  /** The PKI, created at first use (first start) and loaded afterwards. */
  pki(): Promise<PkiService>;
  close(): Promise<void>;
}

export interface PlatformOptions {
  logger: Logger;
  now?: () => number;
  /** True for `serve`: issue or renew the TLS server certificate when it no longer fits. */
  manageServerCertificate?: boolean;
  /**
   * May a new data directory, store and master key be created (default true)? The CLI passes false for
   * every command but `serve` and `init` (data-dir.ts).
   */
  createDataDir?: boolean;
  /** Test seam: called at each step of `events.atomically` (the revocation crash test). */
  onAtomicStep?: Parameters<typeof createEventBus>[0]['onAtomicStep'];
}

/** What the server process links to its services (the CLI has no broker and no listener). */
interface ServerLinks {
  /** Publishes to a device's own topics through the broker (firmware commands). */
  publish(topic: string, payload: string): Promise<void>;
  /** The port the HTTPS API listens on: the WebAuthn origin names it (port 0 picks one). */
  httpsPort(): number;
}

/** The store, secrets and event bus every service is built on. */
interface Core {
  config: Config;
  logger: Logger;
  now: () => number;
  store: Store;
  box: SecretBox;
  /** True when this start created the data directory's store. */
  created: boolean;
  audit: AuditLog;
  events: EventBus;
  /** While the store is down every background round fails the same way: logged at debug level then. */
  logFailure: (err: unknown, fields: Record<string, unknown>, message: string) => void;
}

/**
 * The composition root, stage one, for every process (CLI, `serve`, tests): store, secrets, events and every
 * service, each built with its dependencies, in that order. No listeners, no background loops.
 */
export function createPlatform(config: Config, options: PlatformOptions): Promise<Platform> {
  return buildPlatform(config, options, undefined);
}

async function openCore(config: Config, options: PlatformOptions): Promise<Core> {
  const now = options.now ?? Date.now;
  const { logger } = options;
  // While the store is down every background round fails the same way; the outage is logged once, by
  // reportStoreOutages below, and these only at debug level.
  const logFailure = (err: unknown, fields: Record<string, unknown>, message: string) => {
    if (isConnectionLoss(err)) logger.debug({ err, ...fields }, message);
    else logger.error({ err, ...fields }, message);
  };
  // Refuses a store without its master key, a key that does not match, a store lost from beside its CA.
  const { store, box, created } = await openDataDir(config, { create: options.createDataDir ?? true, now });
  const audit = createAuditLog({
    db: store.db,
    mac: box,
    now,
    isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
    headFile: path.join(config.dataDir, AUDIT_HEAD_FILE),
  });
  await audit.ensureAnchor();
  const events = createEventBus({
    log: audit,
    db: store.db,
    onError: (err, entry) => logFailure(err, { seq: entry?.seq }, 'event subscriber failed'),
    onAtomicStep: options.onAtomicStep,
    isBusy,
  });
  // Events a crash left in the outbox are in the audit log before any service starts.
  await events.drainOutbox();
  return { config, logger, now, store, box, created, audit, events, logFailure };
}

function createUsers(core: Core): UserService {
  const { config, store, box, events, now } = core;
  return createUserService({
    db: store.db,
    // Accounts' last sign-in, for the compliance facts (dormant accounts).
    lastSignIns: () => latestPerSubject(core.audit, 'auth.sign_in_succeeded'),
    box,
    events,
    now,
    throttle: createThrottle({
      db: store.db,
      now,
      threshold: config.auth.lockoutThreshold,
      lockoutMs: config.auth.lockoutDuration,
      backoffAfter: config.auth.backoffAfter,
      backoffBaseMs: config.auth.backoffBase,
    }),
    settings: {
      require2faForAll: config.auth.require2faForAll,
      sessionIdleMs: config.auth.sessionIdle,
      sessionAbsoluteMs: config.auth.sessionAbsolute,
      setupSecretTtlMs: config.auth.setupSecretTtl,
      stepUpWindowMs: config.auth.stepUpWindow,
    },
  });
}

function createFirewall(core: Core): FirewallService {
  const { config, store, events, now, logFailure } = core;
  const f = config.firewall;
  return createFirewallService({
    db: store.db,
    events,
    now,
    limits: {
      connectRate: f.connectRate,
      connectBurst: f.connectBurst,
      maxConnectionsPerAddress: f.maxConnectionsPerAddress,
      failureThreshold: f.failureThreshold,
      failureWindowMs: 60_000,
      banDurationMs: f.banDuration,
      flapThreshold: f.flapThreshold,
      flapWindowMs: 60_000,
      takeoverThreshold: f.takeoverThreshold,
      takeoverWindowMs: 60_000,
      publishRate: f.publishRate,
      publishBurst: f.publishBurst,
      byteRate: f.byteRate,
      byteBurst: f.byteRate * 2,
      throttlesBeforeDisconnect: f.throttlesBeforeDisconnect,
      maxPayloadBytes: f.maxPayloadBytes,
      maxSubscriptions: f.maxSubscriptions,
      maxTopicLength: f.maxTopicLength,
      maxTopicLevels: f.maxTopicLevels,
    },
    onError: (err, what) => logFailure(err, {}, `firewall: ${what}`),
  });
}

/** The PKI, created at first use (first start) and loaded afterwards; one instance per platform. */
function lazyPki(
  core: Core,
  devices: DeviceService,
  manageServerCertificate: boolean,
): () => Promise<PkiService> {
  const { config, store, box, events, now } = core;
  let pki: Promise<PkiService> | undefined;
  return () => {
    pki ??= loadOrCreatePki({
      db: store.db,
      box,
      events,
      now,
      hostnames: config.pki.hostnames,
      manageServerCertificate,
    }).then((material) =>
      createPkiService({
        db: store.db,
        material,
        devices,
        events,
        now,
        deviceCertValidityMs: config.pki.deviceCertValidity,
        onError: (err, what) => core.logFailure(err, {}, `pki: ${what}`),
      }),
    );
    return pki;
  };
}

/** Detection and responses; responses act through the services (also from the CLI; the PKI loads on first use). */
function createMonitorFor(
  core: Core,
  services: {
    devices: DeviceService;
    access: AccessService;
    firewall: FirewallService;
    users: UserService;
    pki: () => Promise<PkiService>;
  },
) {
  const { store, events, now, logFailure, config } = core;
  const { devices, access, firewall, users, pki } = services;
  return createMonitor({
    db: store.db,
    events,
    now,
    settings: config.monitor,
    deviceInfo: async (id) => {
      const device = await devices.find(id);
      if (!device) return undefined;
      return {
        group: device.group,
        zone: zoneOf(device, await access.listZones()),
        quarantined: device.quarantinedAt !== null,
      };
    },
    actions: {
      quarantine: (id, reason, actor) => access.setQuarantine(id, { quarantined: true, reason }, actor),
      revoke: async (id, _reason, actor) => {
        await (await pki()).revokeDevice(id, actor, 'keyCompromise');
      },
      banAddress: async ({ address, reason, ttlMs }, actor) => {
        await firewall.add({ kind: 'address', value: address, reason, ttlMs }, actor);
      },
      disableUser: async (username, _reason, actor) => {
        await users.update(username, { disabled: true }, actor);
      },
    },
    isActiveUser: (username) =>
      users.get(username).then(
        (user) => !user.disabled,
        (err: unknown) => {
          if (err instanceof BulwarkError && err.code === 'not_found') return false;
          throw err;
        },
      ),
    groups: () => devices.groups(),
    onError: (err, what) => logFailure(err, {}, `monitor: ${what}`),
  });
}

/** Physical security: sites and their access records, TPM attestation and signed tamper and health reports. */
function createPhysicalFor(
  core: Core,
  services: { devices: DeviceService; firmware: Firmware; pki: () => Promise<PkiService> },
): { physical: PhysicalSites; attestation: AttestationService } {
  const { config, store, events, now, logger, audit } = core;
  const { devices, firmware, pki } = services;
  const physical = createPhysicalSites({
    db: store.db,
    events,
    now,
    deviceGroups: async () => (await devices.groups()).map((g) => g.group).filter((g) => g !== ''),
  });
  const attestation = createAttestationService({
    db: store.db,
    events,
    now,
    logger,
    settings: {
      pcrs: config.attestation.pcrs,
      maxAgeMs: config.attestation.maxAge,
      nonceTtlMs: config.attestation.nonceTtl,
      checkIntervalMs: config.attestation.checkInterval,
      maxSpeedKmh: config.physical.maxSpeedKmh,
    },
    referenceValuesFor: (id) => firmware.referenceValuesFor(id),
    certificateForReport: async (id, serial) => (await pki()).certificateForReport(id, serial),
    deviceStatus: async (id) => (await devices.find(id))?.status,
    refusedReportsSinceStart: () => refusedReportsSinceStart(audit),
  });
  return { physical, attestation };
}

/**
 * Privacy over what the other modules hold (read when asked: export, erasure, retention, the Art. 30 record);
 * the broker's retained store joins its sources in the server process (buildBroker).
 */
function createPrivacyFor(
  core: Core,
  services: {
    telemetry: TelemetryService;
    devices: DeviceService;
    users: UserService;
    apps: AppService;
    physical: PhysicalSites;
  },
): PrivacyService {
  const { config, store, box, events, now, audit, logFailure } = core;
  const { telemetry, devices, users, apps, physical } = services;
  const p = config.privacy;
  const sources = {
    telemetry: telemetry.privacySource,
    devices: devices.subjectData,
    users: {
      module: users.module,
      exportSubject: (subject: Subject) => users.exportSubject(subject),
      eraseSubject: (subject: Subject, actor: string) => users.eraseSubject(subject, actor),
    },
    persons: [physical.subjectData],
    apps: { list: () => apps.list() },
    audit: {
      query: (filter: AuditFilter) => audit.query(filter),
      erasePersonal: (owners: readonly string[]) => audit.erasePersonal(owners),
    },
    telemetryRows: (q: Parameters<PrivacySources['telemetryRows']>[0]) => telemetry.rowsForSchema(q),
    telemetryPatterns: () => telemetry.patternRules(),
    // The retained messages as stored (a process without a broker, the CLI, erases and expires them there; the
    // server's broker follows). In the server, the broker's retained store takes its place (brokerStages).
    retained: createRetainedStore({ db: store.db, now, limits: retainedLimitsOf(config) }).privacySource,
  };
  return createPrivacyService({
    db: store.db,
    events,
    now,
    box,
    settings: {
      pseudonymKeyPeriodMs: p.pseudonymKeyPeriod,
      pseudonymKeysKept: p.pseudonymKeysKept,
      requestDeadlineDays: p.requestDeadlineDays,
      retentionIntervalMs: p.retentionInterval,
      requestCheckIntervalMs: p.requestCheckInterval,
      controller: { name: p.controller.name ?? null, contact: p.controller.contact ?? null },
    },
    sources: () => sources,
    exists: {
      device: async (id) => (await devices.find(id)) !== undefined,
      user: (username) =>
        users.get(username).then(
          () => true,
          (err: unknown) => {
            if (err instanceof BulwarkError && err.code === 'not_found') return false;
            throw err;
          },
        ),
    },
    onError: (err, what) => logFailure(err, {}, what),
    compactAfterErasure: () => store.compact(),
  });
}

/** The services the compliance checks read, each through its module's door (compliance/facts.ts). */
interface ComplianceReads {
  devices: DeviceService;
  users: UserService;
  access: AccessService;
  apps: AppService;
  firewall: FirewallService;
  firmware: Firmware;
  risk: Risk;
  monitor: Monitor;
  notify: NotifyService;
  privacy: PrivacyService;
  attestation: Pick<AttestationService, 'complianceFacts'>;
  physical: Pick<PhysicalSites, 'complianceFacts'>;
  pki: () => Promise<PkiService>;
}

/**
 * The listeners the server bound at its latest start (platform.started), in the server and the CLI alike: a
 * process that binds none has no facts of its own to give.
 */
async function recordedListeners(audit: AuditLog): Promise<ListenerFacts[]> {
  const started = await audit.latest('platform.started');
  // Entries from before listeners were recorded have none.
  const listeners: ListenerFacts[] | undefined = started?.data.listeners;
  if (!listeners) throw new Error('the server has not started yet: no listeners recorded');
  return listeners;
}

/**
 * Signed security reports refused since the server's latest start, from the audit log (the server and the CLI
 * read the same count; a rate-limited refusal entry carries how many it stands for).
 */
async function refusedReportsSinceStart(audit: AuditLog): Promise<number> {
  const started = await audit.latest('platform.started');
  let after = started?.seq ?? 0;
  let refused = 0;
  for (;;) {
    const page = await audit.query({ type: 'device.security_report_rejected', after, limit: 1000 });
    for (const entry of page) refused += 1 + (entry.data.suppressed ?? 0);
    const last = page.at(-1);
    if (!last || page.length < 1000) return refused;
    after = last.seq;
  }
}

/** The compliance engine over every module's facts (read when a run asks; the baseline is its own). */
/** Risk: vulnerabilities of what runs, and the register over the live inventory (read through the doors). */
function createRiskFor(
  core: Core,
  reads: {
    devices: DeviceService;
    access: AccessService;
    firmware: Firmware;
    zoneResolver: () => Promise<(device: Device) => string | null>;
    later: () => { privacy: PrivacyService; compliance: Compliance; monitor: Monitor };
  },
): Risk {
  const { store, events, now, audit, logFailure } = core;
  const { devices, access, firmware, zoneResolver, later } = reads;
  return createRisk({
    db: store.db,
    events,
    now,
    firmware,
    audit,
    register: {
      inventory: {
        devices: async () => {
          const [list, zoneOfDevice] = await Promise.all([devices.inService(), zoneResolver()]);
          return list.map((d) => ({
            id: d.id,
            group: d.group,
            model: d.attributes.model ?? null,
            zone: zoneOfDevice(d),
          }));
        },
        zones: () => access.listZones(),
        conduits: () => access.listConduits(),
        dataCategories: async () => {
          const byCategory = new Map<string, Set<string>>();
          for (const schema of (await later().privacy.complianceFacts()).schemas)
            for (const f of schema.personalFields)
              byCategory.set(f.category, (byCategory.get(f.category) ?? new Set()).add(schema.name));
          return [...byCategory].map(([category, schemas]) => ({ category, schemas: [...schemas].sort() }));
        },
        releases: () => firmware.releases.list({ limit: 100_000 }),
      },
      baseline: async () => (await later().compliance.baseline.current()).baseline,
      checkExists: (id) => (checkIds as readonly string[]).includes(id),
      measuredLevel: () => later().compliance.measuredLevel(),
      openAlerts: () => later().monitor.alerts.list({ status: ['open', 'acknowledged'], limit: 1000 }),
      onError: (err) => logFailure(err, {}, 'risk register work failed'),
    },
  });
}

function createComplianceFor(core: Core, reads: ComplianceReads): Compliance {
  const { config, store, events, now, audit, logFailure } = core;
  const sources: ComplianceSources = {
    pki: async () => (await reads.pki()).complianceFacts(),
    listeners: () => recordedListeners(audit),
    devices: ({ baseline }) =>
      reads.devices.complianceFacts({ conflictWindowMs: baseline.devices.conflictWindow }),
    users: () => reads.users.complianceFacts(),
    audit: async () => ({
      chain: await auditChainFacts(audit),
      exporters: await reads.notify.exporterFacts(),
    }),
    monitor: () => reads.monitor.complianceFacts(),
    access: () => reads.access.complianceFacts(),
    firewall: () => reads.firewall.complianceFacts(),
    firmware: () => reads.firmware.complianceFacts(),
    vulnerabilities: () => reads.risk.complianceFacts(),
    privacy: () => reads.privacy.complianceFacts(),
    apps: () => reads.apps.complianceFacts(),
    attestation: () => reads.attestation.complianceFacts(),
    physical: () => reads.physical.complianceFacts(),
    risk: () => reads.risk.register.complianceFacts(),
  };
  return createCompliance({
    db: store.db,
    events,
    now,
    sources,
    baseline: createBaselineService({
      db: store.db,
      events,
      now,
      clauseExists: frameworkClauses(config.compliance.frameworksDir),
    }),
    frameworksDir: config.compliance.frameworksDir,
    settings: { intervalMs: config.compliance.interval, scheduled: config.compliance.scheduled },
    approvers: {
      canApprove: async (username) => {
        const user = await reads.users.get(username).catch((err: unknown) => {
          if (err instanceof BulwarkError && err.code === 'not_found') return undefined;
          throw err;
        });
        return user !== undefined && !user.disabled && can(user.role, 'compliance:approve');
      },
    },
    onError: (err) => logFailure(err, {}, 'compliance run failed'),
  });
}

/** Bulk device actions: each device through its own service; the threshold from the baseline in force. */
function createOperationsFor(
  core: Core,
  services: {
    devices: DeviceService;
    access: AccessService;
    pki: () => Promise<PkiService>;
    compliance: Compliance;
  },
): BulkOperations {
  const { devices, access, pki, compliance } = services;
  return createBulkOperations({
    ...{ db: core.store.db, events: core.events, now: core.now, devices, access },
    revoke: async (id, actor, reason) => (await pki()).revokeDevice(id, actor, reason),
    approvals: async () => (await compliance.baseline.current()).baseline.approvals,
  });
}

/** Every service, each with its dependencies; `links` only in the server process. */
async function buildPlatform(
  config: Config,
  options: PlatformOptions,
  links: ServerLinks | undefined,
): Promise<Platform> {
  const core = await openCore(config, options);
  const { logger, store, box, audit, events, now, logFailure } = core;
  const zoneResolver = async () => {
    const zones = await access.listZones();
    return (device: Device) => zoneOf(device, zones);
  };
  const devices = createDeviceService({
    db: store.db,
    events,
    now,
    tokenTtlMs: config.pki.enrollmentTokenTtl,
    audit,
    // Read when asked, after every service below exists.
    facts: {
      zones: zoneResolver,
      firmwareOf: async (id) => {
        const state = await firmware.fleet.deviceState(id);
        return state && { version: state.version, reportedAt: Number(state.reported_at) };
      },
      certificatesOf: (id) => deviceCertificateSummaries(store.db, id),
    },
    // lost / decommission revoke through pki; eraseDeviceData and auditEntryFor: devices.bindRetirement.
    retirement: { revokeCertificates: revokeDeviceCertificates },
  });
  // Read as access compiles, once the attestation module below exists.
  const attestationStanding = (id: string) => attestation.standingOf(id);
  const access = createAccessService({ db: store.db, events, now, devices, attestationStanding });
  const firewall = createFirewall(core);
  const users = createUsers(core);
  // Device groups for visibility, looked up briefly cached (wall clock: the cache is not behaviour).
  const authz = createAuthz({ groupOf: async (id) => (await devices.find(id))?.group, now: Date.now });
  const webauthn = createWebauthnService({
    db: store.db,
    events,
    users,
    now,
    settings: {
      rpId: config.auth.webauthnRpId,
      rpName: 'Bulwark',
      origins: () =>
        webauthnOrigins(
          config.auth.webauthnRpId,
          links?.httpsPort() ?? config.https.port,
          config.auth.webauthnOrigins,
        ),
    },
  });
  const firmware = createFirmware({
    db: store.db,
    box,
    events,
    now,
    dir: path.join(config.dataDir, 'firmware'),
    settings: config.firmware,
    devices,
    zoneResolver,
    // Rollouts reach devices through the broker, which only the server process has.
    send: links && ((_deviceId, topic, payload) => links.publish(topic, payload)),
    onError: (err) => logFailure(err, {}, 'firmware background work failed'),
    // A release with an SBOM is matched against the advisories already imported.
    onReleaseCreated: (_release, actor) => risk.vulnerabilities.rematch(actor),
    onReleaseDiscard: (tx, releaseId) => risk.vulnerabilities.forgetRelease(tx, releaseId),
  });
  // The register reads what later services hold when it evaluates, once every service below exists.
  const risk = createRiskFor(core, {
    ...{ devices, access, firmware, zoneResolver },
    later: () => ({ privacy, compliance, monitor }),
  });
  const notify = createNotifyService({
    db: store.db,
    box,
    events,
    audit,
    now,
    settings: { ...config.notifications, nodeId: notifyNodeId(config.dataDir) },
    onError: (err, channel) => logFailure(err, { channel }, 'notification delivery work failed'),
  });
  const pki = lazyPki(core, devices, options.manageServerCertificate ?? false);
  const apps = createAppService({ db: store.db, events, now, access, devices, pki });
  const monitor = createMonitorFor(core, { devices, access, firewall, users, pki });
  if (core.created && config.monitor.defaultProfile) await installDefaultProfile(monitor);
  const commands = createCommands({
    ...{ events, devices, now, tailIntervalMs: config.events.tailInterval },
    onRejected: (deviceId, problem, suppressed) =>
      logger.warn({ deviceId, problem, suppressed }, 'command result refused'),
  });
  const telemetry = createTelemetryService({
    ...{ db: store.db, events, now },
    onError: (err, what) => logFailure(err, {}, what),
  });
  const { physical, attestation } = createPhysicalFor(core, { devices, firmware, pki });
  const privacy = createPrivacyFor(core, { telemetry, devices, users, apps, physical });
  // A decommissioned device's data, module by module (its messages, its attestation, its own row last).
  const deviceModules = () => [...privacy.deviceStores(), attestation.subjectData, devices.subjectData];
  devices.bindRetirement({ eraseDeviceData: (id, actor) => eraseAcross(deviceModules())(id, actor) });
  const compliance = createComplianceFor(core, {
    ...{ devices, users, access, apps, firewall, firmware, risk, monitor, notify, privacy, pki },
    ...{ attestation, physical },
  });
  // The store going down and coming back becomes an alert once the store can take it (see store/outage.ts).
  const stopOutageReports = reportStoreOutages({
    store,
    alerts: monitor.alerts,
    nodeId: notifyNodeId(config.dataDir),
    log: logger,
  });
  return {
    config,
    logger,
    store,
    audit,
    events,
    devices,
    users,
    authz,
    webauthn,
    access,
    apps,
    firewall,
    firmware,
    risk,
    notify,
    monitor,
    telemetry,
    commands,
    privacy,
    attestation,
    physical,
    compliance,
    operations: createOperationsFor(core, { devices, access, pki, compliance }),
    now,
    pki,
    async close() {
      stopOutageReports();
      await attestation.stop();
      await compliance.stop();
      await notify.stop();
      await privacy.stop();
      // Messages still batched are written before the store closes.
      await telemetry.stop();
      await events.close();
      await store.close();
    },
  };
}

/**
 * Which audit entries a principal may see: everything, unless the user is limited to device groups; then
 * only entries about devices of those groups (device groups are looked up, briefly cached).
 */
function entryVisibility(platform: Platform) {
  const { sees } = requestVisibility(platform.authz);
  return (request: FastifyRequest, entry: AuditEntry): Promise<boolean> => sees(request, { entry });
}

/** The HTTPS API (with the console and EST) and the mutual-TLS device listener, built and ready. */
export interface HttpApps {
  /** The main HTTPS app (tests use inject()). */
  app: FastifyInstance;
  /** The device listener's app: EST re-enrollment and the TUF repository, by client certificate. */
  deviceApp: FastifyInstance;
  /** Every HTTP route of the main app with its declared access (for the route and role tests). */
  routes: RouteEntry[];
}

/** A platform with its adapters built and ready: nothing listens until startServer. */
export interface ServerPlatform extends Platform {
  http: HttpApps;
  broker: Broker;
  /** The CA chain file written into the data directory (what devices and clients trust). */
  caChainFile: string;
  /** Closes the broker and the HTTP apps (once; close() does it too). */
  closeAdapters(): Promise<void>;
}

/** The port a listener got (port 0 picks one), or undefined before it listens. */
function listeningPort(app: FastifyInstance): number | undefined {
  const address = app.server.address();
  return typeof address === 'object' && address !== null ? address.port : undefined;
}

/**
 * The composition root for `serve` (and the tests' platforms), stage one: every service, the PKI (created at
 * first start), the HTTP apps and the broker, each built with its dependencies. Nothing listens and no
 * background loop runs until startServer.
 */
export async function createServerPlatform(
  config: Config,
  options: PlatformOptions,
): Promise<ServerPlatform> {
  const platform = await buildPlatform(
    config,
    { manageServerCertificate: true, ...options },
    {
      // The adapters are built below, from the services; these are read when a rollout sends or a passkey signs.
      publish: (topic, payload) => adapters.broker.publish(topic, payload),
      httpsPort: () => listeningPort(adapters.http.app) ?? config.https.port,
    },
  );
  const adapters = await buildAdapters(platform).catch(async (err: unknown) => {
    await platform.close().catch(() => undefined);
    throw err;
  });
  let closing: Promise<void> | undefined;
  const closeAdapters = () => {
    closing ??= (async () => {
      await adapters.broker.close();
      await adapters.http.app.close();
      await adapters.http.deviceApp.close();
    })();
    return closing;
  };
  return {
    ...platform,
    ...adapters,
    closeAdapters,
    async close() {
      await closeAdapters();
      await platform.close();
    },
  };
}

async function buildAdapters(
  platform: Platform,
): Promise<Pick<ServerPlatform, 'http' | 'broker' | 'caChainFile'>> {
  const pki = await platform.pki();
  const caChainFile = path.join(platform.config.dataDir, CA_CHAIN_FILE);
  writeFileSync(caChainFile, pki.chainPem(), { mode: 0o644 });
  const broker = await buildBroker(platform, pki);
  const http = await buildHttpApps(platform, pki, broker);
  return { http, broker, caChainFile };
}

const retainedLimitsOf = (config: Config) => ({
  perDevice: config.firewall.retainedPerDevice,
  bytesPerDevice: config.firewall.retainedBytesPerDevice,
  total: config.firewall.retainedTotal,
  bytesTotal: config.firewall.retainedBytesTotal,
});

async function buildBroker(platform: Platform, pki: PkiService): Promise<Broker> {
  const { config, logger, events, monitor } = platform;
  const server = pki.serverTls();
  const retained = createRetainedStore({
    db: platform.store.db,
    now: platform.now,
    limits: retainedLimitsOf(config),
  });
  await retained.load();
  // Persistent MQTT sessions (clean session 0, MQTT 5 session expiry): kept in the store across restarts.
  const sessionStore = createSqlSessionJournal({ db: platform.store.db, logger, now: platform.now });
  const restored = await sessionStore.load();
  // Data schemas (privacy/): payloads checked and kept in the form the schema says; each consumer's view.
  const privacy = platform.privacy.brokerStages({ logger, retained });
  return createBroker({
    tls: { key: server.keyPem, cert: server.certPem, ca: pki.chainPem() },
    port: config.mqtt.port,
    host: config.bind,
    logger,
    events,
    checkConnection: (identity) => pki.checkConnection(identity),
    accessFor: (identity) => platform.access.accessFor(identity),
    onAccessChange: (listener) => platform.access.onChange(listener),
    firewall: platform.firewall.firewall,
    devPort: config.mqtt.devListener?.port,
    checkAnonymous: (clientId) => platform.access.checkAnonymous(clientId),
    // Applications (apps/): their certificates and tokens, their grants, their facts when they change.
    checkApp: (request) => platform.apps.checkApp(request),
    accessForApp: (identity) => platform.access.accessForApp(identity),
    appFacts: async (name) => {
      // A deleted app (not_found) has no facts: its sessions are dropped.
      const app = await platform.apps.get(name).catch((err: unknown) => {
        if (err instanceof BulwarkError && err.code === 'not_found') return undefined;
        throw err;
      });
      return app && app.status !== 'revoked' ? { zone: app.zone, purpose: app.purpose } : undefined;
    },
    appPasswords: config.mqtt.appPasswords,
    monitor,
    retained,
    durableSessions: { journal: sessionStore.journal, restored, close: () => sessionStore.close() },
    transforms: { publish: [privacy.publish], deliver: [privacy.deliver] },
    // Device messages of the stored topic patterns (telemetry/): after meter, before retain.
    persist: [
      createTelemetryStage({
        patterns: platform.telemetry.patterns,
        writer: platform.telemetry.writer,
        now: platform.now,
        logger,
      }),
    ],
    limits: {
      // The largest PUBLISH the firewall could admit: payload, a topic of 4-byte characters, its length, a packet id.
      maxPacketBytes: config.firewall.maxPayloadBytes + 4 * config.firewall.maxTopicLength + 4,
      maxConnectBytes: config.mqtt.maxConnectSize,
      handshakeTimeoutMs: config.mqtt.handshakeTimeout,
      connectTimeoutMs: config.mqtt.connectTimeout,
      appQueueBytes: config.mqtt.appQueueSize,
      // The core's bounds on sessions, their queues, flow control, topic aliases and keep alive.
      receiveMaximum: config.mqtt.receiveMaximum,
      maxQueuedMessages: config.mqtt.maxQueuedMessages,
      maxSessionExpirySec: config.mqtt.maxSessionExpiry,
      topicAliasMaximum: config.mqtt.topicAliasMaximum,
      keepAliveMaxSec: config.mqtt.maxKeepAlive,
    },
    revocationLists: () => pki.revocationListsPem(),
    certificateStanding: (serial) => pki.certificateStanding(serial),
    // Device messages the platform consumes, parsed and validated once (protocol's deviceIngress).
    ingress: createIngressRouter({
      handlers: {
        // Firmware: devices report update steps and their running image; rollouts send commands back.
        firmwareStatus: { accept: (deviceId, status) => platform.firmware.handleStatus(deviceId, status) },
        firmwareState: { accept: (deviceId, state) => platform.firmware.handleState(deviceId, state) },
        metrics: {
          accept: (deviceId, report) => monitor.handleReport(deviceId, report),
          reject: (deviceId, problem) => monitor.rejectReport(deviceId, problem),
        },
        commandResult: platform.commands.results,
        // Signed tamper and health reports (attestation/): verified, recorded, turned into events.
        tamper: platform.attestation.reports.tamper,
        health: platform.attestation.reports.health,
      },
      onError: (err, deviceId, route) => logger.error({ err, deviceId, route }, 'device report failed'),
    }),
  });
}

/** The handshake failures of the HTTPS listeners, as events (at most 20 a minute per address). */
function tlsErrorReporter(platform: Platform) {
  const handshakeFailures = createEventRateLimit({ max: 20, windowMs: 60_000 });
  return (remoteAddress: string, reason: string) => {
    const { record, suppressed } = handshakeFailures.admit(remoteAddress);
    if (!record) return;
    platform.events
      .emit({
        type: 'tls.handshake_failed',
        actor: `anonymous@${remoteAddress}`,
        data: { listener: 'https', remoteAddress, reason, ...(suppressed ? { suppressed } : {}) },
      })
      .catch((err: unknown) => platform.logger.error({ err }, 'cannot record event'));
  };
}

/** The device listener: what authenticates devices by their certificate (EST re-enrollment, the TUF repository). */
async function buildDeviceApp(platform: Platform, pki: PkiService): Promise<FastifyInstance> {
  const { config, logger } = platform;
  const server = pki.serverTls();
  const deviceApp = await createDeviceApp({
    tls: {
      key: server.keyPem,
      cert: server.certPem,
      clientCa: pki.chainPem(),
      handshakeTimeoutMs: config.https.handshakeTimeout,
    },
    logger,
    version: VERSION,
    guard: { users: platform.users },
    onTlsError: tlsErrorReporter(platform),
  });
  await deviceApp.app.register(estReenrollRoutes(pki));
  await deviceApp.app.register(
    tufRoutes({
      tuf: platform.firmware.tuf,
      releases: platform.firmware.releases,
      checkDevice: (identity) => pki.checkDevice(identity),
    }),
  );
  await deviceApp.app.register(
    attestationDeviceRoutes({
      attestation: platform.attestation,
      checkDevice: (identity) => pki.checkDevice(identity),
    }),
  );
  await deviceApp.app.ready();
  return deviceApp.app;
}

async function buildHttpApps(platform: Platform, pki: PkiService, broker: Broker): Promise<HttpApps> {
  const { config, logger, events, monitor } = platform;
  const server = pki.serverTls();
  const deviceApp = await buildDeviceApp(platform, pki);
  const webConsole = consoleRoutes({ dir: CONSOLE_DIST });
  const { app, routes } = await createHttpApp({
    tls: { key: server.keyPem, cert: server.certPem, handshakeTimeoutMs: config.https.handshakeTimeout },
    logger,
    version: VERSION,
    guard: { users: platform.users },
    onTlsError: tlsErrorReporter(platform),
    notFound: webConsole.fallback,
  });
  await app.register(webConsole.register);
  await app.register(estRoutes(pki));
  await app.register(
    deviceListenerRedirects(
      [
        { method: 'POST', url: est.simplereenroll },
        { method: 'GET', url: `${tufPaths.metadata}:name` },
        { method: 'GET', url: `${tufPaths.targets}*` },
        // TPM attestation (the agent calls the main URL and follows the redirect with its certificate).
        ...[
          api.attestation.registerKey,
          api.attestation.activateKey,
          api.attestation.challenge,
          api.attestation.submitQuote,
        ].map((c) => ({ method: c.method, url: c.path })),
      ],
      // The device listener's port once it listens (port 0 picks one).
      () => listeningPort(deviceApp) ?? config.https.devicePort,
    ),
  );
  await app.register(authRoutes(platform.users));
  await app.register(webauthnRoutes(platform.webauthn));
  await app.register(userRoutes(platform.users));
  await app.register(
    deviceRoutes({
      devices: platform.devices,
      revokeDevice: (id, actor, reason) => pki.revokeDevice(id, actor, reason),
    }),
  );
  await app.register(firewallRoutes(platform.firewall));
  await app.register(appRoutes(platform.apps));
  await app.register(accessRoutes(platform.access, async (id) => (await platform.devices.find(id))?.group));
  await app.register(bulkRoutes(platform.operations));
  await app.register(auditRoutes({ log: platform.audit, bus: events, visible: entryVisibility(platform) }));
  await app.register(firmwareRoutes({ firmware: platform.firmware }));
  await app.register(
    riskRoutes({
      risk: platform.risk,
      releaseId: async (ref) => (await platform.firmware.releases.get(ref)).id,
    }),
  );
  await app.register(registerRoutes(platform.risk.register));
  await app.register(notifyRoutes(platform.notify));
  await app.register(
    telemetryRoutes({
      telemetry: platform.telemetry,
      groupOf: async (id) => (await platform.devices.find(id))?.group,
    }),
  );
  await app.register(privacyRoutes(platform.privacy));
  await app.register(
    attestationRoutes({
      attestation: platform.attestation,
      groupOf: async (id) => (await platform.devices.find(id))?.group,
    }),
  );
  await app.register(physicalRoutes(platform.physical));
  await app.register(baselineRoutes(platform.compliance.baseline));
  await app.register(complianceRoutes(platform.compliance));
  await app.register(
    commandRoutes({
      commands: platform.commands,
      groupOf: async (id) => (await platform.devices.find(id))?.group,
    }),
  );
  await app.register(healthRoutes(platform.store));
  const metricsRegistry = createMetricsRegistry({
    broker: () => broker.stats(),
    monitor: () => monitor.stats(),
    alerts: () => monitor.alerts.counts(),
    audit: () => platform.audit.head(),
    telemetry: () => platform.telemetry.stats(),
    privacy: () => platform.privacy.stageCounters(),
    commandResultsRejected: () => platform.commands.results.rejected(),
    notifications: async () =>
      (await platform.notify.stats()).map((c) => ({
        name: c.name,
        delivered: c.delivered,
        failures: c.failures,
        lag: c.lag,
      })),
  });
  await app.register(
    monitorRoutes({
      monitor,
      log: platform.audit,
      bus: events,
      visible: entryVisibility(platform),
      metrics: () => metricsRegistry.expose(),
    }),
  );
  await app.ready();
  return { app, deviceApp, routes };
}

export interface RunningServer {
  /** Every HTTP route with its declared access (for the route and role tests). */
  routes: RouteEntry[];
  /** The Fastify app (tests use inject()). */
  app: FastifyInstance;
  mqttPort: number;
  /** The development listener without authentication, when configured (never by default). */
  devMqttPort: number | undefined;
  httpsPort: number;
  /** The mutual-TLS listener for EST simplereenroll (the main listener redirects there). */
  devicePort: number;
  caChainFile: string;
  broker: Broker;
  close(reason?: string): Promise<void>;
}

/**
 * What must run before the listeners open: bans loaded, the monitor, device session state, device reports
 * from the broker. Returns what stops the platform's background work.
 */
async function startServices(platform: ServerPlatform): Promise<() => Promise<void>> {
  const { logger, events, monitor } = platform;
  await platform.firewall.reload();
  await monitor.start();
  // Stored topic patterns followed (for the broker stage), retention on its interval.
  await platform.telemetry.start(platform.config.telemetry.retentionInterval);
  // Privacy's live view (for the broker stages) and keys; retention, request deadlines, key rotation.
  await platform.privacy.start();
  // Attestation standings loaded before the broker compiles any access; overdue devices swept.
  await platform.attestation.start();
  // Compliance runs on its schedule and after every baseline change (any process applies one).
  platform.compliance.start();
  // The register follows the fleet: after relevant events (coalesced) and on its interval (reminders).
  platform.risk.register.start(platform.config.risk.reassessInterval);
  // Before the broker listens: session counts left by a crash are cleared, then kept from the events.
  const stopDeviceFollow = await platform.devices.follow(events, (err) =>
    logger.error({ err }, 'device state update failed'),
  );
  // A lost device's certificate refused by the MQTT listener becomes `device.lost_seen` (pki).
  const stopLostSeen = (await platform.pki()).followLostDevices(events);
  // Commands recorded by any process reach the device through this process's broker.
  const stopCommands = platform.commands.serve({
    publish: (topic, payload) => platform.broker.publish(topic, payload),
    onError: (err, what) => logger.error({ err }, `cannot publish ${what}`),
  });
  // This node's app delivery figures (broker), summed over the nodes by the apps module.
  const node = notifyNodeId(platform.config.dataDir);
  const deliveryReports = setInterval(() => {
    const stats = platform.broker.appDeliveryStats();
    if (stats.length === 0) return;
    platform.apps
      .recordDelivery(node, stats)
      .catch((err: unknown) => logger.error({ err }, 'cannot record app delivery figures'));
  }, 10_000).unref();
  // Bulk device actions left unapproved expire on time (reads and decisions expire them too).
  const bulkExpiry = setInterval(() => {
    platform.operations
      .expireDue()
      .catch((err: unknown) => logger.error({ err }, 'cannot expire bulk device actions'));
  }, 60_000).unref();
  return async () => {
    clearInterval(deliveryReports);
    clearInterval(bulkExpiry);
    stopCommands();
    stopDeviceFollow();
    stopLostSeen();
    await platform.attestation.stop();
    await monitor.stop();
    await platform.compliance.stop();
    await platform.risk.register.stop();
    await platform.privacy.stop();
    await platform.firmware.stop();
    await platform.notify.stop();
  };
}

/** The loops: rollouts, notification delivery, the audit-log tail (events from other processes). */
function startLoops(platform: Platform): void {
  const { config } = platform;
  platform.firmware.start(config.firmware.rolloutInterval);
  platform.notify.start();
  platform.events.startTail(config.events.tailInterval);
}

/**
 * The background work of a platform without its listeners (createTestPlatform): services started, loops
 * running. Returns what stops it.
 */
export async function startBackground(platform: ServerPlatform): Promise<() => Promise<void>> {
  const stop = await startServices(platform);
  startLoops(platform);
  return stop;
}

/** The settings in effect, and which changed since the last start (config.loaded). */
async function recordConfig(platform: Platform): Promise<void> {
  const { config } = platform;
  const settings = describeConfig(config);
  const previous = (await platform.audit.latest('config.loaded'))?.data.settings;
  const changed = previous
    ? [...new Set([...Object.keys(settings), ...Object.keys(previous)])]
        .filter((k) => settings[k] !== previous[k])
        .sort()
    : [];
  await platform.events.emit({
    type: 'config.loaded',
    actor: 'system',
    subject: 'config',
    data: { source: config.source, settings, changed },
  });
}

/** What the listeners were given and the ports they got, as the broker and the HTTPS apps describe them. */
function boundListeners(platform: ServerPlatform): ListenerFacts[] {
  const { broker, http } = platform;
  const https = [httpListenerFacts(http.app), httpListenerFacts(http.deviceApp)];
  return [...broker.listenerFacts(), ...https.filter((l) => l !== undefined)];
}

/** Stage two: starts the background work and opens the listeners (HTTPS, device HTTPS, MQTT). */
export async function startServer(platform: ServerPlatform): Promise<RunningServer> {
  const { config, events, broker, http, logger } = platform;
  const stopBackground = await startServices(platform);
  const listen = (fastify: FastifyInstance, port: number) =>
    fastify.listen({ port, host: config.bind ?? '::' }).catch(async (err: NodeJS.ErrnoException) => {
      if (config.bind || err.code !== 'EAFNOSUPPORT') throw err;
      await fastify.listen({ port, host: '0.0.0.0' }); // no IPv6 on this host
    });
  await listen(http.deviceApp, config.https.devicePort);
  await listen(http.app, config.https.port);
  const mqttPort = await broker.listen();
  const devMqttPort = await broker.listenDev();
  const httpsPort = listeningPort(http.app) ?? config.https.port;
  const devicePort = listeningPort(http.deviceApp) ?? config.https.devicePort;
  startLoops(platform);
  await recordConfig(platform);
  await events.emit({
    type: 'platform.started',
    actor: 'system',
    data: {
      mqttPort,
      httpsPort,
      store: platform.store.dialect,
      version: VERSION,
      listeners: boundListeners(platform),
    },
  });

  let closed = false;
  return {
    routes: http.routes,
    app: http.app,
    mqttPort,
    devMqttPort,
    httpsPort,
    devicePort,
    caChainFile: platform.caChainFile,
    broker,
    async close(reason = 'shutdown') {
      if (closed) return;
      closed = true;
      await stopBackground();
      await platform.closeAdapters();
      // A store that is down cannot take the record; the node still shuts down cleanly.
      await events
        .emit({ type: 'platform.stopped', actor: 'system', data: { reason } })
        .catch((err: unknown) => logger.warn({ err }, 'cannot record platform.stopped'));
    },
  };
}
