import { MIN_TLS_VERSION } from '../pki/index.ts';

/** A listener the server runs with this configuration (the consumer's `ListenerFact`, stated here). */
export interface ListenerFacts {
  name: 'mqtt' | 'mqtt-dev' | 'https' | 'https-device';
  /** The configured port (0: ephemeral). */
  port: number;
  transport: 'tls' | 'tcp';
  authentication: 'mutual-tls' | 'mutual-tls-or-app-token' | 'user-sign-in' | 'none';
  /** The lowest TLS version the listener accepts; null for plaintext. */
  minTlsVersion: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3' | null;
}

/** The part of the configuration that decides which listeners run and how clients authenticate. */
export interface ListenerConfig {
  mqtt: { port: number; appPasswords: boolean; devListener?: { port: number } | undefined };
  https: { port: number; devicePort: number };
}

/**
 * The listeners this configuration runs, for the compliance checks (ETSI EN 303 645 5.5-1, IEC 62443-4-2
 * CR 4.3): every TLS listener spreads `serverTlsProfile`, whose minimum version is `MIN_TLS_VERSION`.
 */
export function listenerFacts(config: ListenerConfig): ListenerFacts[] {
  const listeners: ListenerFacts[] = [
    {
      name: 'mqtt',
      port: config.mqtt.port,
      transport: 'tls',
      // Without a client certificate, a TLS client may sign in as an app with a token (mqtt.appPasswords).
      authentication: config.mqtt.appPasswords ? 'mutual-tls-or-app-token' : 'mutual-tls',
      minTlsVersion: MIN_TLS_VERSION,
    },
  ];
  if (config.mqtt.devListener) {
    listeners.push({
      name: 'mqtt-dev',
      port: config.mqtt.devListener.port,
      transport: 'tcp',
      authentication: 'none',
      minTlsVersion: null,
    });
  }
  listeners.push(
    {
      name: 'https',
      port: config.https.port,
      transport: 'tls',
      authentication: 'user-sign-in',
      minTlsVersion: MIN_TLS_VERSION,
    },
    {
      name: 'https-device',
      port: config.https.devicePort,
      transport: 'tls',
      authentication: 'mutual-tls',
      minTlsVersion: MIN_TLS_VERSION,
    },
  );
  return listeners;
}
