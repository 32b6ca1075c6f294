import path from 'node:path';
import { Command } from 'commander';
import { VERSION } from '../version.ts';
import { common, configFrom, type CommonOptions } from './context.ts';

interface ServeOptions extends CommonOptions {
  mqttPort?: string;
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
    .option('--https-port <port>', 'HTTPS port (default 8443, 0 = ephemeral)')
    .option('--bind <address>', 'listen on this address only')
    .option('--hostname <name...>', 'extra host names or addresses for the server certificate')
    .action(async (options: ServeOptions) => {
      const config = configFrom(options, {
        'mqtt.port': options.mqttPort,
        'https.port': options.httpsPort,
        bind: options.bind,
        'pki.hostnames': options.hostname,
      });
      const [{ createPlatform, startServer }, { createLogger }] = await Promise.all([
        import('../platform.ts'),
        import('../logger.ts'),
      ]);
      const logger = createLogger(config.logLevel);
      const platform = await createPlatform(config, { logger, manageServerCertificate: true });
      const server = await startServer(platform);
      const rel = path.relative(process.cwd(), server.caChainFile) || server.caChainFile;
      process.stdout.write(
        [
          `Bulwark ${VERSION} is running`,
          `  HTTPS (API, EST):  https://localhost:${server.httpsPort}`,
          `  EST re-enrollment: https://localhost:${server.reenrollPort}  (mutual TLS; ${server.httpsPort} redirects there)`,
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
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        server
          .close(signal)
          .then(() => platform.close())
          .then(
            () => process.exit(0),
            (err: unknown) => {
              logger.error({ err }, 'unclean shutdown');
              process.exit(1);
            },
          );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
