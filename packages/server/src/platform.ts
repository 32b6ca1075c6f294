import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { createBroker, type Broker } from './broker/index.ts';
import { describeConfig, type Config } from './config/index.ts';
import { createDeviceService, type DeviceService } from './devices/index.ts';
import {
  createAuditLog,
  createEventBus,
  createEventRateLimit,
  type AuditLog,
  type EventBus,
} from './events/index.ts';
import { createHttpApp } from './http/index.ts';
import { createPkiService, estRoutes, loadOrCreatePki, type PkiService } from './pki/index.ts';
import { compileDeviceAccess } from './policy/index.ts';
import { createSecretBox, loadMasterKey } from './secrets/index.ts';
import { isBusy, isUniqueViolation, openStore, type Store } from './store/index.ts';
import { VERSION } from './version.ts';

export const SQLITE_FILE = 'bulwark.db';
export const CA_CHAIN_FILE = 'ca-chain.pem';
export const AUDIT_HEAD_FILE = 'audit-head.json';

export interface Platform {
  config: Config;
  logger: Logger;
  store: Store;
  audit: AuditLog;
  events: EventBus;
  devices: DeviceService;
  /** The PKI, created at first use (first start) and loaded afterwards. */
  pki(): Promise<PkiService>;
  close(): Promise<void>;
}

export interface PlatformOptions {
  logger: Logger;
  now?: () => number;
  /** True for `serve`: issue or renew the TLS server certificate when it no longer fits. */
  manageServerCertificate?: boolean;
}

/** The composition root: store, secrets, events, services, in that order. No listeners. */
export async function createPlatform(config: Config, options: PlatformOptions): Promise<Platform> {
  const now = options.now ?? Date.now;
  const { logger } = options;
  const store = await openStore({
    databaseUrl: config.database.url,
    sqliteFile: path.join(config.dataDir, SQLITE_FILE),
  });
  const box = createSecretBox(loadMasterKey(config.dataDir, config.masterKey));
  const audit = createAuditLog({
    db: store.db,
    mac: box,
    now,
    isRetryable: (e) => isUniqueViolation(e) || isBusy(e),
  });
  const events = createEventBus({
    log: audit,
    onError: (err, entry) => logger.error({ err, seq: entry?.seq }, 'event subscriber failed'),
  });
  const devices = createDeviceService({
    db: store.db,
    events,
    now,
    tokenTtlMs: config.pki.enrollmentTokenTtl,
  });
  let pki: Promise<PkiService> | undefined;

  return {
    config,
    logger,
    store,
    audit,
    events,
    devices,
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
      await events.close();
      await store.close();
    },
  };
}

export interface RunningServer {
  mqttPort: number;
  httpsPort: number;
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
  const app = createHttpApp({
    tls: { key: server.keyPem, cert: server.certPem, clientCa: chainPem },
    logger,
    onTlsError: (remoteAddress, reason) => {
      const { record, suppressed } = handshakeFailures.admit(remoteAddress);
      if (!record) return;
      events
        .emit({
          type: 'tls.handshake_failed',
          actor: `anonymous@${remoteAddress}`,
          data: { listener: 'https', remoteAddress, reason, ...(suppressed ? { suppressed } : {}) },
        })
        .catch((err: unknown) => logger.error({ err }, 'cannot record event'));
    },
  });
  await app.register(estRoutes(pki));

  const broker = await createBroker({
    tls: { key: server.keyPem, cert: server.certPem, ca: chainPem },
    port: config.mqtt.port,
    host: config.bind,
    logger,
    events,
    checkConnection: (identity) => pki.checkConnection(identity),
    compileAccess: compileDeviceAccess,
  });

  await app
    .listen({ port: config.https.port, host: config.bind ?? '::' })
    .catch(async (err: NodeJS.ErrnoException) => {
      if (config.bind || err.code !== 'EAFNOSUPPORT') throw err;
      await app.listen({ port: config.https.port, host: '0.0.0.0' }); // no IPv6 on this host
    });
  const httpsPort = (app.server.address() as { port: number }).port;
  const mqttPort = await broker.listen();
  events.startTail(config.events.tailInterval);
  const settings = describeConfig(config);
  const previous = (await platform.audit.latest('config.loaded'))?.data.settings as
    Record<string, unknown> | undefined;
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
    mqttPort,
    httpsPort,
    caChainFile,
    broker,
    async close(reason = 'shutdown') {
      if (closed) return;
      closed = true;
      await broker.close();
      await app.close();
      await events.emit({ type: 'platform.stopped', actor: 'system', data: { reason } });
    },
  };
}
