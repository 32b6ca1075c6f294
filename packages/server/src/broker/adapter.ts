/**
 * The MQTT adapter's contract with createBroker (core-adapter.ts: Bulwark's own core behind the stages), the
 * limits, the peer identity a transport established, and the steps of delivery with the app bound, a refused
 * filter's event and an oversized packet.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { AppDelivery } from './app-delivery.ts';
import type { CoreStats } from './core/index.ts';
import type { createConnectHandler, createEarlyRefusals } from './connect.ts';
import type { BrokerCounters, Emit } from './emit.ts';
import type { IngressRouter } from './ingress.ts';
import type { Admission } from './listeners.ts';
import type { createDeliverPipeline, createPublishPipeline, createSubscribePipeline } from './pipeline.ts';
import type { DropCause, SessionRegistry } from './sessions.ts';
import type { BrokerSession, DeliverPacket, PeerIdentity } from './stages.ts';

export interface BrokerLimits {
  /** Largest MQTT packet other than CONNECT (remaining length), refused at its fixed header. */
  maxPacketBytes: number;
  /** Largest CONNECT (remaining length), refused at its fixed header: a client id, a Will and credentials. */
  maxConnectBytes: number;
  /** A TLS handshake not finished within this is closed (stalled ClientHellos, bare TCP connections). */
  handshakeTimeoutMs: number;
  /** A connection whose CONNECT has not arrived within this is closed (`mqtt.connect_refused`, connect_timeout). */
  connectTimeoutMs: number;
  /** Bytes an app connection may hold unsent; beyond, messages to it are dropped and counted (app-delivery.ts). */
  appQueueBytes: number;
  /** QoS 1/2 PUBLISHes a client may have unacknowledged at the server (MQTT 5 Receive Maximum). */
  receiveMaximum: number;
  /** Messages waiting for one client (offline, or behind its in-flight window); beyond, counted drops. */
  maxQueuedMessages: number;
  /** The longest a persistent session (3.1.1 clean session 0, MQTT 5 session expiry) is kept offline. */
  maxSessionExpirySec: number;
  /** Topic aliases an MQTT 5 client may use towards the server (0: none). */
  topicAliasMaximum: number;
  /** The longest keep alive granted (MQTT 5 Server Keep Alive); undefined: the client's own. */
  keepAliveMaxSec?: number | undefined;
}

/** What an adapter is given: the stages, the sessions, and where it records what happens. */
export interface AdapterDeps<C extends object> {
  limits: BrokerLimits;
  sessions: SessionRegistry<C>;
  handleConnect: ReturnType<typeof createConnectHandler<C>>;
  refuseEarly: ReturnType<typeof createEarlyRefusals>;
  publish: ReturnType<typeof createPublishPipeline>;
  subscribe: ReturnType<typeof createSubscribePipeline>;
  deliver: ReturnType<typeof createDeliverPipeline>;
  ingress?: IngressRouter | undefined;
  /** App delivery counters and the app queue bound. */
  appDelivery: AppDelivery;
  emit: Emit;
  counters: BrokerCounters;
  logger: Logger;
}

/** What createBroker asks of the MQTT adapter. */
export interface MqttAdapter<C extends object> {
  /** Takes a connection; `peer` when the caller established the identity itself (in-process streams). */
  accept(stream: Duplex, admission: Admission, peer?: PeerIdentity): void;
  /** Ends the connection; the cause of a dropped session tells an MQTT 5 client why (DISCONNECT reason code). */
  close(client: C, cause?: DropCause): void;
  /** Bytes waiting for the client (app queue figures). */
  queuedOf(client: C): number;
  /** Publishes from the server (QoS 1); deliveries still pass each subscriber's delivery stages. */
  publish(topic: string, payload: string): Promise<void>;
  /** The core's counters (Prometheus `bulwark_mqtt_*`) and drops per client id (`mqtt.delivery_dropped`). */
  stats(): CoreStats;
  shutdown(): Promise<void>;
}

/**
 * The identity the transport established: the verified client certificate, or none (development listener;
 * a TLS client without a certificate, which must authenticate with app credentials).
 */
export function peerIdentity(conn: unknown, admission: Admission): PeerIdentity {
  const socket = conn as Partial<TLSSocket>;
  const remoteAddress = socket.remoteAddress ?? 'unknown';
  if (admission === 'insecure' || admission === 'password' || typeof socket.getPeerCertificate !== 'function')
    return {
      cn: undefined,
      serial: undefined,
      remoteAddress,
      subject: {},
      anonymous: admission === 'insecure',
      ...(admission === 'password' ? { password: true } : {}),
    };
  const peer = socket.getPeerCertificate();
  const raw = (peer?.subject ?? {}) as unknown as Record<string, string | string[]>;
  const subject: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') subject[k] = v;
  // A certificate with several CNs names no single device.
  const notAfter = peer?.valid_to ? Date.parse(peer.valid_to) : Number.NaN;
  return {
    cn: typeof raw.CN === 'string' ? raw.CN : undefined,
    serial: peer?.serialNumber || undefined,
    remoteAddress,
    subject,
    anonymous: false,
    ...(Number.isFinite(notAfter) ? { notAfter } : {}),
  };
}

/**
 * An app connection buffers up to the app queue bound without the engine waiting for 'drain' (which would
 * hold the message, and after enough of them every other subscriber's): beyond the bound, messages to it are
 * dropped (app-delivery.ts). Node reads the high-water mark at every write.
 */
export function raiseHighWaterMark(stream: unknown, bytes: number): void {
  const state = (stream as { _writableState?: { highWaterMark: number } })._writableState;
  if (state && state.highWaterMark < bytes) state.highWaterMark = bytes;
}

/**
 * An app's delivery past its queue bound: counted, or dropped (null) when its connection holds more than the
 * bound. Called only for apps (`session.delivery` set), after the delivery stages let the message through, so
 * a device's delivery allocates nothing here.
 */
export function admitForApp<P extends DeliverPacket>(
  deps: Pick<AdapterDeps<object>, 'appDelivery'>,
  session: BrokerSession,
  delivery: { out: P; clientId: string; queued: number },
): P | null {
  const { out, clientId, queued } = delivery;
  return deps.appDelivery.admit(session, { clientId, queued, bytes: out.payload.length }) ? out : null;
}

/** A refused filter is an event (§3.9.3: the SUBACK says 0x80, or 0x87 on MQTT 5). */
export function subscribeDenied(
  emit: Emit,
  refused: { session: BrokerSession | undefined; clientId: string; topic: string; reason: string },
): void {
  const { session } = refused;
  emit({
    type: 'mqtt.subscribe_denied',
    actor: session ? session.actor : `client:${refused.clientId}`,
    subject: session?.subject,
    data: { topic: refused.topic, reason: refused.reason },
  });
}

/**
 * A packet announced more than its limit; the connection is being closed. With a session, it ends here like
 * a drop (no further publish or delivery while the socket closes); without, it is an early refusal.
 */
export function packetTooLarge<C extends object>(
  deps: Pick<AdapterDeps<C>, 'counters' | 'sessions' | 'refuseEarly'>,
  client: C,
  refused: { peer: PeerIdentity; /** `PUBLISH announces 300000 bytes, limit 262144` */ detail: string },
): void {
  deps.counters.packetsTooLarge += 1;
  const reason = `packet_too_large: ${refused.detail}`;
  if (!deps.sessions.end(client, reason)) void deps.refuseEarly(refused.peer, reason);
}
