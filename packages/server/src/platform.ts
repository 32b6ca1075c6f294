import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { est, tufPaths } from '@bulwark/protocol';
import { accessRoutes, createAccessService, type AccessService } from './access/index.ts';
import { createBroker, createRetainedStore, type Broker } from './broker/index.ts';
import { createFirewallService, firewallRoutes, type FirewallService } from './firewall/index.ts';
import { describeConfig, type Config } from './config/index.ts';
import { createDeviceService, deviceRoutes, type DeviceService } from './devices/index.ts';
import {
  authRoutes,
  createThrottle,
  createUserService,
  createWebauthnService,
  userRoutes,
  webauthnOrigins,
  webauthnRoutes,
  type UserService,
} from './users/index.ts';
import {
  createAuditLog,
  createEventBus,
  createEventRateLimit,
  auditRoutes,
  type AuditEntry,
  type AuditLog,
  type EventBus,
} from './events/index.ts';
import { createFirmware, firmwareRoutes, tufRoutes, type Firmware } from './firmware/index.ts';
import { createNotifyService, notifyNodeId, notifyRoutes, type NotifyService } from './notify/index.ts';
import { createHttpApp, createDeviceApp, deviceListenerRedirects, type RouteEntry } from './http/index.ts';
import {
  createMetricsRegistry,
  createMonitor,
  installDefaultProfile,
  monitorRoutes,
  type Monitor,
} from './monitor/index.ts';
import {
  createPkiService,
  estReenrollRoutes,
  estRoutes,
  loadOrCreatePki,
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
  access: AccessService;
  firewall: FirewallService;
  firmware: Firmware;
  /** Device metrics, detectors, alerts and responses. */
  monitor: Monitor;
  /** Notification channels (webhooks, syslog/CEF) following the audit log. */
  notify: NotifyService;
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
}

