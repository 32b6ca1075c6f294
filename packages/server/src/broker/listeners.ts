import { once } from 'node:events';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { actorOf, createEventRateLimit, subjectOf } from '../events/index.ts';
import type { Firewall } from '../firewall/index.ts';
import { refuseRenegotiation, serverTlsProfile } from '../pki/index.ts';
import type { BrokerCounters, Emit } from './emit.ts';
import {
  describePlainListener,
  describeTlsListener,
  type CertificateFallback,
  type ListenerFacts,
} from './listener.facts.ts';

export interface BrokerTls {
  key: string;
  cert: string;
  /** The CA chain client certificates must verify against. */
  ca: string;
}

/**
 * How a socket reaches the broker: from the TLS listener (a certificate checked or not; no certificate, so
 * app credentials at CONNECT) or the development listener.
 */
export type Admission = 'verified' | 'unchecked' | 'password' | 'insecure';

export interface ListenerDeps {
  tls: BrokerTls;
  port: number;
  host?: string | undefined;
  devPort?: number | undefined;
  handshakeTimeoutMs: number;
  /** TLS clients without a certificate are admitted to authenticate with app credentials (default true). */
  appPasswords?: boolean | undefined;
  firewall: Pick<Firewall, 'admitConnection' | 'connectionClosed'>;
  revocationLists?: (() => Promise<string[]>) | undefined;
  certificateStanding?:
    ((serial: string) => Promise<{ ok: true } | { ok: false; reason: string }>) | undefined;
  /** Hands a socket that passed the listener's checks to MQTT. */
  accept(socket: Socket, admission: Admission): void;
  emit: Emit;
  counters: BrokerCounters;
  logger: Logger;
}

interface HandshakeFailure {
  remoteAddress: string;
  reason: string;
  certSerial?: string | undefined;
  /** A certificate our CA signed names its device: the refusal shows in that device's history. */
  deviceId?: string | undefined;
}

/**
 * Recorded at most 20 a minute per address (with the count left out), never a ban: whoever shares this
 * address may still present a valid certificate.
 */
function handshakeFailures(emit: Emit) {
  const limit = createEventRateLimit({ max: 20, windowMs: 60_000 });
  return (failure: HandshakeFailure): void => {
    const { remoteAddress, reason, certSerial, deviceId } = failure;
    const { record, suppressed } = limit.admit(remoteAddress);
    if (!record) return;
    emit({
      type: 'tls.handshake_failed',
      actor: actorOf.anonymous(remoteAddress),
      subject: deviceId === undefined ? undefined : subjectOf.device(deviceId),
      data: {
        listener: 'mqtt',
        remoteAddress,
        reason,
        ...(certSerial ? { certSerial } : {}),
        ...(suppressed ? { suppressed } : {}),
      },
    });
  };
}

/** What the TLS listener does with a client that sends no certificate: admits it to sign in as an app, or not. */
const withoutCertificate = (deps: ListenerDeps): CertificateFallback =>
  deps.appPasswords !== false ? 'app-token' : undefined;

const cnOf = (subject: { CN?: unknown } | undefined) =>
  typeof subject?.CN === 'string' ? subject.CN : undefined;

/** After the handshake: a certificate from our CA, and (when the store answers) one it knows unrevoked. */
function secureConnection(deps: ListenerDeps, failed: (f: HandshakeFailure) => void) {
  return (socket: TLSSocket): void => {
    refuseRenegotiation(socket);
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    if (!socket.authorized) {
      const peer = socket.getPeerCertificate();
      // No certificate was sent (RFC 8446 §4.4.2.4; Node reports an empty peer): an app may still
      // authenticate with its credentials at CONNECT (the handshake is done, the connect deadline applies).
      if (withoutCertificate(deps) === 'app-token' && peer?.serialNumber === undefined) {
        deps.accept(socket, 'password');
        return;
      }
      // Chain, validity or CRL (CERT_REVOKED) check failed, or no certificate when app passwords are off.
      const reason = String(socket.authorizationError ?? 'no client certificate');
      socket.destroy();
      // Only a revoked certificate has a verified signature, so only its CN names a device of ours.
      const deviceId = reason === 'CERT_REVOKED' ? cnOf(peer?.subject) : undefined;
      failed({ remoteAddress, reason, certSerial: peer?.serialNumber, deviceId });
      return;
    }
    const standing = deps.certificateStanding;
    if (!standing) {
      deps.accept(socket, 'verified');
      return;
    }
    // Nothing reads the socket until the broker core has it: what the client sends meanwhile waits in the kernel.
    const { serialNumber: serial, subject } = socket.getPeerCertificate();
    standing(serial)
      .then((verdict) => {
        if (socket.destroyed) return;
        if (verdict.ok) {
          deps.accept(socket, 'verified');
          return;
        }
        socket.destroy();
        failed({ remoteAddress, reason: verdict.reason, certSerial: serial, deviceId: cnOf(subject) });
      })
      .catch((err: unknown) => {
        deps.logger.error({ err }, 'certificate check failed');
        if (socket.destroyed) return;
        // The store could not answer (it is down): CONNACK 3 at CONNECT.
        deps.accept(socket, 'unchecked');
      });
  };
}

