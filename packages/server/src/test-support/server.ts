import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { testConfig, type Config } from '../config/index.ts';
import { createLogger } from '../logger.ts';
import {
  createServerPlatform,
  startServer,
  type Platform,
  type RunningServer,
  type ServerPlatform,
} from '../platform.ts';
import { bulwarkCli, type CliResult } from './cli.ts';
import { testTmpDir } from './tmp.ts';

export { apiToken, signedInSession } from './platform.ts';

export { BULWARK_BIN } from './cli.ts';

export interface TestServer {
  platform: ServerPlatform;
  server: RunningServer;
  config: Config;
  dataDir: string;
  caFile: string;
  httpsUrl: string;
  /** The mutual-TLS listener for EST simplereenroll. */
  deviceUrl: string;
  mqttUrl: string;
  /** Runs the real `bulwark` CLI in a child process against this server's data directory. */
  cli(args: string[]): Promise<CliResult>;
  /** Stops the server; the data directory is removed unless `keepData`. */
  stop(options?: { keepData?: boolean }): Promise<void>;
}

/** The real server on ephemeral ports with a temporary data directory. */
export async function startTestServer(
  overrides: Record<string, unknown> = {},
  options: {
    dataDir?: string;
    /** The platform's clock (tests that move time forward). */ now?: () => number;
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(testTmpDir(), 'bulwark-e2e-'));
  const config = testConfig({
    dataDir,
    'mqtt.port': 0,
    'https.port': 0,
    'https.devicePort': 0,
    bind: '127.0.0.1',
    // Events from the CLI's processes reach the server within this (tests wait on them).
    'events.tailInterval': 25,
    logLevel: 'silent',
    // Every test client comes from 127.0.0.1: per-address limits are raised here and tested on their own.
    'firewall.connectRate': 10_000,
    'firewall.connectBurst': 10_000,
    'firewall.failureThreshold': 10_000,
    'firewall.flapThreshold': 10_000,
    // Tests attach the profiles they test; the shipped default is tested on its own (quarantine-hold).
    'monitor.defaultProfile': false,
    ...overrides,
  });
  const platform = await createServerPlatform(config, {
    logger: createLogger(config.logLevel),
    manageServerCertificate: true,
    ...(options.now ? { now: options.now } : {}),
  });
  const server = await startServer(platform);
  let stopped = false;
  return {
    platform,
    server,
    config,
    dataDir,
    caFile: server.caChainFile,
    httpsUrl: `https://localhost:${server.httpsPort}`,
    deviceUrl: `https://localhost:${server.devicePort}`,
    mqttUrl: `mqtts://localhost:${server.mqttPort}`,
    // A server on PostgreSQL: the CLI's processes open the same database (its URL is not in the data directory).
    cli: (args) =>
      bulwarkCli(
        dataDir,
        args,
        typeof overrides['database.url'] === 'string'
          ? { BULWARK_DATABASE_URL: overrides['database.url'] }
          : {},
      ),
    async stop(stopOptions = {}) {
      if (stopped) return;
      stopped = true;
      await server.close('test');
      await platform.close();
      if (!stopOptions.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Adds and enrolls a device through the services (fast path for tests that are about the broker). */
export async function enrollInProcess(
  s: { platform: Platform },
  id: string,
  group?: string,
): Promise<{ id: string; key: string; cert: string }> {
  const { x509 } = await import('../pki/index.ts');
  await s.platform.devices.add({ id, group }, 'test');
  const { token } = await s.platform.devices.issueToken(id, 'test');
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${id}`,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  const issued = await (await s.platform.pki()).enroll({ deviceId: id, token, csr: csr.toString('base64') });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`;
  return { id, key, cert: issued.certificate.toString('pem') };
}

/**
 * Lets these devices read every device's telemetry (policy `read-telemetry`, attached to each): the default
 * policy gives a device its own topics only.
 */
export async function letReadTelemetry(s: { platform: Platform }, readers: string[]): Promise<void> {
  await s.platform.access.putPolicy(
    'read-telemetry',
    {
      version: '2026-11',
      statements: [
        {
          sid: 'read',
          effect: 'allow',
          actions: ['mqtt:subscribe', 'mqtt:receive'],
          resources: ['devices/+/telemetry'],
        },
      ],
    },
    'test',
  );
  for (const reader of readers)
    await s.platform.access.attach('read-telemetry', { kind: 'device', target: reader }, 'test');
}
