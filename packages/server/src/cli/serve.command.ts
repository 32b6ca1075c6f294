import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { BulwarkError } from '@bulwark/protocol';
import type { Config } from '../config/index.ts';
import { acquireServerLock } from '../data-dir.ts';
import type { RunningServer, ServerPlatform } from '../platform.ts';
import { VERSION } from '../version.ts';
import { common, configFrom, type CommonOptions } from './context.ts';

interface ServeOptions extends CommonOptions {
  mqttPort?: string;
  mqttDevPort?: string;
  httpsPort?: string;
  bind?: string;
  hostname?: string[];
}

export function serveCommand(): Command {
  return common(
    new Command('serve').description('run the platform: HTTPS (API, EST) and MQTT over TLS'),
    false,
  )
    .option('--mqtt-port <port>', 'MQTT over TLS port (default 8883, 0 = ephemeral)')
    .option(
      '--mqtt-dev-port <port>',
      'DEVELOPMENT ONLY: also open a plaintext MQTT listener WITHOUT AUTHENTICATION on this port (mqtt.devListener)',
    )
    .option('--https-port <port>', 'HTTPS port (default 8443, 0 = ephemeral)')
    .option('--bind <address>', 'listen on this address only')
    .option('--hostname <name...>', 'extra host names or addresses for the server certificate')
    .action(async (options: ServeOptions) => {
      const config = configFrom(options, {
        'mqtt.port': options.mqttPort,
        'mqtt.devListener.port': options.mqttDevPort,
        'https.port': options.httpsPort,
        bind: options.bind,
        'pki.hostnames': options.hostname,
      });
      const [{ createServerPlatform, startServer }, { createLogger }] = await Promise.all([
        import('../platform.ts'),
        import('../logger.ts'),
      ]);
      const logger = createLogger(config.logLevel);
      // One server per data directory: taken before the store is opened, released at exit.
      mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
      const releaseLock = acquireServerLock(config.dataDir);
      let platform: ServerPlatform | undefined;
      let server: RunningServer;
      try {
        // Stage one builds every service, the PKI, the HTTP apps and the broker; stage two listens.
        platform = await createServerPlatform(config, {
          logger,
          manageServerCertificate: true,
          createDataDir: true,
        });
        server = await startServer(platform);
      } catch (err) {
        throw await abandonStart(err, { config, platform, releaseLock });
      }
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        server
          .close(signal)
          .then(() => platform.close())
          .then(releaseLock)
          .then(
            () => process.exit(0),
            (err: unknown) => {
              logger.error({ err }, 'unclean shutdown');
              process.exit(1);
            },
          );
      };
      // Before "is running" is printed, so a supervisor that signals as soon as it reads it gets a clean stop;
      // `on`, not `once`: a second signal during shutdown must not kill the process half-way.
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      const rel = path.relative(process.cwd(), server.caChainFile) || server.caChainFile;
      process.stdout.write(
        [
          `Bulwark ${VERSION} is running`,
          `  HTTPS (API, EST):  https://localhost:${server.httpsPort}`,
          `  Web console:       https://localhost:${server.httpsPort}/  (sign in: docs/console.md)`,
          `  device listener:   https://localhost:${server.devicePort}  (mutual TLS: EST re-enrollment, firmware repository, TPM attestation; ${server.httpsPort} redirects there)`,
          `  MQTT over TLS:     mqtts://localhost:${server.mqttPort}  (client certificate required)`,
          `  Store:             ${platform.store.dialect} ${platform.store.location}`,
          `  CA chain:          ${rel}  (also: npx bulwark pki ca-chain, or GET /.well-known/est/cacerts)`,
          ...(server.devMqttPort !== undefined
            ? [
                '',
                `  WARNING: plaintext MQTT WITHOUT AUTHENTICATION on port ${server.devMqttPort} (mqtt.devListener).`,
                '  For development and conformance testing only; its clients are in policy group "anonymous".',
              ]
            : []),
          '',
          'Enroll a device:',
          `  npx bulwark device add pump-1`,
          `  npx bulwark device token pump-1`,
          `  npx bulwark-agent enroll --server https://localhost:${server.httpsPort} --id pump-1 --token <token> --ca ${rel} --dir ./pump-1`,
          `  npx bulwark-agent run --dir ./pump-1 --mqtt mqtts://localhost:${server.mqttPort}`,
          '  With openssl and curl instead: docs/enrollment.md',
          '',
        ].join('\n'),
      );
    });
}

/** The listeners, by the setting that names their port (for the one-line reason of a failed start). */
function listenerOf(port: number, config: Config): string {
  const listeners: [number | undefined, string][] = [
    [config.https.port, 'HTTPS (API, EST): --https-port or BULWARK_HTTPS_PORT'],
    [config.https.devicePort, 'device listener: https.devicePort or BULWARK_DEVICE_PORT'],
    [config.mqtt.port, 'MQTT over TLS: --mqtt-port or BULWARK_MQTT_PORT'],
    [config.mqtt.devListener?.port, 'plaintext MQTT: mqtt.devListener.port'],
  ];
  return listeners.find(([p]) => p === port)?.[1] ?? 'a listener';
}

/**
 * A start that failed half-way (a port in use, a store refused) ends the process: its reason becomes one
 * line, the lock is released, and the listeners already open are closed; whatever still holds the event
 * loop after a second (a half-started broker) does not keep a failed server hanging.
 */
async function abandonStart(
  err: unknown,
  {
    config,
    platform,
    releaseLock,
  }: { config: Config; platform: ServerPlatform | undefined; releaseLock: () => void },
): Promise<unknown> {
  releaseLock();
  setTimeout(() => process.exit(1), 1000).unref();
  await Promise.race([
    platform?.close().catch(() => undefined),
    new Promise((r) => setTimeout(r, 500).unref()),
  ]);
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (e.syscall === 'listen' && typeof e.port === 'number') {
    const where = `port ${e.port}${e.address ? ` on ${e.address}` : ''}`;
    const listener = listenerOf(e.port, config);
    const [name, setting] = listener.split(': ');
    if (e.code === 'EADDRINUSE')
      return new BulwarkError(
        'config_invalid',
        `cannot listen on ${where} for ${name}: the port is already in use (another program or another Bulwark); stop it or choose another port${setting ? ` with ${setting}` : ''}`,
        { cause: err },
      );
    if (e.code === 'EACCES')
      return new BulwarkError(
        'config_invalid',
        `cannot listen on ${where} for ${name}: permission denied (ports below 1024 need privileges); choose another port${setting ? ` with ${setting}` : ''}`,
        { cause: err },
      );
  }
  return err;
}
