import tls from 'node:tls';
import type { EventData } from '../events/index.ts';

/**
 * A listener the server bound, as it was bound: recorded in `platform.started` (the shape is that event's)
 * and read back by the compliance checks (ETSI EN 303 645 5.5-1, IEC 62443-4-2 CR 4.3).
 */
export type ListenerFacts = EventData['platform.started']['listeners'][number];

/**
 * What a TLS listener accepts from a client without a valid certificate, past the handshake: nothing
 * (`undefined`: refused by the listener's own code), an app token at MQTT CONNECT, or a user sign-in (the
 * management API).
 */
export type CertificateFallback = 'app-token' | 'user-sign-in' | undefined;

/** A TLS listener: its name, the port it got, the very options object handed to tls/https, and its fallback. */
export interface TlsListener {
  name: ListenerFacts['name'];
  port: number;
  options: Pick<tls.TlsOptions, 'minVersion' | 'requestCert' | 'rejectUnauthorized'>;
  withoutCertificate?: CertificateFallback;
}

function authenticationOf(listener: TlsListener): ListenerFacts['authentication'] {
  const { options, withoutCertificate } = listener;
  if (withoutCertificate === 'user-sign-in') return 'user-sign-in';
  const asksCertificate = options.requestCert === true;
  // Node's default for a server is rejectUnauthorized: true: then the handshake itself refuses a client
  // without a certificate, and no token can ever reach CONNECT.
  const handshakeRequiresIt = asksCertificate && options.rejectUnauthorized !== false;
  if (withoutCertificate === 'app-token' && !handshakeRequiresIt)
    return asksCertificate ? 'mutual-tls-or-app-token' : 'app-token';
  return asksCertificate ? 'mutual-tls' : 'none';
}

/** Describes a bound TLS listener from the options it was given (Node's default minimum when unset). */
export function describeTlsListener(listener: TlsListener): ListenerFacts {
  return {
    name: listener.name,
    port: listener.port,
    transport: 'tls',
    authentication: authenticationOf(listener),
    minTlsVersion: listener.options.minVersion ?? tls.DEFAULT_MIN_VERSION,
  };
}

/** Describes a bound plaintext listener: no TLS, no authentication (the MQTT development listener). */
export function describePlainListener(listener: {
  name: ListenerFacts['name'];
  port: number;
}): ListenerFacts {
  return {
    name: listener.name,
    port: listener.port,
    transport: 'tcp',
    authentication: 'none',
    minTlsVersion: null,
  };
}