/** Before any TLS work: banned, too fast, or too many at once from this address. */
function admitTcp(deps: ListenerDeps) {
  const refused = createEventRateLimit({ max: 20, windowMs: 60_000 });
  return (socket: Socket): void => {
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    const reason = deps.firewall.admitConnection(remoteAddress);
    if (reason) {
      socket.destroy();
      const { record, suppressed } = refused.admit(remoteAddress);
      if (record)
        deps.emit({
          type: 'firewall.connection_refused',
          actor: actorOf.anonymous(remoteAddress),
          data: { remoteAddress, reason, ...(suppressed ? { suppressed } : {}) },
        });
      return;
    }
    socket.once('close', () => deps.firewall.connectionClosed(remoteAddress));
    // MQTT packets are small and latency-bound: without this, Nagle's algorithm and the peer's delayed ACK
    // hold a PUBACK or a forwarded PUBLISH for ~40 ms (the 44 ms single-message latency of stock aedes).
    socket.setNoDelay(true);
  };
}

/**
 * Revocations from this process or any other (audit-log tail) swap the CRLs in; the hourly refresh keeps
 * them within their validity (they are reissued at half of it). Coalesced: a bulk revocation refreshes once
 * or twice, not once per certificate.
 */
function crlRefresher(options: { server: tls.Server; tlsOptions: tls.TlsOptions; deps: ListenerDeps }) {
  const { server, tlsOptions, deps } = options;
  const source = deps.revocationLists;
  let running: Promise<void> | undefined;
  let again = false;
  return function refreshCrls(): void {
    if (!source) return;
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      do {
        again = false;
        server.setSecureContext({ ...tlsOptions, crl: await source() });
      } while (again);
    })()
      .catch((err: unknown) => deps.logger.error({ err }, 'cannot refresh the certificate revocation lists'))
      .finally(() => (running = undefined));
  };
}

/** The development listener: plaintext, no authentication (config mqtt.devListener). */
async function listenDev(deps: ListenerDeps): Promise<net.Server | undefined> {
  if (deps.devPort === undefined) return undefined;
  const dev = net.createServer((socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    if (deps.firewall.admitConnection(address)) {
      socket.destroy();
      return;
    }
    socket.once('close', () => deps.firewall.connectionClosed(address));
    socket.setNoDelay(true);
    deps.accept(socket, 'insecure');
  });
  dev.listen(deps.devPort, deps.host);
  await once(dev, 'listening');
  deps.logger.warn(
    { port: (dev.address() as AddressInfo).port },
    'INSECURE: plaintext MQTT listener WITHOUT AUTHENTICATION is open (development only)',
  );
  return dev;
}

const closeServer = (server: net.Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/**
 * The MQTT listeners: mutual TLS (TLS 1.3 profile, CRLs in the handshake, the store's word on the
 * certificate before any MQTT byte is read) and, when configured, the development listener.
 */
export async function createListeners(deps: ListenerDeps) {
  const tlsOptions: tls.TlsOptions = {
    ...serverTlsProfile,
    key: deps.tls.key,
    cert: deps.tls.cert,
    ca: deps.tls.ca,
    requestCert: true,
    // No certificate from our CA, no MQTT at all: checked first thing in secureConnection. With `true`,
    // Node closes such a connection without a word to anyone, and the refusal is never recorded.
    rejectUnauthorized: false,
  };
  // Revoked certificates fail the handshake itself (RFC 5280 §6.3): the CRLs are part of the secure context.
  if (deps.revocationLists) tlsOptions.crl = await deps.revocationLists();
  const failed = handshakeFailures(deps.emit);
  const serverOptions: tls.TlsOptions = { ...tlsOptions, handshakeTimeout: deps.handshakeTimeoutMs };
  const server = tls.createServer(serverOptions, secureConnection(deps, failed));
  server.on('connection', admitTcp(deps));
  server.on('tlsClientError', (err: Error & { code?: string }, socket) => {
    const remoteAddress = socket.remoteAddress ?? 'unknown';
    // Node reports a handshake timeout but leaves the socket open, holding a slot and a descriptor.
    socket.destroy();
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') deps.counters.handshakeTimeouts += 1;
    failed({ remoteAddress, reason: err.code ?? err.message });
  });
  const refreshCrls = crlRefresher({ server, tlsOptions, deps });
  const crlTimer = setInterval(refreshCrls, 3_600_000).unref();
  let devServer: net.Server | undefined;
  const bound: ListenerFacts[] = [];
  return {
    refreshCrls,
    async listen(): Promise<number> {
      server.listen(deps.port, deps.host);
      await once(server, 'listening');
      const port = (server.address() as AddressInfo).port;
      bound.push(
        describeTlsListener({
          name: 'mqtt',
          port,
          options: serverOptions,
          withoutCertificate: withoutCertificate(deps),
        }),
      );
      return port;
    },
    async listenDev(): Promise<number | undefined> {
      devServer = await listenDev(deps);
      if (!devServer) return undefined;
      const port = (devServer.address() as AddressInfo).port;
      bound.push(describePlainListener({ name: 'mqtt-dev', port }));
      return port;
    },
    /** The listeners bound so far, described from what they were given (compliance, platform.started). */
    listenerFacts: (): ListenerFacts[] => bound.map((l) => ({ ...l })),
    async close(): Promise<void> {
      clearInterval(crlTimer);
      await closeServer(server);
      if (devServer) await closeServer(devServer);
    },
  };
}