/** The composition root: store, secrets, events, services, in that order. No listeners. */
export async function createPlatform(config: Config, options: PlatformOptions): Promise<Platform> {
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
  });
  const devices = createDeviceService({
    db: store.db,
    events,
    now,
    tokenTtlMs: config.pki.enrollmentTokenTtl,
    audit,
  });
  const access = createAccessService({ db: store.db, events, now });
  const f = config.firewall;
  const firewall = createFirewallService({
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
  const users = createUserService({
    db: store.db,
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
  const firmware = createFirmware({
    db: store.db,
    box,
    events,
    now,
    dir: path.join(config.dataDir, 'firmware'),
    settings: config.firmware,
    devices,
    zoneResolver: async () => {
      const zones = await access.listZones();
      return (device) => zoneOf(device, zones);
    },
    onError: (err) => logFailure(err, {}, 'firmware background work failed'),
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
  const monitor = createMonitor({
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
    onError: (err, what) => logFailure(err, {}, `monitor: ${what}`),
  });
  if (created && config.monitor.defaultProfile) await installDefaultProfile(monitor);
  devices.setFacts({
    zones: async () => {
      const zones = await access.listZones();
      return (device) => zoneOf(device, zones);
    },
    firmwareOf: async (id) => {
      const state = await firmware.vulnerabilities.deviceState(id);
      return state && { version: state.version, reportedAt: Number(state.reported_at) };
    },
  });
  // The store going down and coming back becomes an alert once the store can take it (see store/outage.ts).
  const stopOutageReports = reportStoreOutages({
    store,
    alerts: monitor.alerts,
    nodeId: notifyNodeId(config.dataDir),
    log: logger,
  });
  let pki: Promise<PkiService> | undefined;

  const platform: Platform = {
    config,
    logger,
    store,
    audit,
    events,
    devices,
    users,
    access,
    firewall,
    firmware,
    notify,
    monitor,
    now,
    pki() {
      pki ??= loadOrCreatePki({
        db: store.db,
        box,
        events,
        now,
        hostnames: config.pki.hostnames,
        manageServerCertificate: options.manageServerCertificate ?? false,
      }).then((material) =>
        createPkiService({
          db: store.db,
          material,
          devices,
          events,
          now,
          deviceCertValidityMs: config.pki.deviceCertValidity,
        }),
      );
      return pki;
    },
    async close() {
      stopOutageReports();
      await notify.stop();
      await events.close();
      await store.close();
    },
  };
  // Responses act through the services (also from the CLI; the PKI loads on first use).
  monitor.setActions({
    quarantine: (id, reason, actor) => access.setQuarantine(id, true, actor, reason),
    revoke: async (id, _reason, actor) => {
      await (await platform.pki()).revokeDevice(id, actor, 'keyCompromise');
    },
    banAddress: async (address, reason, ttlMs, actor) => {
      await firewall.add({ kind: 'address', value: address, reason, ttlMs }, actor);
    },
    disableUser: async (username, _reason, actor) => {
      await users.update(username, { disabled: true }, actor);
    },
  });
  return platform;
}

/**
 * Which audit entries a principal may see: everything, unless the user is limited to device groups; then
 * only entries about devices of those groups (device groups are looked up, briefly cached).
 */
function entryVisibility(platform: Platform) {
  const cache = new Map<string, { group: string | null; at: number }>();
  return async (request: FastifyRequest, entry: AuditEntry): Promise<boolean> => {
    const groups = request.principal?.groups;
    if (groups === null || groups === undefined) return true;
    if (!entry.subject?.startsWith('device:')) return false;
    const id = entry.subject.slice(7);
    let hit = cache.get(id);
    if (!hit || Date.now() - hit.at > 5000) {
      hit = { group: (await platform.devices.find(id))?.group ?? null, at: Date.now() };
      cache.set(id, hit);
      if (cache.size > 10_000) cache.clear();
    }
    return hit.group !== null && groups.includes(hit.group);
  };
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

/** Brings up the HTTPS and MQTT listeners on a platform and follows events from other processes. */
export async function startServer(platform: Platform): Promise<RunningServer> {
  const { config, logger, events } = platform;
  const pki = await platform.pki();
  const chainPem = pki.chainPem();
  const caChainFile = path.join(config.dataDir, CA_CHAIN_FILE);
  writeFileSync(caChainFile, chainPem, { mode: 0o644 });

  const server = pki.serverTls();
  const handshakeFailures = createEventRateLimit({ max: 20, windowMs: 60_000 });
  const onTlsError = (remoteAddress: string, reason: string) => {
    const { record, suppressed } = handshakeFailures.admit(remoteAddress);
    if (!record) return;
    events
      .emit({
        type: 'tls.handshake_failed',
        actor: `anonymous@${remoteAddress}`,
        data: { listener: 'https', remoteAddress, reason, ...(suppressed ? { suppressed } : {}) },
      })
      .catch((err: unknown) => logger.error({ err }, 'cannot record event'));
  };
  const handshakeTimeoutMs = config.https.handshakeTimeout;
  const { app, routes } = await createHttpApp({
    tls: { key: server.keyPem, cert: server.certPem, handshakeTimeoutMs },
    logger,
    version: VERSION,
    guard: { users: platform.users },
    onTlsError,
  });
  const deviceApp = await createDeviceApp({
    tls: { key: server.keyPem, cert: server.certPem, clientCa: chainPem, handshakeTimeoutMs },
    logger,
    version: VERSION,
    guard: { users: platform.users },
    onTlsError,
  });
  // The device listener: what authenticates devices by their certificate (EST re-enrollment, the TUF repository).
  await deviceApp.app.register(estReenrollRoutes(pki));
  await deviceApp.app.register(
    tufRoutes({
      tuf: platform.firmware.tuf,
      releases: platform.firmware.releases,
      checkDevice: (identity) => pki.checkConnection(identity),
    }),
  );
  await deviceApp.app.ready();
  let devicePort = config.https.devicePort;
  await app.register(estRoutes(pki));
  await app.register(
    deviceListenerRedirects(
      [
        { method: 'POST', url: est.simplereenroll },
        { method: 'GET', url: `${tufPaths.metadata}:name` },
        { method: 'GET', url: `${tufPaths.targets}*` },
      ],
      () => devicePort,
    ),
  );
  await app.register(authRoutes(platform.users));
  // The WebAuthn origin names the HTTPS port, known once the listener is up (port 0 picks one).
  let httpsPort = config.https.port;
  const webauthn = createWebauthnService({
    db: platform.store.db,
    events,
    users: platform.users,
    now: platform.now,
    settings: {
      rpId: config.auth.webauthnRpId,
      rpName: 'Bulwark',
      origins: () => webauthnOrigins(config.auth.webauthnRpId, httpsPort, config.auth.webauthnOrigins),
    },
  });
  await app.register(webauthnRoutes(webauthn));
  await app.register(userRoutes(platform.users));
  await app.register(
    deviceRoutes({
      devices: platform.devices,
      revokeDevice: (id, actor, reason) => pki.revokeDevice(id, actor, reason),
    }),
  );
  await app.register(firewallRoutes(platform.firewall));
  await platform.firewall.reload();
  await app.register(accessRoutes(platform.access, async (id) => (await platform.devices.find(id))?.group));
  await app.register(auditRoutes({ log: platform.audit, bus: events, visible: entryVisibility(platform) }));
  await app.register(firmwareRoutes({ firmware: platform.firmware }));
  await app.register(notifyRoutes(platform.notify));
  await app.register(healthRoutes(platform.store));
  const { monitor } = platform;
  await monitor.start();
  // Before the broker listens: session counts left by a crash are cleared, then kept from the events.
  const stopDeviceFollow = await platform.devices.follow(events, (err) =>
    logger.error({ err }, 'device state update failed'),
  );
  const metricsRegistry = createMetricsRegistry({
    // Read at scrape time, after the broker below exists.
    broker: () => broker.stats(),
    monitor: () => monitor.stats(),
    alerts: () => monitor.alerts.counts(),
    audit: () => platform.audit.head(),
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

  const retained = createRetainedStore({
    db: platform.store.db,
    now: platform.now,
    limits: {
      perDevice: config.firewall.retainedPerDevice,
      bytesPerDevice: config.firewall.retainedBytesPerDevice,
      total: config.firewall.retainedTotal,
      bytesTotal: config.firewall.retainedBytesTotal,
    },
  });
  await retained.load();
  const broker = await createBroker({
    tls: { key: server.keyPem, cert: server.certPem, ca: chainPem },
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
    monitor,
    retained,
    limits: {
      // The largest PUBLISH the firewall could admit: payload, a topic of 4-byte characters, its length, a packet id.
      maxPacketBytes: config.firewall.maxPayloadBytes + 4 * config.firewall.maxTopicLength + 4,
      maxConnectBytes: config.mqtt.maxConnectSize,
      handshakeTimeoutMs: config.mqtt.handshakeTimeout,
      connectTimeoutMs: config.mqtt.connectTimeout,
    },
    revocationLists: () => pki.revocationListsPem(),
    certificateStanding: (serial) => pki.certificateStanding(serial),
  });

  const listen = (fastify: FastifyInstance, port: number) =>
    fastify.listen({ port, host: config.bind ?? '::' }).catch(async (err: NodeJS.ErrnoException) => {
      if (config.bind || err.code !== 'EAFNOSUPPORT') throw err;
      await fastify.listen({ port, host: '0.0.0.0' }); // no IPv6 on this host
    });
  await listen(deviceApp.app, config.https.devicePort);
  devicePort = (deviceApp.app.server.address() as { port: number }).port;
  await listen(app, config.https.port);
  httpsPort = (app.server.address() as { port: number }).port;
  const mqttPort = await broker.listen();
  const devMqttPort = await broker.listenDev();
  // Firmware: devices report update steps and their running image over MQTT; rollouts send commands back.
  platform.firmware.connect((_deviceId, topic, payload) => broker.publish(topic, payload));
  const stopFirmwareReports = broker.onDeviceMessage('devices/', (deviceId, topic, payload) => {
    if (!topic.includes('/firmware/')) return;
    platform.firmware
      .handleDeviceMessage(deviceId, topic, payload)
      .catch((err: unknown) => logger.error({ err, deviceId }, 'firmware report failed'));
  });
  const stopMetricsReports = broker.onDeviceMessage('devices/', (deviceId, topic, payload) => {
    if (topic === `devices/${deviceId}/metrics`) monitor.handleReport(deviceId, payload);
  });
  platform.firmware.start(config.firmware.rolloutInterval);
  platform.notify.start();
  events.startTail(config.events.tailInterval);
  const settings = describeConfig(config);
  const previous = (await platform.audit.latest('config.loaded'))?.data.settings;
  const changed = previous
    ? [...new Set([...Object.keys(settings), ...Object.keys(previous)])]
        .filter((k) => settings[k] !== previous[k])
        .sort()
    : [];
  await events.emit({
    type: 'config.loaded',
    actor: 'system',
    subject: 'config',
    data: { source: config.source, settings, changed },
  });
  await events.emit({
    type: 'platform.started',
    actor: 'system',
    data: { mqttPort, httpsPort, store: platform.store.dialect, version: VERSION },
  });

  let closed = false;
  return {
    routes,
    app,
    mqttPort,
    devMqttPort,
    httpsPort,
    devicePort,
    caChainFile,
    broker,
    async close(reason = 'shutdown') {
      if (closed) return;
      closed = true;
      stopFirmwareReports();
      stopMetricsReports();
      stopDeviceFollow();
      await monitor.stop();
      await platform.firmware.stop();
      await platform.notify.stop();
      await broker.close();
      await app.close();
      await deviceApp.app.close();
      // A store that is down cannot take the record; the node still shuts down cleanly.
      await events
        .emit({ type: 'platform.stopped', actor: 'system', data: { reason } })
        .catch((err: unknown) => logger.warn({ err }, 'cannot record platform.stopped'));
    },
  };
}
